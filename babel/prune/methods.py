"""Pruning methods compared: importance score × compensation × allocation, quality against speed.

A :class:`Method` is one way to choose and remove experts for a language at kept share ``k``:

- an importance **score** (:mod:`babel.prune.importance`: ``frequency``, the paper's, and the
  magnitude scores ``mass``, ``weighted``, ``fluctuation``, or a ``-contrast`` variant);
- **compensation** (:mod:`babel.prune.compensation`): the removed experts' mean output on
  the language's profiling split added back as a constant bias, or none;
- an **allocation** of the budget over layers: ``global`` (rank all L·E experts together),
  ``uniform`` (every layer keeps the same number, the lowest-scored go in each layer),
  ``adaptive`` (per-layer counts ∝ the layer's effective number of experts,
  :func:`babel.prune.masks.adaptive_counts`) or ``sensitivity`` (per-layer counts from the
  measured rise when one layer at a time loses a fixed share,
  :func:`layer_sensitivity` and :func:`babel.prune.masks.sensitivity_counts`).

:func:`run_frontier` evaluates them in stages (a full grid is too slow for 2 CPU cores; the
``full`` parameters widen every stage):

1. **screen** every score × compensation at the screening shares, under the first of the
   allocations given (default ``uniform``), beside the paper's method;
2. the ``-contrast`` variant of the best screened score;
3. the other allocations for the best so far (sensitivity measured once, on a pooled sample
   of the pruning languages' **profiling** items: a property of the layer more than of the
   language, and 18 evaluations instead of 18 per language);
4. the best method at every kept share, and the random floor (uniform random experts).

"Best" is the lowest mean, over the screening shares, of the median rise over languages.
Perplexity is always on the **evaluation** split; scores, means and sensitivity come from
the profiling split only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from torch import nn

from babel.construct.partition import Partition
from babel.core import paths
from babel.core.artifacts import atomic_path, jsonable
from babel.data.chunking import TokenChunks, chunk_texts
from babel.data.corpus import load_items
from babel.models.surgery import prune_model
from babel.profile.classes import specificity_z
from babel.profile.profiler import Profile
from babel.prune import importance as imp
from babel.prune.compensation import removed_mean_bias
from babel.prune.evaluation import Evaluator, throughput
from babel.prune.experiments import causal_removal, evaluation_set, speed_batch
from babel.prune.masks import (
    ALLOCATIONS,
    keep_mask,
    keep_top,
    neuron_keep_mask,
    sensitivity_counts,
    uniform_counts,
    uniform_random_mask,
)

METHOD_ALLOCATIONS = (*ALLOCATIONS, "uniform", "sensitivity")
RANDOM = "random"
#: The columns of the frontier table (``build/results/pruning_methods_<model>.csv``).
COLUMNS = ("method", "compensation", "allocation", "k", "language", "ppl_dense", "ppl_pruned",
           "rise", "body_speedup", "e2e_speedup")


@dataclasses.dataclass(frozen=True)
class Method:
    """One pruning method: importance score, compensation (``"none"``/``"mean"``), allocation."""

    score: str
    compensation: str = "none"
    allocation: str = "global"

    def __post_init__(self):
        if self.score != RANDOM:
            imp.check_score(self.score)
        if self.compensation not in ("none", "mean"):
            raise ValueError(f"compensation must be 'none' or 'mean', got {self.compensation!r}")
        if self.allocation not in METHOD_ALLOCATIONS:
            raise ValueError(f"allocation must be one of {METHOD_ALLOCATIONS}, got "
                             f"{self.allocation!r}")

    @property
    def label(self) -> str:
        return f"{self.score} · {self.compensation} · {self.allocation}"

    def key(self) -> tuple[str, str, str]:
        return (self.score, self.compensation, self.allocation)


#: The paper's method: selection frequency, no compensation, one ranking across layers.
PAPER = Method("frequency", "none", "global")


def method_mask(method: Method, score: np.ndarray, share: float, *,
                sensitivity: np.ndarray | None = None) -> np.ndarray:
    """``[L, E]`` keep-mask of ``method`` from one language's ``score`` at kept share ``share``.

    ``frequency`` with ``global`` allocation is exactly the paper-style mask of
    :func:`babel.prune.masks.keep_mask`; the magnitude scores are ranked as each expert's
    share of its layer (:func:`babel.prune.importance.ranking_score`).
    """
    values = imp.ranking_score(method.score, score)
    if method.allocation == "sensitivity":
        if sensitivity is None:
            raise ValueError("the sensitivity allocation needs the measured per-layer rises: "
                             "pass sensitivity=layer_sensitivity(...)")
        return keep_top(values, sensitivity_counts(sensitivity, share, values.shape[1]))
    if method.allocation == "uniform":
        return keep_top(values, uniform_counts(share, *values.shape))
    return keep_mask(values, share, allocation=method.allocation)


def layer_sensitivity(ev: Evaluator, score: np.ndarray, partition: Partition, *, key: str,
                      removed_share: float = 0.25,
                      bias_fn: Callable[[np.ndarray], np.ndarray | None] | None = None
                      ) -> np.ndarray:
    """``[L]`` perplexity rise when layer ``l`` alone loses its least important experts.

    Args:
        ev: Evaluator whose chunks ``key`` are the sample to measure on (profiling items).
        score: ``[L, E]`` importance (the pooled score of the languages).
        partition: The expert partition.
        key: The evaluator's chunk name.
        removed_share: Share of a layer's experts removed (its lowest-scored ones).
        bias_fn: Compensation bias of a neuron keep-mask, or None.
    """
    s = np.asarray(score, dtype=np.float64)
    n_layers, n_exp = s.shape
    n_remove = max(1, round(removed_share * n_exp))
    out = np.zeros(n_layers)
    for layer in range(n_layers):
        counts = np.full(n_layers, n_exp, dtype=np.int64)
        counts[layer] = n_exp - n_remove
        nm = neuron_keep_mask(keep_top(s, counts), partition)
        out[layer] = ev.rise(nm, key, bias=None if bias_fn is None else bias_fn(nm))
    return out


def sensitivity_key(m: Method) -> str:
    """The measured sensitivity of a method depends on its score and compensation."""
    return f"{m.score} · {m.compensation}"


class Scores:
    """Importance matrices ``[L, E]`` per (score, language), computed once each."""

    def __init__(self, profiles: Mapping[str, Profile], partition: Partition,
                 norms: np.ndarray | None):
        self.profiles, self.partition, self.norms = profiles, partition, norms
        self._cache: dict[str, dict[str, np.ndarray]] = {}

    def __call__(self, name: str, lang: str) -> np.ndarray:
        if name not in self._cache:
            self._cache[name] = imp.importance(self.profiles, name, self.partition,
                                               norms=self.norms)
        return self._cache[name][lang]

    def pooled(self, name: str, languages: Sequence[str]) -> np.ndarray:
        """The languages' ranking scores summed (the sensitivity measurement's ranking)."""
        return sum(imp.ranking_score(name, self(name, x)) for x in languages)


@dataclasses.dataclass
class Frontier:
    """What :func:`run_frontier` measured."""

    table: pd.DataFrame  # one row per (method, k, language): COLUMNS minus the speed
    best: Method
    screen: pd.DataFrame  # median rise per method and screening share
    sensitivity: dict[str, list[float]]  # per "score · compensation": [L] measured rises
    masks: dict[tuple, np.ndarray]  # (score, comp, alloc, k, lang) -> [L, N] neuron keep
    biases: dict[tuple, np.ndarray | None]
    scores: Scores


def median_table(table: pd.DataFrame) -> pd.DataFrame:
    """Median rise over languages per (method, compensation, allocation, k)."""
    return (table.groupby(["method", "compensation", "allocation", "k"], sort=False)["rise"]
            .median().rename("median_rise").reset_index())


def best_method(table: pd.DataFrame, shares: Sequence[float]) -> Method:
    """The non-random method with the lowest mean (over ``shares``) median rise."""
    med = median_table(table[(table.method != RANDOM) & table.k.isin(list(shares))])
    full = med.groupby(["method", "compensation", "allocation"], sort=False).filter(
        lambda g: set(g.k) >= set(shares))
    score = full.groupby(["method", "compensation", "allocation"], sort=False)["median_rise"].mean()
    return Method(*score.idxmin())


def run_frontier(ev: Evaluator, model: nn.Module, profiles: Mapping[str, Profile],
                 partition: Partition, *, languages: Sequence[str], scores: Sequence[str],
                 compensations: Sequence[str], allocations: Sequence[str],
                 screen_shares: Sequence[float], kept_shares: Sequence[float],
                 seeds: Sequence[int], sensitivity_ev: Evaluator | None = None,
                 sensitivity_share: float = 0.25, contrast: bool = True,
                 full_grid: bool = False, log: Callable[[str], None] = print) -> Frontier:
    """Evaluate pruning methods in stages (module docstring) on ``languages``.

    Args:
        ev: Evaluator on the evaluation split, one chunk set per language.
        model: The dense model (down-projection norms, compensation biases).
        profiles: Profiles of every experiment language (contrast takes its mean over all).
        partition: The expert partition.
        languages: The pruning languages.
        scores: Base scores to screen.
        compensations: ``"none"`` and/or ``"mean"``.
        allocations: The screening allocation first, then the others tried for the best
            method.
        screen_shares: Kept shares of the screen (and of "best").
        kept_shares: Every kept share of the frontier (the best method and the random floor).
        seeds: Seeds of the random floor (uniform random experts).
        sensitivity_ev: Evaluator with chunks ``"pooled"`` (profiling items) for the sensitivity
            allocation.
        sensitivity_share: Share of one layer's experts removed to measure its sensitivity.
        contrast: Try the ``-contrast`` variant of the best screened score.
        full_grid: Every (score, compensation, allocation) at every kept share (slow).
        log: Progress lines.
    """
    norms = imp.down_norms(model)
    sc = Scores(profiles, partition, norms)
    rows, masks, biases = [], {}, {}
    sensitivity: dict[str, list[float]] = {}

    def bias_for(lang: str):
        mean = profiles[lang].neuron_mean
        return lambda nm: removed_mean_bias(model, mean, nm)

    def pooled_bias(nm):
        return removed_mean_bias(model, sum(profiles[x].neuron_sum for x in languages)
                                 / max(sum(profiles[x].tokens for x in languages), 1), nm)

    def sens(m: Method) -> np.ndarray:
        key = sensitivity_key(m)
        if key not in sensitivity:
            if sensitivity_ev is None:
                raise ValueError("the sensitivity allocation needs sensitivity_ev (profiling "
                                 "items of the pruning languages, chunks named 'pooled')")
            sensitivity[key] = layer_sensitivity(
                sensitivity_ev, sc.pooled(m.score, languages), partition, key="pooled",
                removed_share=sensitivity_share,
                bias_fn=pooled_bias if m.compensation == "mean" else None).tolist()
        return np.asarray(sensitivity[key])

    def evaluate(m: Method, shares: Sequence[float]) -> None:
        done = {(r["method"], r["compensation"], r["allocation"], r["k"]) for r in rows}
        for k in shares:
            if (*m.key(), k) in done:
                continue
            for lang in languages:
                sv = sens(m) if m.allocation == "sensitivity" else None
                nm = neuron_keep_mask(method_mask(m, sc(m.score, lang), k, sensitivity=sv),
                                      partition)
                b = bias_for(lang)(nm) if m.compensation == "mean" else None
                masks[(*m.key(), k, lang)], biases[(*m.key(), k, lang)] = nm, b
                rows.append(_row(ev, m, k, lang, nm, b))
        mine = pd.DataFrame([r for r in rows if (r["method"], r["compensation"],
                                                 r["allocation"]) == m.key()])
        log(f"{m.label}: median rise " + ", ".join(
            f"k={k:g} {100 * mine[mine.k == k].rise.median():+.1f}%" for k in shares))

    screen_alloc, other_allocs = allocations[0], list(allocations[1:])
    evaluate(PAPER, screen_shares)
    for m in [Method(x, c, screen_alloc) for x in scores for c in compensations]:
        evaluate(m, kept_shares if full_grid else screen_shares)
    best = best_method(pd.DataFrame(rows), screen_shares)
    if contrast and not best.score.endswith(imp.CONTRAST):
        evaluate(Method(best.score + imp.CONTRAST, best.compensation, best.allocation),
                 screen_shares)
        best = best_method(pd.DataFrame(rows), screen_shares)
    for alloc in other_allocs:
        for c in (compensations if full_grid else [best.compensation]):
            evaluate(Method(best.score, c, alloc), kept_shares if full_grid else screen_shares)
    best = best_method(pd.DataFrame(rows), screen_shares)
    evaluate(best, kept_shares)
    evaluate(PAPER, kept_shares)
    for k in kept_shares:
        for lang in languages:
            nms = [neuron_keep_mask(uniform_random_mask(partition.n_layers, partition.n_experts,
                                                        k, seed=s), partition) for s in seeds]
            ppl = float(np.mean([ev(nm, lang).ppl for nm in nms]))
            dense = ev(None, lang).ppl
            masks[(RANDOM, "none", "uniform", k, lang)] = nms[0]
            biases[(RANDOM, "none", "uniform", k, lang)] = None
            rows.append({"method": RANDOM, "compensation": "none", "allocation": "uniform",
                         "k": k, "language": lang, "ppl_dense": dense, "ppl_pruned": ppl,
                         "rise": ppl / dense - 1.0})
    table = pd.DataFrame(rows)
    screen = median_table(table[table.k.isin(list(screen_shares))])
    return Frontier(table, best, screen, sensitivity, masks, biases, sc)


def sensitivity_chunks(tokenizer, languages: Sequence[str], *, n_items: int, seq_len: int,
                       source: str = "builtin", path: str | None = None) -> TokenChunks:
    """The pooled sensitivity sample: the first ``n_items`` **profiling** items of every
    language, chunked like the evaluation text (the evaluation split is never used)."""
    texts = [it.text for lang in languages for it in load_items(
        lang, source=source, split="profiling", max_items=n_items, path=path)]
    return chunk_texts(texts, tokenizer, seq_len=seq_len)


def _row(ev: Evaluator, m: Method, k: float, lang: str, nm: np.ndarray, bias) -> dict:
    dense, pruned = ev(None, lang).ppl, ev(nm, lang, bias=bias).ppl
    return {"method": m.score, "compensation": m.compensation, "allocation": m.allocation,
            "k": k, "language": lang, "ppl_dense": dense, "ppl_pruned": pruned,
            "rise": pruned / dense - 1.0}


def frontier_speed(model: nn.Module, frontier: Frontier, batch, *, language: str,
                   repeats: int = 5, max_repeats: int = 12) -> pd.DataFrame:
    """Measured body and end-to-end speedup of every (method, k) of the frontier, timed on
    ``language``'s masks.

    Speed depends only on the kept neurons per layer (and on whether a bias is added), not on
    which neurons or on the text: the masks are grouped by their per-layer sizes and
    compensation, and each group's pruned model is timed once, interleaved with the dense
    model (body passes, paired rounds: :func:`babel.prune.evaluation.throughput` with its
    adaptive rounds). Uniform allocation gives every score the same sizes at a given ``k``,
    so few groups remain. End to end adds the head time measured once on the dense model
    (``e2e − body``), the same for every model:
    ``e2e_speedup = (body_dense + head) / (body_pruned + head)``.

    Returns:
        One row per (method, compensation, allocation, k): ``body_speedup``, ``e2e_speedup``,
        ``rounds`` and ``speed_timed_on``.
    """
    base = throughput({"dense": model}, batch, repeats=repeats, end_to_end=True)
    med = base.set_index("part").median_s
    head = max(float(med["end_to_end"] - med["body"]), 0.0)
    groups: dict[tuple, list[tuple]] = {}
    for key, nm in frontier.masks.items():
        if key[4] == language:
            bias = frontier.biases[key]
            groups.setdefault((tuple(np.asarray(nm).sum(1).tolist()), bias is not None),
                              []).append(key)
    rows = []
    for keys in groups.values():
        nm, bias = frontier.masks[keys[0]], frontier.biases[keys[0]]
        pruned = prune_model(model, nm, bias=bias)
        t = throughput({"dense": model, "pruned": pruned}, batch, repeats=repeats,
                       max_repeats=max_repeats, end_to_end=False).set_index("model")
        bd, bp = float(t.loc["dense", "median_s"]), float(t.loc["pruned", "median_s"])
        for score, comp, alloc, k, _ in keys:
            rows.append({"method": score, "compensation": comp, "allocation": alloc, "k": k,
                         "body_speedup": bd / bp, "e2e_speedup": (bd + head) / (bp + head),
                         "rounds": int(t.loc["pruned", "repeats"]),
                         "speed_timed_on": language})
        del pruned
    return pd.DataFrame(rows)


def with_speed(table: pd.DataFrame, speed: pd.DataFrame) -> pd.DataFrame:
    """The frontier table with the measured speedups of its (method, k) joined on."""
    keys = ["method", "compensation", "allocation", "k"]
    out = table.merge(speed.drop(columns=["rounds"], errors="ignore"), on=keys, how="left")
    return out[[*COLUMNS, *[c for c in out.columns if c not in COLUMNS]]]


def own_language(ev: Evaluator, frontier: Frontier, model: nn.Module,
                 profiles: Mapping[str, Profile], partition: Partition, *, method: Method,
                 share: float, languages: Sequence[str]) -> tuple[pd.DataFrame, dict]:
    """Rise of language A's mask (``method``, share ``k``) on language B's text, every pair.

    Returns:
        ``(matrix, summary)``: rows the mask's language, columns the evaluated one; the
        summary counts the languages whose own mask has the lowest rise on their own text.
    """
    mat = pd.DataFrame(index=list(languages), columns=list(languages), dtype=float)
    for a in languages:
        nm = neuron_keep_mask(method_mask(method, frontier.scores(method.score, a), share,
                                          sensitivity=np.asarray(frontier.sensitivity.get(
                                              sensitivity_key(method), [])) if
                                          method.allocation == "sensitivity" else None),
                              partition)
        b_ = (removed_mean_bias(model, profiles[a].neuron_mean, nm)
              if method.compensation == "mean" else None)
        for b in languages:
            mat.loc[a, b] = ev.rise(nm, b, bias=b_)
    own_best = [b for b in languages if mat[b].idxmin() == b]
    return mat, {"method": method.label, "k": share, "own_best": own_best,
                 "n_own_best": len(own_best), "n_languages": len(languages)}


def specific_by_score(scores: np.ndarray, *, z: float) -> np.ndarray:
    """``[n_lang, L, E]`` experts specific to each language under an importance score: above
    the layer's mean share in that language and ``z`` or more standard deviations above the
    other languages (:func:`babel.profile.classes.specificity_z`)."""
    s = np.stack([imp.layer_shares(x) for x in np.asarray(scores, dtype=np.float64)])
    return (s >= 1.0 / s.shape[-1]) & (specificity_z(s) >= z)


def first_sentence(table: pd.DataFrame, best: Method, *, model: str,
                   shares: Sequence[float] = (0.9, 0.8)) -> str:
    """The notebook's opening claim: the best method, its median rise and speed at ``shares``,
    against the paper's frequency ranking."""
    rows = table.set_index(["method", "compensation", "allocation", "k"]).sort_index()

    def rises(m: Method, k: float) -> pd.DataFrame | None:
        key = (*m.key(), k)
        return rows.loc[[key]] if key in rows.index else None  # a frame even for one row

    parts, goals = [], []
    for k in shares:
        r, paper = rises(best, k), rises(PAPER, k)
        if r is None:
            continue
        txt = f"k = {k:g}: median rise {100 * r.rise.median():+.1f}%"
        if "body_speedup" in r and r.body_speedup.notna().any():
            txt += (f", body ×{r.body_speedup.iloc[0]:.2f}, end to end "
                    f"×{r.e2e_speedup.iloc[0]:.2f}")
        if paper is not None:
            txt += f" (the paper's frequency ranking: {100 * paper.rise.median():+.1f}%)"
        parts.append(txt)
    for k, goal in GOALS.items():
        r = rises(best, k)
        if r is not None:
            met = "met" if float(r.rise.median()) <= goal else "not met"
            goals.append(f"≤ {100 * goal:.0f}% at k = {k:g} {met}")
    return (f"**Best pruning method on {model}: {best.label}** (score · compensation · "
            f"allocation) — " + "; ".join(parts) + "." +
            (f" Goals: {', '.join(goals)}." if goals else "") +
            compensation_sentence(table, best))


