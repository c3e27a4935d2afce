"""Do activation patterns follow language families or scripts? Similarities, clusters, tests.

Input everywhere is a stack of per-language frequency matrices ``freq[n_lang, L, E]``
(:func:`babel.profiling.frequency_tensor`), or any ``[n_lang, ...]`` array (raw neurons:
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

import dataclasses
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from babel.families.similarity import Metric, _check_metric, _similarity


@dataclasses.dataclass(frozen=True)
class BootstrapResult:
    """Similarity matrices recomputed on chunk-resampled frequencies.

    Attributes:
        point: ``[n, n]`` similarity of the full data.
        samples: ``[B, n, n]`` bootstrap similarities.
        level: Confidence level of :meth:`interval`.
    """

    point: np.ndarray
    samples: np.ndarray
    level: float = 0.95

    @property
    def bias(self) -> np.ndarray:
        """``[n, n]`` mean bootstrap similarity minus the point estimate.

        Resampling adds sampling noise to every frequency, which pulls similarities towards
        0 (attenuation): a strongly negative bias near +-1 warns that the percentile interval
        may sit beside the point estimate rather than around it (more tokens shrink it).
        """
        return self.samples.mean(0) - self.point

    def interval(self) -> tuple[np.ndarray, np.ndarray]:
        """Percentile interval ``(low, high)``, each ``[n, n]``."""
        a = (1 - self.level) / 2
        return (np.quantile(self.samples, a, axis=0), np.quantile(self.samples, 1 - a, axis=0))

    def stat_interval(self, fn: Callable[[np.ndarray], float]) -> tuple[float, float, float]:
        """``(point, low, high)`` of a statistic of the similarity matrix (e.g. a separation)."""
        vals = np.array([fn(s) for s in self.samples])
        a = (1 - self.level) / 2
        return float(fn(self.point)), float(np.quantile(vals, a)), float(np.quantile(vals, 1 - a))


def bootstrap_similarity(chunk_counts: Sequence[np.ndarray], chunk_tokens: Sequence[np.ndarray],
                         *, metric: Metric = "centered", top_share: float = 0.1,
                         n_bootstrap: int = 200, seed: int = 0, level: float = 0.95,
                         batch: int = 25) -> BootstrapResult:
    """Bootstrap the similarity matrix by resampling each language's token chunks.

    Args:
        chunk_counts: Per language, ``[C_a, L, E]`` selection counts per chunk
            (``Profile.chunk_counts``).
        chunk_tokens: Per language, ``[C_a]`` counted tokens per chunk.
        metric: Similarity metric.
        top_share: For ``"jaccard"``.
        n_bootstrap: Resamples B.
        seed: RNG seed.
        level: Interval level.
        batch: Resamples computed at once (memory: batch x n_lang x L·E floats).
    """
    _check_metric(metric)
    if len(chunk_counts) != len(chunk_tokens) or len(chunk_counts) < 2:
        raise ValueError("need chunk counts and chunk tokens for the same >= 2 languages")
    rng = np.random.default_rng(seed)
    flat = [np.asarray(c, dtype=np.float64).reshape(len(c), -1) for c in chunk_counts]
    toks = [np.asarray(t, dtype=np.float64) for t in chunk_tokens]
    if any(len(c) == 0 for c in flat):
        raise ValueError("a language has no chunks: profile it with some tokens first")
    point_freq = np.stack([c.sum(0) / max(t.sum(), 1.0) for c, t in zip(flat, toks)])
    point = _similarity(point_freq[None], metric, top_share)[0]
    # multinomial chunk weights = resampling chunks with replacement
    weights = [rng.multinomial(len(c), np.full(len(c), 1.0 / len(c)), size=n_bootstrap)
               for c in flat]
    out = []
    for s in range(0, n_bootstrap, batch):
        f = np.stack([(w[s:s + batch] @ c) / np.maximum(w[s:s + batch] @ t, 1.0)[:, None]
                      for w, c, t in zip(weights, flat, toks)], axis=1)  # [b, n, D]
        out.append(_similarity(f, metric, top_share))
    return BootstrapResult(point, np.concatenate(out), level)


def bootstrap_profiles(profiles: Mapping, **kw) -> BootstrapResult:
    """:func:`bootstrap_similarity` of ``{lang: Profile}`` (in the dict's order)."""
    return bootstrap_similarity([p.chunk_counts for p in profiles.values()],
                                [p.chunk_tokens for p in profiles.values()], **kw)
