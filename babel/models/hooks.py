"""Hooks on the FFN output projection that read or replace ``h``; context managers only.

:func:`trace_ffn` attaches a pre-hook on every FFN's output projection and removes it on exit,
even on error; :func:`mask_neurons` uses it to zero neurons (the dense model with them removed).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import Tensor, nn

from babel.models.ffn import FFNLayer, ffn_layers

HFn = Callable[[int, Tensor], Tensor | None]


@contextlib.contextmanager
def trace_ffn(
    model: nn.Module,
    fn: HFn,
    *,
    layers: Sequence[int] | None = None,
) -> Iterator[list[FFNLayer]]:
    """Attach a pre-hook on every FFN's output projection; detach on exit, even on error.

    ``fn(layer_index, h)`` sees ``h`` (``[..., N]``); if it returns a tensor, that tensor
    replaces ``h`` as the input of ``down`` (masking, ablation).

    Yields:
        The FFN views of the hooked layers.
    """
    views = ffn_layers(model)
    chosen = [views[i] for i in layers] if layers is not None else views
    handles = []

    def make(idx: int):
        def hook(_module: nn.Module, args: tuple[Tensor, ...]):
            out = fn(idx, args[0])
            if out is None:
                return None
            return (out, *args[1:])

        return hook

    try:
        for v in chosen:
            handles.append(v.down.register_forward_pre_hook(make(v.index)))
        yield chosen
    finally:
        for h in handles:
            h.remove()


@contextlib.contextmanager
def mask_neurons(model: nn.Module, keep: Tensor | Sequence[Tensor]) -> Iterator[None]:
    """Zero the FFN neurons where ``keep`` is False (``keep``: ``[L, N]`` bool or a list).

    Computes ``down(h * keep)`` in every layer: the dense model with those neurons removed.
    """
    masks = [k.to(torch.bool) for k in keep]

    def fn(i: int, h: Tensor) -> Tensor:
        m = masks[i].to(h.device)
        return h * m.to(h.dtype)

    with trace_ffn(model, fn):
        yield


@contextlib.contextmanager
def trace_pre_activations(model: nn.Module, fn: Callable[[int, Tensor], None], *,
                          gated_only: bool = False) -> Iterator[list[FFNLayer]]:
    """Call ``fn(layer_index, pre)`` with every FFN's pre-activation; detach on exit, even on error.

    ``pre`` is the output of the gate projection (gated FFNs) or of the input projection (plain
    FFNs): the input of the activation function. LAPE's "active" is ``act(pre) > 0``, which for
    GELU/SiLU/ReLU is ``pre > 0``.

    Args:
        model: A causal LM or its body.
        fn: Called once per layer and forward pass; its return value is ignored.
        gated_only: Hook only gated FFNs (a plain FFN's ``h`` already is its activation).

    Yields:
        The FFN views of the hooked layers.
    """
    views = [v for v in ffn_layers(model) if v.kind == "gated" or not gated_only]
    handles = []
    try:
        for v in views:
            proj = v.gate if v.kind == "gated" else v.up
            handles.append(proj.register_forward_hook(
                lambda _m, _a, out, i=v.index: fn(i, out.detach())))
        yield views
    finally:
        for h in handles:
            h.remove()
