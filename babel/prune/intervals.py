"""Bootstrap intervals over corpus items for perplexity rises and measured speedups."""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Interval:
    """A point estimate with a percentile bootstrap interval."""

    value: float
    low: float
    high: float

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def as_dict(self) -> dict[str, float]:
        return {"value": self.value, "low": self.low, "high": self.high}


def per_item(values: np.ndarray, items: np.ndarray, n_items: int) -> np.ndarray:
    """Sum a per-token statistic per item (``items``: item index of each token, >= 0)."""
    return np.bincount(np.asarray(items), weights=np.asarray(values, dtype=float),
                       minlength=n_items)


def rise_interval(dense_nll: np.ndarray, pruned_nll: np.ndarray, tokens: np.ndarray, *,
                  n_bootstrap: int = 1000, seed: int = 0, level: float = 0.95) -> Interval:
    """Perplexity rise ``ppl_pruned / ppl_dense - 1`` with a paired bootstrap over items.

    Args:
        dense_nll, pruned_nll: ``[n_items]`` summed NLL of each item's tokens, both models
            on the same tokens (paired).
        tokens: ``[n_items]`` counted tokens of each item.
        n_bootstrap: Resamples of the items (with replacement).
        seed: Random seed.
        level: Coverage of the percentile interval.
    """
    d, p, n = (np.asarray(x, dtype=float) for x in (dense_nll, pruned_nll, tokens))
    if not (d.shape == p.shape == n.shape) or n.sum() <= 0:
        raise ValueError("dense_nll, pruned_nll and tokens must be [n_items] with tokens > 0")
    diff = p - d
    value = float(np.expm1(diff.sum() / n.sum()))
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(len(n), np.full(len(n), 1 / len(n)), size=n_bootstrap)
    boot = np.expm1((weights @ diff) / np.maximum(weights @ n, 1e-12))
    a = (1 - level) / 2
    low, high = np.quantile(boot, [a, 1 - a])
    return Interval(value, float(low), float(high))


def ratio_interval(base: np.ndarray, other: np.ndarray, *, n_bootstrap: int = 2000,
                   seed: int = 0, level: float = 0.95) -> Interval:
    """Speedup ``median(base) / median(other)`` of paired timings, bootstrapped over repeats."""
    b, o = np.asarray(base, dtype=float), np.asarray(other, dtype=float)
    if b.shape != o.shape or b.size < 2:
        raise ValueError("base and other must be paired timings of the same length >= 2")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, b.size, size=(n_bootstrap, b.size))
    boot = np.median(b[idx], axis=1) / np.median(o[idx], axis=1)
    a = (1 - level) / 2
    low, high = np.quantile(boot, [a, 1 - a])
    return Interval(float(np.median(b) / np.median(o)), float(low), float(high))
