"""Fair random controls: random experts whose activation frequencies match a chosen set's."""

from __future__ import annotations

import numpy as np


def matched_random_experts(freq: np.ndarray, chosen: np.ndarray, *, seed: int,
                           n_bins: int = 20) -> np.ndarray:
    """Random experts, disjoint from ``chosen``, with the same distribution of frequencies.

    The experts are cut into ``n_bins`` quantile bins of ``freq``; for each chosen expert one
    other expert is drawn, without replacement, from the same bin (from the nearest bin that
    still has one when a bin runs out). Removing the result is the control for removing
    ``chosen``: the same amount of activity taken away, from experts picked without regard to
    the property that picked ``chosen`` (e.g. language specificity).

    Args:
        freq: ``[L, E]`` activation frequencies in the language the control is for.
        chosen: ``[L, E]`` bool, the experts the control stands against.
        seed: Random seed.
        n_bins: Quantile bins of the frequency distribution.

    Returns:
        ``[L, E]`` bool with as many experts as ``chosen``, none of them in ``chosen``.
    """
    freq, chosen = np.asarray(freq, dtype=float), np.asarray(chosen, dtype=bool)
    if freq.shape != chosen.shape:
        raise ValueError(f"freq {freq.shape} and chosen {chosen.shape} must have one shape")
    if chosen.sum() > (~chosen).sum():
        raise ValueError(f"cannot match {int(chosen.sum())} experts from the "
                         f"{int((~chosen).sum())} others: choose fewer")
    rng = np.random.default_rng(seed)
    flat = freq.ravel()
    edges = np.quantile(flat, np.linspace(0, 1, n_bins + 1)[1:-1])
    bins = np.searchsorted(edges, flat, side="right")  # [L*E] bin of each expert
    need = np.bincount(bins[chosen.ravel()], minlength=n_bins)
    pools = [rng.permutation(np.flatnonzero((bins == b) & ~chosen.ravel())).tolist()
             for b in range(n_bins)]
    out = np.zeros(flat.size, dtype=bool)
    for b in np.argsort(-need, kind="stable"):  # per bin, not per expert or token
        for _ in range(need[b]):
            near = min((abs(c - b), c) for c in range(n_bins) if pools[c])[1]
            out[pools[near].pop()] = True
    return out.reshape(freq.shape)
