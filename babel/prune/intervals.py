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


def rise_draws(dense_nll: np.ndarray, pruned_nll: np.ndarray, tokens: np.ndarray, *,
               n_bootstrap: int = 1000, seed: int = 0) -> tuple[float, np.ndarray]:
    """Perplexity rise ``ppl_pruned / ppl_dense - 1`` and its paired bootstrap draws over items.

    Args:
        dense_nll: ``[n_items]`` summed NLL of each item's tokens under the dense model.
        pruned_nll: ``[n_items]``, or ``[n_masks, n_items]`` for several masks (random seeds),
            on the same tokens; with several, the rise is their mean.
        tokens: ``[n_items]`` counted tokens of each item.
        n_bootstrap: Resamples of the items (with replacement; the same resample for every
            mask, so a seed mean is resampled as one statistic).
        seed: Random seed.

    Returns:
        ``(rise, draws[n_bootstrap])``.
    """
    d, n = np.asarray(dense_nll, dtype=float), np.asarray(tokens, dtype=float)
    p = np.atleast_2d(np.asarray(pruned_nll, dtype=float))
    if p.shape[1] != d.shape[0] or d.shape != n.shape or n.sum() <= 0:
        raise ValueError("dense_nll, pruned_nll and tokens must be [n_items] (pruned_nll may "
                         "be [n_masks, n_items]) with tokens > 0")
    diff = p - d  # [M, I]
    value = float(np.expm1(diff.sum(1) / n.sum()).mean())
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(len(n), np.full(len(n), 1 / len(n)), size=n_bootstrap)
    draws = np.expm1((weights @ diff.T) / np.maximum(weights @ n, 1e-12)[:, None]).mean(1)
    return value, draws


def interval(value: float, draws: np.ndarray, *, level: float = 0.95) -> Interval:
    """The percentile interval of bootstrap ``draws`` around ``value``."""
    a = (1 - level) / 2
    low, high = np.quantile(np.asarray(draws, dtype=float), [a, 1 - a])
    return Interval(float(value), float(low), float(high))


def rise_interval(dense_nll: np.ndarray, pruned_nll: np.ndarray, tokens: np.ndarray, *,
                  n_bootstrap: int = 1000, seed: int = 0, level: float = 0.95) -> Interval:
    """:func:`rise_draws` as a percentile interval."""
    value, draws = rise_draws(dense_nll, pruned_nll, tokens, n_bootstrap=n_bootstrap, seed=seed)
    return interval(value, draws, level=level)


def ratio_interval(base: np.ndarray, other: np.ndarray, *, n_bootstrap: int = 2000,
                   seed: int = 0, level: float = 0.95) -> Interval:
    """Speedup ``median(base) / median(other)`` of paired timings, bootstrapped over repeats."""
    b, o = np.asarray(base, dtype=float), np.asarray(other, dtype=float)
    if b.shape != o.shape or b.size < 2:
        raise ValueError("base and other must be paired timings of the same length >= 2")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, b.size, size=(n_bootstrap, b.size))
    boot = np.median(b[idx], axis=1) / np.median(o[idx], axis=1)
    return interval(float(np.median(b) / np.median(o)), boot, level=level)
