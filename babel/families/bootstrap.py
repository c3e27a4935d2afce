"""Bootstrap of language similarities over token chunks (token-sampling noise only)."""

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
    if any(len(c) == 0 for c in chunk_counts):  # before reshaping: (0, -1) has no size
        raise ValueError("a language has no chunks: profile it with some tokens first")
    rng = np.random.default_rng(seed)
    flat = [np.asarray(c, dtype=np.float64).reshape(len(c), -1) for c in chunk_counts]
    toks = [np.asarray(t, dtype=np.float64) for t in chunk_tokens]
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
