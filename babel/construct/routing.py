"""Running the model as a mixture of experts: routing by a selection rule, contiguous experts.

:func:`routed_forward` zeroes the unselected experts' neurons (selecting every expert
reproduces the dense model exactly); :func:`contiguous_experts` reorders neurons in place so
that every expert is one contiguous block, and restores them bit for bit on exit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import weakref
from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor, nn

from babel.construct.partition import Partition
from babel.construct.selection import expert_scores, select
from babel.core.config import SelectionRule
from babel.models.ffn import ffn_layers
from babel.models.hooks import trace_ffn
from babel.models.surgery import permute_layer_


def neuron_mask(expert_mask: Tensor, labels: Tensor) -> Tensor:
    """Expand an expert mask ``[..., E]`` of one layer to its neurons ``[..., N]``."""
    return expert_mask.index_select(-1, labels)


@contextlib.contextmanager
def route(model: nn.Module, partition: Partition, rule: SelectionRule) -> Iterator[None]:
    """Run ``model`` as a mixture of experts: per token, keep only the selected experts.

    Layer-local rules (``per_layer_topk``, ``z_threshold``) are applied in one pass, each
    layer zeroing the neurons of its unselected experts. The cross-layer rule needs every
    layer's scores first: use :func:`routed_forward`.
    """
    if rule.kind == "cross_layer":
        raise ValueError("the cross_layer rule ranks all layers together: use "
                         "routed_forward(model, partition, rule, ...) (two passes)")
    order = partition.order_tensor()
    labels = partition.labels_tensor()

    def fn(i: int, h: Tensor) -> Tensor:
        s = expert_scores(h, order[i].to(h.device), partition.n_experts)
        shp = s.shape
        m = select(s.reshape(-1, 1, shp[-1]), rule).reshape(shp)
        return h * neuron_mask(m, labels[i].to(h.device)).to(h.dtype)

    with trace_ffn(model, fn):
        yield


@torch.no_grad()
def routed_forward(model: nn.Module, partition: Partition, rule: SelectionRule,
                   input_ids: Tensor, attention_mask: Tensor | None = None):
    """Forward ``model`` as a mixture of experts under any rule (two passes for cross_layer).

    Pass 1 runs the dense model and records every layer's expert scores; the selection is made
    from them; pass 2 recomputes with unselected experts' neurons zeroed. With ``share=1`` the
    output equals the dense model's exactly.
    """
    if rule.kind != "cross_layer":
        with route(model, partition, rule):
            return model(input_ids=input_ids, attention_mask=attention_mask)
    order = partition.order_tensor()
    labels = partition.labels_tensor()
    scores: dict[int, Tensor] = {}

    def record(i: int, h: Tensor) -> None:
        scores[i] = expert_scores(h, order[i].to(h.device), partition.n_experts)

    with trace_ffn(model, record):
        model(input_ids=input_ids, attention_mask=attention_mask)
    stacked = torch.stack([scores[i] for i in sorted(scores)], dim=-2)  # [B, T, L, E]
    b, t, n_layers, n_exp = stacked.shape
    sel = select(stacked.reshape(b * t, n_layers, n_exp), rule).reshape(b, t, n_layers, n_exp)

    def apply(i: int, h: Tensor) -> Tensor:
        return h * neuron_mask(sel[..., i, :], labels[i].to(h.device)).to(h.dtype)

    with trace_ffn(model, apply):
        return model(input_ids=input_ids, attention_mask=attention_mask)


@dataclasses.dataclass
class _Reordered:
    """The order a model's neurons are in now (None: the original order, inside a
    :func:`hold_contiguous` block before its first :func:`contiguous_experts` block)."""

    order: np.ndarray | None = None


#: Models whose neurons are reordered now (by identity; a dropped model drops its entry).
_REORDERED: weakref.WeakKeyDictionary[nn.Module, _Reordered] = weakref.WeakKeyDictionary()


@contextlib.contextmanager
def contiguous_experts(model: nn.Module, partition: Partition) -> Iterator[Partition]:
    """Reorder ``model``'s neurons *in place* so each expert is a contiguous block; undo on exit.

    Inside the block the model computes the same function (up to summation order in the
    output projection) and expert ``e`` of every layer is neurons ``e*S:(e+1)*S``, so expert
    scores are a reshape and a pooled sum. On exit (also on error) the inverse permutation
    restores every weight bit for bit. Peak extra memory: one layer's FFN weights.

    Re-entrant: inside another block for the same partition (or a :func:`hold_contiguous`
    block that has already reordered the model) the weights are not touched again, and the
    outermost block restores them. Another partition's block inside raises ``ValueError``.

    Yields:
        The contiguous partition (:func:`contiguous_partition`).
    """
    state = _REORDERED.get(model)
    if state is not None and state.order is not None:
        if not np.array_equal(state.order, partition.order):
            raise ValueError("the model's neurons are already reordered for another partition: "
                             "leave that contiguous_experts/hold_contiguous block first")
        yield contiguous_partition(partition)
        return
    _permute_all(model, partition.order)
    if state is not None:  # held: the hold_contiguous block restores the weights
        state.order = partition.order
        yield contiguous_partition(partition)
        return
    _REORDERED[model] = _Reordered(partition.order)
    try:
        yield contiguous_partition(partition)
    finally:
        del _REORDERED[model]
        _permute_all(model, partition.order, inverse=True)


@contextlib.contextmanager
def hold_contiguous(model: nn.Module) -> Iterator[None]:
    """Keep ``model``'s neurons reordered from the first :func:`contiguous_experts` block inside
    until this block ends: the reorder and the restore (each a pass over every FFN weight
    matrix) are paid once for many profiling calls
    (:func:`babel.profile.cache.profile_languages`). Nothing is reordered if no inner block
    runs (every profile cached). Inside, the model's neurons may be in expert order: code that
    reads the weights by the original neuron index belongs outside. Nested holds are one hold.
    """
    if model in _REORDERED:  # inside another hold or a contiguous_experts block: theirs
        yield
        return
    state = _REORDERED[model] = _Reordered()
    try:
        yield
    finally:
        del _REORDERED[model]
        if state.order is not None:
            _permute_all(model, state.order, inverse=True)


def _permute_all(model: nn.Module, order: np.ndarray, *, inverse: bool = False) -> None:
    """Reorder every FFN layer's neurons by ``order`` (or back, ``inverse``); a failure part way
    puts the layers already done back before it propagates."""
    views = ffn_layers(model)

    def perm(i: int, inv: bool) -> Tensor:
        o = np.argsort(order[i], kind="stable") if inv else order[i]
        return torch.as_tensor(o, dtype=torch.long)

    done: list[int] = []
    with torch.no_grad():
        try:
            for v in views:
                permute_layer_(v, perm(v.index, inverse))
                done.append(v.index)
        except BaseException:
            for i in done:
                permute_layer_(views[i], perm(i, not inverse))
            raise


def permuted_copy(model: nn.Module, partition: Partition) -> nn.Module:
    """A deep copy of ``model`` whose neurons are reordered so each expert is contiguous.

    Rows of gate/up (or the input projection and its bias) and columns of down are permuted
    together, which leaves the function unchanged (up to summation order). In the copy,
    expert ``e`` of every layer is neurons ``e*S:(e+1)*S``.
    """
    import copy

    new = copy.deepcopy(model)
    order = partition.order
    with torch.no_grad():
        for v in ffn_layers(new):
            permute_layer_(v, torch.as_tensor(order[v.index], dtype=torch.long))
    return new


def contiguous_partition(partition: Partition) -> Partition:
    """The partition of a :func:`permuted_copy`: expert e = neurons ``e*S:(e+1)*S``."""
    n, e = partition.n_neurons, partition.n_experts
    labels = np.tile(np.repeat(np.arange(e, dtype=np.int32), n // e), (partition.n_layers, 1))
    return dataclasses.replace(partition, labels=labels)