def compensation_sentence(table: pd.DataFrame, best: Method) -> str:
    """How mean compensation changed the best score's median rise at the screening shares
    (same score and allocation, compensation on against off); empty when not measured."""
    med = median_table(table[table.method != RANDOM])
    parts = []
    for k in sorted(set(med.k), reverse=True):
        sel = med[(med.method == best.score) & (med.allocation == best.allocation)
                  & (med.k == k)].set_index("compensation").median_rise
        if {"none", "mean"} <= set(sel.index):
            parts.append(f"{100 * sel['none']:+.1f}% → {100 * sel['mean']:+.1f}% at k = {k:g}")
    return (f" Mean compensation ({best.score}, {best.allocation}): " + "; ".join(parts) + "."
            if parts else "")


def frontier_run(ev: Evaluator, model: nn.Module, tokenizer, profiles: Mapping[str, Profile],
                 partition: Partition, *, languages: Sequence[str], settings,
                 speed_language: str, model_name: str, source: str = "builtin"
                 ) -> tuple[Frontier, pd.DataFrame]:
    """Notebook 04's frontier in one call: :func:`run_frontier` with the notebook's settings
    (:class:`babel.prune.settings.PruningSettings`, ``methods_*``), the sensitivity sample
    (:func:`sensitivity_chunks`), measured speed (:func:`frontier_speed` on
    ``speed_language``'s masks) and the table written to
    ``build/results/pruning_methods_<model>.csv``.

    Returns:
        ``(frontier, table)``: the table has :data:`COLUMNS` first, then ``speed_timed_on``.
    """
    s = settings
    sens_ev = Evaluator(model, {"pooled": sensitivity_chunks(
        tokenizer, languages, n_items=s.methods_sensitivity_items, seq_len=s.eval_seq_len,
        source=source)}, batch_size=ev.batch_size, bos_id=ev.bos_id)
    fr = run_frontier(ev, model, profiles, partition, languages=languages,
                      scores=s.methods_scores, compensations=s.methods_compensation,
                      allocations=s.methods_allocations, screen_shares=s.methods_screen_shares,
                      kept_shares=s.methods_kept_shares, seeds=s.seeds, sensitivity_ev=sens_ev,
                      sensitivity_share=s.methods_sensitivity_share,
                      contrast=s.methods_contrast, full_grid=s.methods_full_grid)
    batch = speed_batch(tokenizer, speed_language, batch=s.speed_batch, seq_len=s.speed_seq_len,
                        source=source)
    table = with_speed(fr.table, frontier_speed(model, fr, batch, language=speed_language))
    write_csv(table, paths.results_file(f"pruning_methods_{model_name}.csv"))
    return fr, table


