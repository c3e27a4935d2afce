"""Language-specific expert pruning: keep-masks from frequencies, structural slicing, FLOPs.


Pipeline: a language's activation frequency ``[L, E]`` (:mod:`babel.profile`) gives an
expert keep-mask (:func:`keep_mask`), expanded to FFN neurons through the partition
(:func:`neuron_keep_mask`); :func:`prune_model` returns a copy whose FFN weight matrices are
sliced to the kept neurons (a really smaller model, unlike :func:`babel.models.hooks.mask_neurons`,
which only zeroes them), and :func:`flops_per_token` counts the matmul work saved.

Design choices (the paper leaves them open):

- **Budget.** A kept share ``k`` keeps ``round(k·L·E)`` experts in all (never fewer than one
  per layer). Every layer has the same expert size, so the kept share of experts is the kept
  share of FFN neurons and parameters.
- **Global allocation** (``"global"``): all L·E experts are ranked by frequency together and
  the most frequent are kept, after reserving each layer's most frequent expert (the
  per-layer minimum). The cross-layer selection rule makes frequencies comparable across
  layers (every token selects the same share ``r`` of all L·E experts), so a layer whose
  selections are concentrated on a few experts loses many of its rarely selected ones.
- **Adaptive allocation** (``"adaptive"``, the v2 paper's per-layer rates): each layer keeps
  a count proportional to its *effective number of experts* ``exp(H_l)``, with ``H_l`` the
  entropy of the layer's frequencies normalised into a distribution over its E experts
  (E for a uniform layer, 1 for a layer that always selects the same expert). Counts are
  water-filled to sum exactly to the global budget, each in ``[1, E]``; within a layer the
  most frequent experts are kept. Concentrated layers lose more.
- **Ties** (many experts share a frequency of 0 at small token budgets) are broken by a
  fixed-seed random order, so no layer or expert index is favoured.
- **Random baselines:** the same per-layer counts as a frequency mask, random experts, seeded
  (:func:`random_like`: isolates *which* experts are kept); and the naive one, the same
  number of random experts in every layer (:func:`uniform_random_mask`).
- **Groups:** ``combine="sum"`` ranks by the summed frequency of the languages (budget exact);
  ``combine="union"`` keeps every expert that any language's own mask keeps (budget ``>= k``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from babel.construct.partition import Partition, expand_to_neurons

Allocation = Literal["global", "adaptive"]
Combine = Literal["sum", "union"]
ALLOCATIONS = ("global", "adaptive")
COMBINES = ("sum", "union")
TIEBREAK_SEED = 12345


def _check_freq(freq: np.ndarray) -> np.ndarray:
    f = np.asarray(freq, dtype=np.float64)
    if f.ndim != 2 or f.size == 0:
        raise ValueError(f"frequency must be a non-empty [L, E] matrix, got shape {f.shape}: "
                         f"pass Profile.frequency")
    if not np.isfinite(f).all() or (f < 0).any():
        raise ValueError("frequency must be finite and >= 0: pass Profile.frequency")
    return f


def _check_share(share: float) -> float:
    if isinstance(share, bool) or not 0.0 < float(share) <= 1.0:
        raise ValueError(f"kept share must be in (0, 1], got {share!r}")
    return float(share)


def kept_budget(share: float, n_layers: int, n_experts: int) -> int:
    """Experts kept in all at share ``k``: ``round(k·L·E)``, at least one per layer."""
    share = _check_share(share)
    return int(min(n_layers * n_experts, max(n_layers, round(share * n_layers * n_experts))))


def _rank_key(freq: np.ndarray) -> np.ndarray:
    """Descending-frequency order key with seeded random tie-breaking (flat ``[L*E]`` order)."""
    tie = np.random.default_rng(TIEBREAK_SEED).random(freq.size)
    return np.lexsort((tie, -freq.ravel()))


def _top_per_layer(freq: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Keep the ``counts[l]`` most frequent experts of each layer (ties seeded-random)."""
    grank = np.empty(freq.size, dtype=np.int64)
    grank[_rank_key(freq)] = np.arange(freq.size)  # 0 = most frequent overall
    rank = np.argsort(np.argsort(grank.reshape(freq.shape), axis=1), axis=1)
    return rank < np.asarray(counts)[:, None]


def global_keep_mask(freq: np.ndarray, share: float) -> np.ndarray:
    """Keep the most frequent experts ranked across all layers (each layer keeps >= 1).

    Args:
        freq: ``[L, E]`` activation frequency of one language (or a group's summed one).
        share: Kept share ``k`` of all L·E experts.

    Returns:
        ``[L, E]`` bool keep-mask with exactly :func:`kept_budget` experts.
    """
    f = _check_freq(freq)
    n_layers, n_exp = f.shape
    budget = kept_budget(share, n_layers, n_exp)
    keep = _top_per_layer(f, np.ones(n_layers, dtype=np.int64))  # the per-layer minimum
    order = _rank_key(f)
    rest = order[~keep.ravel()[order]][: budget - n_layers]
    flat = keep.ravel().copy()
    flat[rest] = True
    return flat.reshape(n_layers, n_exp)


