"""Do language labels explain the similarities? Clusters (ARI/NMI), separation, permutation tests.

The design choices (metric, linkage, permutation scheme) are described in
:mod:`babel.families.similarity`.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from babel.data.languages import get_language
from babel.families.bootstrap import BootstrapResult
from babel.families.similarity import (
    LABEL_FIELDS,
    Metric,
    _codes,
    language_labels,
    layer_similarity,
    pair_table,
)

# Pairs that separate language from script (codes of data/languages.csv) and what each shows.
CONTROL_PAIRS: tuple[tuple[str, str, str], ...] = (
    ("hi", "ur", "one spoken language (Hindustani), two scripts (Deva / Arab)"),
    ("sr-Cyrl", "sr-Latn", "identical text, two scripts (Cyrl / Latn)"),
    ("ar", "fa", "one script (Arab), different families (Semitic / Indo-European)"),
    ("ar", "ur", "one script (Arab), different families (Semitic / Indo-European)"),
    ("fa", "ur", "one script (Arab), same family, different branches (Iranian / Indo-Aryan)"),
)


def cluster_tree(sim: np.ndarray) -> np.ndarray:
    """scipy linkage matrix: average linkage on distance ``1 - similarity``."""
    from scipy.cluster.hierarchy import linkage
    from scipy.spatial.distance import squareform

    d = 1.0 - (np.asarray(sim, dtype=np.float64) + np.asarray(sim).T) / 2
    np.fill_diagonal(d, 0.0)
    return linkage(squareform(np.maximum(d, 0.0), checks=False), method="average")


def cut_tree(tree: np.ndarray, n_clusters: int) -> np.ndarray:
    """Cluster ids from cutting ``tree`` into (at most) ``n_clusters`` groups."""
    from scipy.cluster.hierarchy import fcluster

    return fcluster(tree, t=n_clusters, criterion="maxclust")


def ari_batch(clusters: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Adjusted Rand index of one clustering ``[n]`` against many labellings ``[P, n]``."""
    a = np.unique(clusters, return_inverse=True)[1]
    b = np.atleast_2d(labels)
    n = a.shape[0]
    onehot_a = np.eye(a.max() + 1)[a]  # [n, ka]
    onehot_b = np.eye(b.max() + 1)[b]  # [P, n, kb]
    table = np.einsum("na,pnb->pab", onehot_a, onehot_b)

    def comb2(x: np.ndarray) -> np.ndarray:
        return x * (x - 1) / 2

    pairs = comb2(table).sum((1, 2))
    sa = comb2(table.sum(2)).sum(1)
    sb = comb2(table.sum(1)).sum(1)
    expected = sa * sb / comb2(np.float64(n))
    top = (sa + sb) / 2
    den = top - expected
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den == 0, 1.0, (pairs - expected) / np.where(den == 0, 1, den))


def _permutations(n: int, n_permutations: int, rng: np.random.Generator,
                  strata: np.ndarray | None = None) -> np.ndarray:
    """``[P, n]`` index permutations (within each stratum when ``strata`` is given)."""
    if strata is None:
        return rng.permuted(np.tile(np.arange(n), (n_permutations, 1)), axis=1)
    perm = np.tile(np.arange(n), (n_permutations, 1))
    for s in np.unique(strata):
        idx = np.flatnonzero(strata == s)
        perm[:, idx] = idx[rng.permuted(np.tile(np.arange(len(idx)), (n_permutations, 1)),
                                        axis=1)]
    return perm


#: Enumerate every within-stratum permutation (an exact test) when there are at most this many.
EXACT_LIMIT = 50_000


def all_permutations(n: int, strata: np.ndarray | None = None, *,
                     limit: int = EXACT_LIMIT) -> np.ndarray | None:
    """Every permutation of ``n`` items within strata, ``[N, n]``; None when N > ``limit``.

    Each distinct grouping of the labels appears equally often among them, so the share of
    permutations at least as extreme as the observed statistic is the exact p-value.
    """
    st = np.zeros(n, dtype=int) if strata is None else np.asarray(strata)
    groups = [np.flatnonzero(st == s) for s in np.unique(st)]
    if math.prod(math.factorial(len(g)) for g in groups) > limit:
        return None
    perm = np.tile(np.arange(n), (1, 1))
    for g in groups:
        local = np.array(list(itertools.permutations(range(len(g)))), dtype=int)  # [k!, k]
        rows = np.repeat(perm, len(local), axis=0)
        rows[:, g] = g[np.tile(local, (len(perm), 1))]
        perm = rows
    return perm