def frontier_models(exp, settings, model: nn.Module, tokenizer, ev: Evaluator,
                    profiles: Mapping[str, Profile], partition: Partition, *,
                    languages: Sequence[str], speed_language: str
                    ) -> dict[str, tuple[Frontier, pd.DataFrame]]:
    """:func:`frontier_run` for the experiment's model, then for every model of
    ``settings.methods_models`` (loaded, partitioned and profiled under the same experiment
    settings: the caches notebook 03's model comparison wrote; evaluated on the same items).

    Returns:
        ``{model name: (frontier, table)}``, the experiment's model first.
    """
    out = {}
    for name in (exp.model, *[m for m in settings.methods_models if m != exp.model]):
        if name == exp.model:
            lm, tok, e, prof, part = model, tokenizer, ev, profiles, partition
        else:
            lm, tok = exp.load_model(name)
            part = exp.build_partition(lm, model_name=name)
            prof = exp.profiles(lm, tok, part, model_name=name, progress=False)
            e = Evaluator(lm, evaluation_set(tok, languages, settings,
                                             source=exp.profile.corpus),
                          batch_size=ev.batch_size, bos_id=tok.bos_token_id)
        out[name] = frontier_run(e, lm, tok, prof, part, languages=languages, settings=settings,
                                 speed_language=speed_language, model_name=name,
                                 source=exp.profile.corpus)
    return out


