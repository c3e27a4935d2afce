"""Shared skeleton of the explicit-loop references (test-only): one chunk at a time through the
model, the hooked FFN activations of every counted token."""
from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from babel.models.ffn import ffn_layers


def counted_tokens(model, ids: Tensor, am: Tensor, bos: int
                   ) -> Iterator[tuple[int, list[Tensor], list[Tensor] | None]]:
    """Yield ``(chunk, h, gate)`` for every token that is neither padding nor ``bos``: ``h[l]``
    is layer ``l``'s down-projection input at that token, ``gate[l]`` its gate output (``None``
    for a plain FFN). Hooks are removed on exit, also on error."""
    views = ffn_layers(model)
    hs, gates = {}, {}
    hooks = [v.down.register_forward_pre_hook(
        lambda m, a, i=v.index: hs.__setitem__(i, a[0].detach())) for v in views]
    hooks += [v.gate.register_forward_hook(
        lambda m, a, o, i=v.index: gates.__setitem__(i, o.detach()))
        for v in views if v.gate is not None]
    try:
        for c in range(ids.shape[0]):
            with torch.no_grad():
                model(input_ids=ids[c:c + 1], attention_mask=am[c:c + 1])
            for t in range(ids.shape[1]):
                if am[c, t] == 0 or ids[c, t] == bos:
                    continue
                yield (c, [hs[i][0, t] for i in range(len(views))],
                       [gates[i][0, t] for i in range(len(views))] if gates else None)
    finally:
        for hk in hooks:
            hk.remove()
