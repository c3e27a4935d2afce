"""Expert scores and the "highly activated" selection rules.

- **Score.** ``score[t, e] = Σ_{i in e} |h_i(t)|`` with ``h`` the input of the output
  projection; one ``index_select`` + reshape + sum per layer (no loop over experts).
- **Selection.** ``cross_layer`` (the paper's): per token, z-normalize the E scores of each
  layer over that layer's experts, rank all L·E z-scores together and select the top share
  ``r``. Also ``per_layer_topk`` (MoEfication: the top share ``r`` of each layer's experts)
  and ``z_threshold`` (every expert with z > ``z``).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from babel.core.config import SelectionRule


def expert_scores(h: Tensor, order: Tensor, n_experts: int) -> Tensor:
    """``[..., E]`` expert scores ``Σ |h_i|`` of one layer.

    Args:
        h: Intermediate activation ``[..., N]``.
        order: ``[N]`` neuron indices sorted by expert (``Partition.order[layer]``).
        n_experts: ``E``.
    """
    a = h.abs().index_select(-1, order)
    return a.reshape(*h.shape[:-1], n_experts, h.shape[-1] // n_experts).sum(-1)


def zscore(scores: Tensor) -> Tensor:
    """z-normalize ``[..., L, E]`` scores over the E experts of each layer (per token)."""
    mean = scores.mean(-1, keepdim=True)
    std = scores.std(-1, keepdim=True).clamp_min(1e-12)
    return (scores - mean) / std


def topk_mask(x: Tensor, k: int) -> Tensor:
    """Boolean mask of the ``k`` largest entries of each row of ``x`` (last dimension).

    On the CPU a linear-time selection (``numpy.partition``) finds each row's threshold, about
    3x faster than ``torch.topk`` at the profiling shapes; rows with ties at the threshold
    (more than ``k`` entries selected) fall back to ``torch.topk``. On a GPU ``torch.topk``.
    """
    n = x.shape[-1]
    if k >= n:
        return torch.ones_like(x, dtype=torch.bool)
    if x.is_cuda or x.dtype not in (torch.float32, torch.float64):
        idx = x.topk(k, dim=-1).indices
        return torch.zeros_like(x, dtype=torch.bool).scatter_(-1, idx, True)
    flat = x.reshape(-1, n)
    arr = flat.detach().numpy()
    thr = np.partition(arr, n - k, axis=-1)[:, n - k:n - k + 1]
    sel = arr >= thr
    # rows with ties at the threshold (numpy's count: torch's sum of a bool tensor is slower)
    over = torch.from_numpy(np.flatnonzero(np.count_nonzero(sel, axis=-1) != k))
    mask = torch.from_numpy(sel)
    if len(over):
        idx = flat[over].topk(k, dim=-1).indices
        mask[over] = torch.zeros(len(over), n, dtype=torch.bool).scatter_(-1, idx, True)
    return mask.reshape(x.shape)


def select(scores: Tensor, rule: SelectionRule) -> Tensor:
    """Boolean selection ``[T, L, E]`` from scores ``[T, L, E]`` under ``rule``."""
    t, n_layers, n_exp = scores.shape
    if rule.kind == "per_layer_topk":
        return topk_mask(scores, max(1, round(rule.share * n_exp)))
    z = zscore(scores.float())
    if rule.kind == "z_threshold":
        return z > rule.z
    k = max(1, round(rule.share * n_layers * n_exp))
    return topk_mask(z.reshape(t, n_layers * n_exp), k).reshape(t, n_layers, n_exp)