def frontier_record(fr: Frontier, table: pd.DataFrame, *, prefix: str = "") -> dict:
    """What the notebook records of the frontier (JSON-ready); ``prefix`` names another
    model's records (``"smollm2-135m/"``)."""
    return {f"{prefix}methods_best": fr.best.label,
            f"{prefix}methods_median": median_table(table).round(6).to_dict("records"),
            f"{prefix}methods_sensitivity": {k: [round(x, 6) for x in v]
                                             for k, v in fr.sensitivity.items()}}


def rise_pivot(table: pd.DataFrame) -> pd.DataFrame:
    """Median rise over languages (%) per method (rows) and kept share (columns)."""
    med = median_table(table).assign(median_rise=lambda d: (100 * d.median_rise).round(2))
    return med.pivot_table(index=["method", "compensation", "allocation"], columns="k",
                           values="median_rise", sort=False)


def best_checks(ev: Evaluator, fr: Frontier, model: nn.Module, profiles: Mapping[str, Profile],
                partition: Partition, *, languages: Sequence[str],
                languages_all: Sequence[str], target: str, share: float,
                seeds: Sequence[int], z: float) -> tuple[pd.DataFrame, dict, dict]:
    """The language and causal tests with the best method: :func:`own_language` at
    ``share`` and :func:`best_causal` for ``target``. Returns (matrix, own, causal)."""
    own, own_summary = own_language(ev, fr, model, profiles, partition,
                                    method=fr.best, share=share, languages=languages)
    _, causal = best_causal(ev, fr, languages_all, partition, target=target,
                            languages=languages, seeds=seeds, z=z)
    return own, jsonable(own_summary), jsonable(causal)