def agreement(sim: np.ndarray, labels: Sequence, *, n_permutations: int = 1000,
              seed: int = 0, tree: np.ndarray | None = None) -> dict[str, float]:
    """ARI and NMI between the clustering of ``sim`` and ``labels`` (cut at their group count).

    Returns:
        ``n_groups``, ``ari``, ``nmi`` and ``ari_p`` (share of label shuffles with an ARI at
        least as high, +1 smoothed). NaN when the labelling has one group or only singletons.
    """
    from sklearn.metrics import normalized_mutual_info_score

    codes = _codes(labels)
    k = int(codes.max()) + 1
    if k < 2 or k >= len(codes):
        return {"n_groups": k, "ari": np.nan, "nmi": np.nan, "ari_p": np.nan}
    clusters = cut_tree(cluster_tree(sim) if tree is None else tree, k)
    ari = float(ari_batch(clusters, codes[None])[0])
    rng = np.random.default_rng(seed)
    null = ari_batch(clusters, codes[_permutations(len(codes), n_permutations, rng)])
    return {"n_groups": k, "ari": ari,
            "nmi": float(normalized_mutual_info_score(codes, clusters)),
            "ari_p": float((1 + (null >= ari - 1e-12).sum()) / (1 + n_permutations))}


@dataclasses.dataclass(frozen=True)
class PermutationResult:
    """Within-minus-between similarity of a labelling, against shuffled labels.

    Attributes:
        statistic: Mean same-label pair similarity minus mean different-label similarity.
        p_value: One-sided: (1 + #{null >= statistic}) / (1 + P) from P random shuffles, or,
            when every within-stratum permutation can be enumerated (at most P of them), the
            exact share of permutations at least as extreme (the observed one included).
        null_mean: Mean of the null statistics.
        null_std: Their standard deviation.
        n_permutations: P (random shuffles), or the number of permutations enumerated.
        n_within: Same-label pairs counted.
        n_between: Different-label pairs counted.
        n_arrangements: Distinct groupings the shuffles can produce (:func:`n_arrangements`).
    """

    statistic: float
    p_value: float
    null_mean: float
    null_std: float
    n_permutations: int
    n_within: int
    n_between: int
    n_arrangements: float = math.inf

    @property
    def p_floor(self) -> float:
        """The smallest p-value this test can give: few languages allow few arrangements."""
        return max(1.0 / (1 + self.n_permutations), 1.0 / self.n_arrangements)

    @property
    def z(self) -> float:
        """(statistic - null mean) / null std: the effect in units of the null's spread."""
        return (self.statistic - self.null_mean) / self.null_std if self.null_std > 0 else np.nan


def n_arrangements(labels: Sequence, strata: Sequence | None = None) -> float:
    """Distinct groupings of the languages that label shuffles can produce.

    The statistic depends only on which languages share a label, so two shuffles that differ
    by swapping whole groups of equal size give the same value: per stratum, the count is
    ``n! / (Π_k c_k! · Π_m g_m!)`` with ``c_k`` the group sizes and ``g_m`` the number of
    groups of size m. Its inverse is the smallest p-value the test can reach.
    """
    codes = _codes(labels)
    st = np.zeros(len(codes), dtype=int) if strata is None else _codes(strata)
    log_n = 0.0
    for s in np.unique(st):
        counts = np.bincount(codes[st == s])
        counts = counts[counts > 0]
        log_n += math.lgamma(counts.sum() + 1) - sum(math.lgamma(c + 1) for c in counts)
        log_n -= sum(math.lgamma(g + 1) for g in np.bincount(counts))
    return math.exp(min(log_n, 700.0))


def _pair_mask(n: int, strata: np.ndarray | None) -> np.ndarray:
    mask = np.triu(np.ones((n, n), dtype=bool), 1)
    if strata is not None:
        mask &= strata[:, None] == strata[None, :]
    return mask