def effective_experts(freq: np.ndarray) -> np.ndarray:
    """``[L]`` effective number of experts ``exp(H_l)`` of each layer's frequencies.

    ``H_l`` is the entropy of ``freq[l] / freq[l].sum()``; a layer with no selections counts
    as uniform (``E``).
    """
    f = _check_freq(freq)
    tot = f.sum(1, keepdims=True)
    p = np.where(tot > 0, f / np.where(tot > 0, tot, 1.0), 1.0 / f.shape[1])
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(p > 0, p * np.log(p), 0.0).sum(1)
    return np.exp(h)


def allocate(weights: np.ndarray, budget: int, n_experts: int) -> np.ndarray:
    """Integer per-layer counts in ``[1, E]`` proportional to ``weights``, summing to ``budget``.

    Water-filling: find ``c`` with ``Σ clip(c·w, 1, E) = budget`` by bisection, floor, then
    hand the remainder to the largest fractional parts.
    """
    w = np.maximum(np.asarray(weights, dtype=np.float64), 1e-12)
    n_layers = w.size
    if not n_layers <= budget <= n_layers * n_experts:
        raise ValueError(f"budget {budget} must be in [{n_layers}, {n_layers * n_experts}] "
                         f"(one to E experts per layer)")
    lo, hi = 0.0, n_experts / w.min()
    for _ in range(200):
        mid = (lo + hi) / 2
        if np.clip(mid * w, 1, n_experts).sum() < budget:
            lo = mid
        else:
            hi = mid
    x = np.clip(hi * w, 1, n_experts)
    n = np.floor(x + 1e-9).astype(np.int64)
    frac = x - n
    up, down = np.argsort(-frac, kind="stable"), np.argsort(frac, kind="stable")
    while n.sum() < budget:  # largest remainders first; rarely more than one round
        for i in up[n[up] < n_experts][: budget - n.sum()]:
            n[i] += 1
    while n.sum() > budget:
        for i in down[n[down] > 1][: n.sum() - budget]:
            n[i] -= 1
    return n


def adaptive_counts(freq: np.ndarray, share: float) -> np.ndarray:
    """``[L]`` kept experts per layer under the adaptive allocation (sums to the budget)."""
    f = _check_freq(freq)
    n_layers, n_exp = f.shape
    return allocate(effective_experts(f), kept_budget(share, n_layers, n_exp), n_exp)


def sensitivity_counts(rise: np.ndarray, share: float, n_experts: int) -> np.ndarray:
    """``[L]`` kept experts per layer from measured per-layer sensitivity (sums to the budget).

    ``rise[l]`` is the perplexity rise when a fixed share of layer ``l``'s least important
    experts is removed, all other layers intact (:func:`babel.prune.methods.layer_sensitivity`).
    Design choice: a quadratic model of the loss near the dense model, ``Δ_l(r) ≈ a_l·r²``,
    minimised under a fixed total removal, gives removals ``r_l ∝ 1 / a_l``: each layer gives
    up experts in inverse proportion to its sensitivity (a linear model would put all the
    removal on the single least sensitive layer). The measured rises are small and noisy
    (a few percent, some below zero), so ``a_l`` is the rise clipped at 0 **plus the median
    rise** (shrinkage toward the uniform allocation: a layer measured at 0 loses at most
    about twice the median layer's share, not everything). Water-filled so that every layer
    keeps at least one expert.

    Args:
        rise: ``[L]`` measured rises.
        share: Kept share ``k`` of all experts.
        n_experts: Experts per layer ``E``.
    """
    r = np.asarray(rise, dtype=np.float64)
    if r.ndim != 1 or r.size == 0 or not np.isfinite(r).all():
        raise ValueError(f"rise must be a finite [L] vector, got {r!r}: pass layer_sensitivity()")
    n_layers = r.size
    removed = n_layers * n_experts - kept_budget(share, n_layers, n_experts)
    if removed == 0:
        return np.full(n_layers, n_experts, dtype=np.int64)
    if removed < n_layers:  # fewer removals than layers: the least sensitive layers lose one
        counts = np.full(n_layers, n_experts, dtype=np.int64)
        counts[np.argsort(r, kind="stable")[:removed]] -= 1
        return counts
    pos = np.maximum(r, 0.0)
    a = pos + max(float(np.median(pos)), 1e-9)
    # allocate() hands out counts in [1, E]; one less of each is a removal in [0, E-1]
    return n_experts - (allocate(1.0 / a, removed + n_layers, n_experts) - 1)


def keep_top(score: np.ndarray, counts: np.ndarray | Sequence[int]) -> np.ndarray:
    """``[L, E]`` keep-mask of the ``counts[l]`` highest-scored experts of each layer (ties
    broken by the fixed-seed order of every ranking here)."""
    s = _check_freq(score)
    c = np.asarray(counts, dtype=np.int64)
    if c.shape != (s.shape[0],) or (c < 0).any() or (c > s.shape[1]).any():
        raise ValueError(f"counts must be a [L={s.shape[0]}] vector in [0, {s.shape[1]}]")
    return _top_per_layer(s, c)