def headline(frontiers: Mapping[str, tuple[Frontier, pd.DataFrame]], own: dict | None,
             causal: dict | None) -> str:
    """The notebook's opening paragraph: :func:`first_sentence` of the experiment's model
    (the first in ``frontiers``), :func:`followups_text`, then the other models' sentences."""
    (name, (fr, table)), *others = frontiers.items()
    text = first_sentence(table, fr.best, model=name) + followups_text(own, causal)
    for other, (f, t) in others:
        text += " " + first_sentence(t, f.best, model=other)
    return text


def write_csv(table: pd.DataFrame, path) -> None:
    """Write the frontier table (columns :data:`COLUMNS` first) atomically."""
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)


def best_causal(ev: Evaluator, frontier: Frontier, languages_all: Sequence[str],
                partition: Partition, *, target: str, languages: Sequence[str],
                seeds: Sequence[int], z: float) -> tuple[pd.DataFrame, dict]:
    """The causal test (:func:`babel.prune.experiments.causal_removal`) with experts specific
    to ``target`` under the best method's score (:func:`specific_by_score` over
    ``languages_all``); the random control is matched on that score."""
    name = frontier.best.score
    scores = np.stack([frontier.scores(name, x) for x in languages_all])
    return causal_removal(ev, specific_by_score(scores, z=z), languages_all,
                          imp.ranking_score(name, frontier.scores(name, target)), partition,
                          target=target, languages=languages, seeds=seeds)


def followups_text(own: dict | None, causal: dict | None) -> str:
    """One sentence each on the language test and the causal test with the best method."""
    out = ""
    if own:
        out += (f" With it, a language's own mask (k = {own['k']:g}) has the lowest rise on its "
                f"own text for {own['n_own_best']} of {own['n_languages']} languages.")
    if causal and causal.get("n_specific"):
        out += (f" Removing the {causal['n_specific']} experts specific to {causal['language']} "
                f"under its score raises {causal['language']} perplexity "
                f"{100 * causal['rise_target']:+.1f}% against {100 * causal['rise_others_mean']:+.1f}% "
                f"for the other languages (a frequency-matched random removal: "
                f"{100 * causal['rise_target_random']:+.1f}%).")
    elif causal is not None:
        out += f" No expert is specific to {causal.get('language')} under its score."
    return out


#: What the top of notebook 04 shows until the frontier has run.
HEADLINE_PENDING = "*(the best pruning method is stated here once the notebook has run)*"

#: The issue's quality goals: median rise at most this at kept share k.
GOALS = {0.9: 0.10, 0.8: 0.30}