def _separation(sims: np.ndarray, same: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Within minus between ``[P, B]`` for similarity stacks ``[B, n, n]``, masks ``[P, n, n]``."""
    within = (same & pairs).astype(np.float64)
    between = (~same & pairs).astype(np.float64)
    nw, nb = within.sum((1, 2)), between.sum((1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.einsum("pij,bij->pb", within, sims) / nw[:, None]
        b = np.einsum("pij,bij->pb", between, sims) / nb[:, None]
    return w - b


def _separation_null(sims: np.ndarray, labels: Sequence, *, n_permutations: int, seed: int,
                     strata: Sequence | None, exact: bool = False
                     ) -> tuple[np.ndarray, np.ndarray, int, int]:
    codes = _codes(labels)
    n = len(codes)
    st = None if strata is None else _codes(strata)
    pairs = _pair_mask(n, st)
    perms = all_permutations(n, st, limit=n_permutations) if exact else None
    if perms is None:
        perms = _permutations(n, n_permutations, np.random.default_rng(seed), st)
    permuted = codes[perms]
    same_obs = codes[:, None] == codes[None, :]
    obs = _separation(sims, same_obs[None], pairs)[0]
    null = _separation(sims, permuted[:, :, None] == permuted[:, None, :], pairs)
    return obs, null, int((same_obs & pairs).sum()), int((~same_obs & pairs).sum())


def permutation_test(sim: np.ndarray, labels: Sequence, *, n_permutations: int = 1000,
                     seed: int = 0, strata: Sequence | None = None) -> PermutationResult:
    """Are same-label pairs more similar than different-label pairs?

    Args:
        sim: ``[n, n]`` similarity.
        labels: One label per language (family, script, ...).
        n_permutations: Label shuffles (vectorised).
        seed: RNG seed.
        strata: Optional second labelling: shuffle only within strata and count only pairs
            inside a stratum (e.g. family effect among same-script pairs).
    """
    if n_permutations < 1:
        raise ValueError(f"n_permutations must be >= 1, got {n_permutations}")
    arrangements = n_arrangements(labels, strata)
    exact = all_permutations(len(labels), None if strata is None else _codes(strata),
                             limit=n_permutations) is not None
    obs, null, nw, nb = _separation_null(np.asarray(sim)[None], labels,
                                         n_permutations=n_permutations, seed=seed,
                                         strata=strata, exact=exact)
    o, nl = float(obs[0]), null[:, 0]
    if not np.isfinite(o):
        return PermutationResult(np.nan, np.nan, np.nan, np.nan, len(null), nw, nb,
                                 arrangements)
    nl = nl[np.isfinite(nl)]
    if exact:  # every arrangement once per its multiplicity, the observed one included
        p = float((nl >= o - 1e-12).mean())
    else:
        p = float((1 + (nl >= o - 1e-12).sum()) / (1 + n_permutations))
    return PermutationResult(o, p, float(nl.mean()), float(nl.std()), len(null), nw, nb,
                             arrangements)


def layer_separation(freq: np.ndarray, labels: Mapping[str, Sequence], *,
                     metric: Metric = "centered", n_permutations: int = 1000, seed: int = 0,
                     top_share: float = 0.1) -> pd.DataFrame:
    """Per layer and labelling: separation (within - between), its null z-score and p-value.

    Args:
        freq: ``[n_lang, L, E]``.
        labels: ``{name: one label per language}`` (e.g. family, script).
    """
    sims = layer_similarity(freq, metric=metric, top_share=top_share)
    frames = []
    for name, lab in labels.items():
        obs, null, _, _ = _separation_null(sims, lab, n_permutations=n_permutations, seed=seed,
                                           strata=None)
        with np.errstate(invalid="ignore"):
            mu, sd = np.nanmean(null, 0), np.nanstd(null, 0)
            z = np.where(sd > 0, (obs - mu) / np.where(sd > 0, sd, 1), np.nan)
        p = (1 + (null >= obs[None] - 1e-12).sum(0)) / (1 + n_permutations)
        frames.append(pd.DataFrame({"layer": np.arange(sims.shape[0]), "labelling": name,
                                    "separation": obs, "null_mean": mu, "z": z, "p": p}))
    return pd.concat(frames, ignore_index=True)


def separation(sim: np.ndarray, labels: Sequence) -> float:
    """Mean same-label pair similarity minus mean different-label pair similarity."""
    codes = _codes(labels)
    same = codes[:, None] == codes[None, :]
    return float(_separation(np.asarray(sim)[None], same[None], _pair_mask(len(codes), None))[0, 0])


def label_table(sim: np.ndarray, langs: Sequence[str], *,
                fields: Sequence[str] = LABEL_FIELDS, n_permutations: int = 1000,
                seed: int = 0, boot: BootstrapResult | None = None) -> pd.DataFrame:
    """Per labelling: ARI/NMI of the clustering, separation with permutation p-value.

    Also the stratified tests: family (and branch) effect among same-script pairs, script
    effect among same-family pairs (NaN where no pair qualifies), the smallest p-value each
    test can reach with these languages (``p_floor``), and, when ``boot`` is given, a
    bootstrap interval of the separation (token-sampling noise only: the languages are fixed).
    """
    tree = cluster_tree(sim)
    labels = {f: language_labels(langs, f) for f in fields}
    rows = []
    for f, lab in labels.items():
        row = {"labelling": f} | agreement(sim, lab, n_permutations=n_permutations, seed=seed,
                                          tree=tree)
        t = permutation_test(sim, lab, n_permutations=n_permutations, seed=seed)
        row |= {"separation": t.statistic, "z": t.z, "p": t.p_value, "p_floor": t.p_floor,
                "within_pairs": t.n_within}
        control = "family" if f == "script" else "script"
        ts = permutation_test(sim, lab, n_permutations=n_permutations, seed=seed,
                              strata=language_labels(langs, control))
        row |= {"controlled_for": control, "separation_controlled": ts.statistic,
                "p_controlled": ts.p_value, "p_controlled_floor": ts.p_floor,
                "within_pairs_controlled": ts.n_within}
        if boot is not None:
            _, lo, hi = boot.stat_interval(lambda s, lab=lab: separation(s, lab))
            row |= {"separation_low": lo, "separation_high": hi}
        rows.append(row)
    return pd.DataFrame(rows)


def control_table(sim: np.ndarray, langs: Sequence[str], *,
                  pairs: Sequence[tuple[str, str, str]] = CONTROL_PAIRS,
                  boot: BootstrapResult | None = None) -> pd.DataFrame:
    """Similarity, rank and percentile among all pairs of the control pairs present in ``langs``."""

    table = pair_table(sim, langs)
    index = {code: i for i, code in enumerate(langs)}
    lo = hi = None
    if boot is not None:
        lo, hi = boot.interval()
    rows = []
    for a, b, what in pairs:
        if a not in index or b not in index:
            continue
        hit = table[((table.a == a) & (table.b == b)) | ((table.a == b) & (table.b == a))].iloc[0]
        la, lb = get_language(a), get_language(b)
        row = {"pair": f"{a}–{b}", "what": what, "similarity": hit.similarity,
               "rank": int(hit["rank"]), "of": len(table), "percentile": hit.percentile,
               "same_family": la.family == lb.family, "same_script": la.script == lb.script}
        if lo is not None:
            row |= {"low": lo[index[a], index[b]], "high": hi[index[a], index[b]]}
        rows.append(row)
    return pd.DataFrame(rows)


def group_means(sim: np.ndarray, langs: Sequence[str]) -> pd.DataFrame:
    """Mean pair similarity by (same family?, same script?) — the 2 x 2 table behind the tests."""
    fam = _codes(language_labels(langs, "family"))
    scr = _codes(language_labels(langs, "script"))
    i, j = np.triu_indices(len(langs), 1)
    df = pd.DataFrame({"same_family": fam[i] == fam[j], "same_script": scr[i] == scr[j],
                       "similarity": np.asarray(sim)[i, j]})
    grouped = df.groupby(["same_family", "same_script"]).similarity
    return grouped.agg(["mean", "count"]).reset_index()
