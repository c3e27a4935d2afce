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
