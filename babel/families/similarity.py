"""Do activation patterns follow language families or scripts? Similarities, clusters, tests.

Input everywhere is a stack of per-language frequency matrices ``freq[n_lang, L, E]``
(:func:`babel.profile.cache.frequency_tensor`), or any ``[n_lang, ...]`` array (raw neurons:
``Profile.neuron_frequency``). Design choices the paper leaves open, taken here:

- **Similarity** of two languages = similarity of their flattened frequency vectors (all L·E
  experts, or one layer's E for per-layer curves). Four metrics:

  - ``"centered"`` (default): cosine after subtracting each expert's mean frequency over the
    languages analysed, so only how a language *deviates* from the average language counts.
    Without it the experts every language selects (the shared, always-on structure) dominate
    and every pair scores close to 1. It depends on the language set: adding languages moves
    the mean.
  - ``"cosine"``: cosine of the raw frequencies (shown for contrast).
  - ``"pearson"``: correlation of the two vectors (each centred over its own experts): removes
    a language's overall level, keeps the shared profile.
  - ``"jaccard"``: overlap of the two languages' top-k experts, ``k = top_share`` of the
    experts compared (all L·E, or E per layer).

- **Clusters**: average linkage (UPGMA, scipy) on ``1 - similarity``, cut at the number of
  groups of the labelling it is compared with; agreement = adjusted Rand index and NMI
  (sklearn). The ARI's p-value shuffles the labels (vectorised contingency tables).
- **Separation** of a labelling: mean similarity of same-label pairs minus mean similarity of
  different-label pairs (unordered pairs). Its permutation test shuffles labels over
  languages; with ``strata`` labels are shuffled only within strata and only within-stratum
  pairs count (family effect among same-script pairs, or script effect among same-family
  pairs). One-sided p = (1 + #{null >= observed}) / (1 + P).
- **Bootstrap**: each language's token chunks are resampled with replacement (multinomial
  chunk weights), frequency = Σ counts / Σ tokens, similarities recomputed; percentile
  intervals.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd

from babel.data.languages import get_language

LABEL_FIELDS: tuple[str, ...] = ("family", "branch", "script")
Metric = Literal["centered", "cosine", "pearson", "jaccard"]
METRICS: tuple[str, ...] = ("centered", "cosine", "pearson", "jaccard")


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")


def _vectors(freq: np.ndarray) -> np.ndarray:
    x = np.asarray(freq, dtype=np.float64)
    if x.ndim < 2 or x.shape[0] < 2:
        raise ValueError(f"need frequencies [n_lang >= 2, ...], got shape {x.shape}: stack "
                         f"at least two languages (frequency_tensor)")
    return x.reshape(x.shape[0], -1)


def _cosine_rows(x: np.ndarray) -> np.ndarray:
    x = x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
    return x @ np.swapaxes(x, -1, -2)


def _similarity(x: np.ndarray, metric: str, top_share: float) -> np.ndarray:
    """Batched similarity ``[B, n, n]`` of vectors ``x[B, n, D]``."""
    if metric == "cosine":
        return _cosine_rows(x)
    if metric == "centered":
        return _cosine_rows(x - x.mean(-2, keepdims=True))
    if metric == "pearson":
        return _cosine_rows(x - x.mean(-1, keepdims=True))
    k = max(1, round(top_share * x.shape[-1]))
    top = np.argpartition(-x, k - 1, axis=-1)[..., :k]
    mask = np.zeros(x.shape, dtype=np.float32)
    np.put_along_axis(mask, top, 1.0, axis=-1)
    inter = (mask @ np.swapaxes(mask, -1, -2)).astype(np.float64)
    return inter / (2 * k - inter)


def similarity(freq: np.ndarray, *, metric: Metric = "centered",
               top_share: float = 0.1) -> np.ndarray:
    """``[n, n]`` language × language similarity over all layers and experts.

    Args:
        freq: ``[n_lang, L, E]`` frequencies (or any ``[n_lang, ...]``; flattened).
        metric: ``"centered"``, ``"cosine"``, ``"pearson"`` or ``"jaccard"`` (module docstring).
        top_share: Share of experts in each language's top set (``"jaccard"`` only).
    """
    _check_metric(metric)
    return _similarity(_vectors(freq)[None], metric, top_share)[0]


def layer_similarity(freq: np.ndarray, *, metric: Metric = "centered",
                     top_share: float = 0.1) -> np.ndarray:
    """``[L, n, n]`` similarity of each layer separately (``freq[n_lang, L, E]``)."""
    _check_metric(metric)
    f = np.asarray(freq, dtype=np.float64)
    if f.ndim != 3:
        raise ValueError(f"layer_similarity needs [n_lang, L, E], got shape {f.shape}")
    return _similarity(np.swapaxes(f, 0, 1), metric, top_share)


def metric_summary(freq: np.ndarray, *, top_share: float = 0.1) -> pd.DataFrame:
    """Per metric: mean, min and max off-diagonal similarity (how much the metric spreads)."""
    iu = np.triu_indices(freq.shape[0], 1)
    rows = []
    for m in METRICS:
        s = similarity(freq, metric=m, top_share=top_share)[iu]
        rows.append({"metric": m, "mean": s.mean(), "min": s.min(), "max": s.max(),
                     "std": s.std()})
    return pd.DataFrame(rows)


def language_labels(langs: Sequence[str], field: str) -> list[str]:
    """The ``family``, ``branch`` or ``script`` of each language (``data/languages.csv``)."""

    if field not in LABEL_FIELDS:
        raise ValueError(f"field must be one of {LABEL_FIELDS}, got {field!r}")
    return [getattr(get_language(code), field) for code in langs]


def _codes(labels: Sequence) -> np.ndarray:
    return np.unique(np.asarray(labels, dtype=object).astype(str), return_inverse=True)[1]


def pair_table(sim: np.ndarray, langs: Sequence[str]) -> pd.DataFrame:
    """Every unordered pair with its similarity, rank (1 = most similar) and percentile.

    ``percentile`` = share of all pairs (in %) at most as similar as this one.
    """
    i, j = np.triu_indices(len(langs), 1)
    s = sim[i, j]
    order = np.argsort(-s, kind="stable")
    rank = np.empty(len(s), dtype=int)
    rank[order] = np.arange(1, len(s) + 1)
    pct = 100.0 * (s[None, :] <= s[:, None]).mean(1)
    return pd.DataFrame({"a": np.asarray(langs)[i], "b": np.asarray(langs)[j],
                         "similarity": s, "rank": rank, "percentile": pct})