def keep_mask(freq: np.ndarray, share: float, *, allocation: Allocation = "global") -> np.ndarray:
    """Frequency-based expert keep-mask ``[L, E]`` of one language at kept share ``share``.

    Args:
        freq: ``[L, E]`` activation frequency (``Profile.frequency``).
        share: Kept share ``k`` of all experts.
        allocation: ``"global"`` (rank across layers) or ``"adaptive"`` (per-layer counts
            proportional to each layer's effective number of experts).
    """
    if allocation not in ALLOCATIONS:
        raise ValueError(f"allocation must be one of {ALLOCATIONS}, got {allocation!r}")
    if allocation == "global":
        return global_keep_mask(freq, share)
    return _top_per_layer(_check_freq(freq), adaptive_counts(freq, share))


def group_keep_mask(freqs: np.ndarray, share: float, *, combine: Combine = "sum",
                    allocation: Allocation = "global") -> np.ndarray:
    """Keep-mask ``[L, E]`` for a group of languages (``freqs``: ``[n_lang, L, E]``).

    ``combine="sum"`` ranks by summed frequency (budget exact); ``"union"`` keeps what any
    language's own mask keeps (at least the budget).
    """
    f = np.asarray(freqs, dtype=np.float64)
    if f.ndim != 3:
        raise ValueError(f"freqs must be [n_lang, L, E], got shape {f.shape}: use "
                         f"babel.profile.cache.frequency_tensor")
    if combine == "sum":
        return keep_mask(f.sum(0), share, allocation=allocation)
    if combine == "union":
        return np.logical_or.reduce([keep_mask(x, share, allocation=allocation) for x in f])
    raise ValueError(f"combine must be one of {COMBINES}, got {combine!r}")


def random_keep_mask(counts: Sequence[int] | np.ndarray, n_experts: int, *,
                     seed: int) -> np.ndarray:
    """Random baseline: ``counts[l]`` uniformly random experts of each layer, seeded."""
    c = np.asarray(counts, dtype=np.int64)
    if c.ndim != 1 or (c < 0).any() or (c > n_experts).any():
        raise ValueError(f"counts must be a [L] vector in [0, {n_experts}], got {c!r}")
    rnd = np.random.default_rng(seed).random((c.size, n_experts))
    ranks = np.argsort(np.argsort(rnd, axis=1), axis=1)
    return ranks < c[:, None]


def uniform_random_mask(n_layers: int, n_experts: int, share: float, *,
                        seed: int) -> np.ndarray:
    """Naive random baseline: every layer keeps (nearly) the same number of random experts.

    The counts are the budget :func:`kept_budget` spread evenly (remainders to the first
    layers), so the total equals a frequency mask's at the same share.
    """
    return random_keep_mask(uniform_counts(share, n_layers, n_experts), n_experts, seed=seed)


def uniform_counts(share: float, n_layers: int, n_experts: int) -> np.ndarray:
    """``[L]`` kept experts per layer when every layer keeps (nearly) the same number: the
    budget :func:`kept_budget` spread evenly, remainders to the first layers."""
    budget = kept_budget(share, n_layers, n_experts)
    counts = np.full(n_layers, budget // n_layers, dtype=np.int64)
    counts[: budget % n_layers] += 1
    return counts


def random_like(mask: np.ndarray, *, seed: int) -> np.ndarray:
    """A random keep-mask with the same per-layer counts as ``mask``."""
    m = np.asarray(mask, dtype=bool)
    return random_keep_mask(m.sum(1), m.shape[1], seed=seed)


def removal_mask(remove: np.ndarray, freq: np.ndarray | None = None) -> np.ndarray:
    """Keep everything but ``remove`` (``[L, E]`` bool); a layer never loses all its experts.

    If every expert of a layer is in ``remove``, its most frequent one (by ``freq``, else
    the first) is kept.
    """
    keep = ~np.asarray(remove, dtype=bool)
    empty = ~keep.any(1)
    if empty.any():
        f = np.zeros(keep.shape) if freq is None else _check_freq(freq)
        best = _top_per_layer(f, np.ones(keep.shape[0], dtype=np.int64))
        keep = keep | (best & empty[:, None])
    return keep


def neuron_keep_mask(expert_keep: np.ndarray, partition: Partition) -> np.ndarray:
    """Expand an expert keep-mask ``[L, E]`` to FFN neurons ``[L, N]`` via ``partition.labels``."""
    k = np.asarray(expert_keep, dtype=bool)
    if k.shape != (partition.n_layers, partition.n_experts):
        raise ValueError(f"expert mask {k.shape} does not match the partition "
                         f"({partition.n_layers}, {partition.n_experts}): build it from this "
                         f"partition's profiles")
    return expand_to_neurons(k, partition.labels)

