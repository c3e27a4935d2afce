"""FLOPs per token of dense and pruned models, and the speedup they predict."""

from __future__ import annotations

import dataclasses

from torch import nn

from babel.models.ffn import body, ffn_layers
from babel.models.surgery import as_neuron_masks


@dataclasses.dataclass(frozen=True)
class FlopCount:
    """Matmul FLOPs per token (2 per multiply-add).

    Attributes:
        ffn: FFN projections of all layers.
        attention: Attention projections (q, k, v, o, and any other body matmul) plus, when
            a context length was given, the score and value products.
        head: The output head (vocabulary projection).
    """

    ffn: int
    attention: int
    head: int

    @property
    def body(self) -> int:
        return self.ffn + self.attention

    @property
    def total(self) -> int:
        return self.body + self.head

    def as_dict(self) -> dict[str, int]:
        return {"ffn": self.ffn, "attention": self.attention, "body": self.body,
                "head": self.head, "total": self.total}


def _linear_flops(m: nn.Module) -> int:
    if isinstance(m, nn.Linear):
        return 2 * m.in_features * m.out_features
    if type(m).__name__ == "Conv1D":
        return 2 * int(m.weight.shape[0]) * int(m.weight.shape[1])
    return 0


def flops_per_token(model: nn.Module, *, keep_neurons=None,
                    seq_len: int | None = None) -> FlopCount:
    """Matmul FLOPs per token of ``model`` (dense, pruned, or dense with a neuron mask).

    Every ``nn.Linear``/``Conv1D`` of the body counts ``2·in·out``; the FFN part is
    recomputed from ``keep_neurons`` if given (``[L, N]``). With ``seq_len``, attention
    products add ``4·heads·head_dim·(seq_len+1)/2`` per layer (the mean causal context;
    sliding windows are ignored, exact while ``seq_len`` is below the window). Norms,
    activations, softmax and embeddings are not counted.
    """
    views = ffn_layers(model)
    ffn_ids = {id(m) for v in views for m in (v.gate, v.up, v.down) if m is not None}
    b = body(model)
    other = sum(_linear_flops(m) for m in b.modules() if id(m) not in ffn_ids)
    if keep_neurons is None:
        ffn = sum(_linear_flops(m) for v in views for m in (v.gate, v.up, v.down)
                  if m is not None)
    else:
        masks = as_neuron_masks(keep_neurons, views)
        ffn = 0
        for v, m in zip(views, masks, strict=True):
            d = int(v.in_weight("up").shape[1])
            n_in = 2 if v.kind == "gated" else 1
            ffn += 2 * d * int(m.sum()) * (n_in + 1)
    if seq_len is not None:
        cfg = model.config.get_text_config() if hasattr(model.config, "get_text_config") \
            else model.config
        heads = getattr(cfg, "num_attention_heads", None) or cfg.n_head
        hidden = getattr(cfg, "hidden_size", None) or cfg.n_embd
        head_dim = getattr(cfg, "head_dim", None) or hidden // heads
        other += len(views) * 4 * heads * head_dim * (seq_len + 1) // 2
    head_mod = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    head = _linear_flops(head_mod) if head_mod is not None else 0
    return FlopCount(int(ffn), int(other), int(head))


def theoretical_speedup(dense: FlopCount, pruned: FlopCount) -> dict[str, float]:
    """Dense / pruned FLOP ratios of the FFN, the body and end to end."""
    return {"ffn": dense.ffn / max(pruned.ffn, 1), "body": dense.body / pruned.body,
            "end_to_end": dense.total / pruned.total}
