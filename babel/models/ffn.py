"""A uniform view of every FFN layer, and hooks that read or mask its intermediate activation.

For every transformer layer, :func:`ffn_layers` returns an :class:`FFNLayer` that names

- the projection(s) that make the intermediate activation ``h``:
  gated FFNs (Llama, Mistral, Qwen2, Gemma 1/2/3): ``h = act(gate·x) ⊙ (up·x)``;
  plain FFNs (GPT-2, OPT, BLOOM): ``h = act(W_in·x + b)``;
- the output projection ``down`` (``y = down(h)``), whose *input* is the hook point where
  ``h`` is read and masked (a forward pre-hook: one place for every architecture);
- the neuron count ``N`` (rows of the input projection).

Weights are exposed in one orientation whatever the module type (``nn.Linear`` or GPT-2's
``Conv1D``): ``in_weight`` is ``[N, d_model]`` (one row per neuron) and ``out_weight`` is
``[d_model, N]`` (one column per neuron).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Literal

from torch import Tensor, nn

Kind = Literal["gated", "plain"]


class UnsupportedArchitecture(ValueError):
    """The model's FFN layout is not known to babel."""


@dataclasses.dataclass(frozen=True)
class FFNLayer:
    """One layer's FFN, seen uniformly.

    Attributes:
        index: Layer index (0-based).
        kind: ``"gated"`` or ``"plain"``.
        gate: Gate projection (gated FFNs) or ``None``.
        up: Up projection (gated) or input projection (plain).
        down: Output projection; its input is ``h``.
        act: The activation function module.
        n_neurons: Number of intermediate neurons ``N``.
        name: Module path of ``down`` (the hook point), e.g. ``model.layers.3.mlp.down_proj``.
    """

    index: int
    kind: Kind
    gate: nn.Module | None
    up: nn.Module
    down: nn.Module
    act: Callable[[Tensor], Tensor]
    n_neurons: int
    name: str

    def in_weight(self, which: str = "gate") -> Tensor:
        """Input weight rows ``[N, d_model]``: ``"gate"``, ``"up"`` or ``"in"`` (plain FFNs).

        ``"gate"`` and ``"up"`` on a plain FFN both mean its input projection.
        """
        if self.kind == "plain" or which == "in":
            if which not in ("gate", "up", "in"):
                raise ValueError(f"unknown projection {which!r}: use 'gate', 'up' or 'in'")
            return _rows(self.up)
        if which == "gate":
            return _rows(self.gate)
        if which == "up":
            return _rows(self.up)
        raise ValueError(f"unknown projection {which!r}: use 'gate', 'up' or 'in'")

    def out_weight(self) -> Tensor:
        """Output weight ``[d_model, N]`` (column ``i`` is neuron ``i``'s write direction)."""
        return _rows(self.down)

    def intermediate(self, x: Tensor) -> Tensor:
        """Recompute ``h`` from the parts (for checks; the hooks read it for free)."""
        if self.kind == "gated":
            return self.act(self.gate(x)) * self.up(x)
        return self.act(self.up(x))

    def output(self, h: Tensor) -> Tensor:
        """``down(h)``."""
        return self.down(h)


def _rows(module: nn.Module) -> Tensor:
    """Weight as ``[out_features, in_features]`` for ``nn.Linear`` and GPT-2 ``Conv1D``."""
    if isinstance(module, nn.Linear):
        return module.weight
    if type(module).__name__ == "Conv1D":  # GPT-2 stores [in, out]
        return module.weight.T
    raise UnsupportedArchitecture(f"projection of type {type(module).__name__} is not supported")


def _n_out(module: nn.Module) -> int:
    return _rows(module).shape[0]


def decoder_layers(model: nn.Module) -> tuple[str, Sequence[nn.Module]]:
    """The module path and list of decoder blocks of a causal LM."""
    for path in ("model.layers", "model.language_model.layers", "transformer.h",
                 "model.decoder.layers", "gpt_neox.layers", "layers", "h"):
        obj: object = model
        ok = True
        for part in path.split("."):
            if not hasattr(obj, part):
                ok = False
                break
            obj = getattr(obj, part)
        if ok and isinstance(obj, nn.ModuleList):
            return path, obj
    raise UnsupportedArchitecture(
        f"cannot find the decoder layers of {type(model).__name__}: supported are Llama, "
        f"Mistral, Qwen2, Gemma 1/2/3, GPT-2, OPT and BLOOM style models"
    )


def _layer_view(i: int, block: nn.Module, prefix: str) -> FFNLayer:
    mlp = getattr(block, "mlp", None)
    if mlp is not None and all(hasattr(mlp, a) for a in ("gate_proj", "up_proj", "down_proj")):
        act = getattr(mlp, "act_fn", None) or getattr(mlp, "act", None)
        return FFNLayer(i, "gated", mlp.gate_proj, mlp.up_proj, mlp.down_proj, act,
                        _n_out(mlp.up_proj), f"{prefix}.{i}.mlp.down_proj")
    if mlp is not None and hasattr(mlp, "c_fc") and hasattr(mlp, "c_proj"):  # GPT-2
        return FFNLayer(i, "plain", None, mlp.c_fc, mlp.c_proj, mlp.act,
                        _n_out(mlp.c_fc), f"{prefix}.{i}.mlp.c_proj")
    if mlp is not None and hasattr(mlp, "dense_h_to_4h"):  # BLOOM
        act = getattr(mlp, "gelu_impl", None) or getattr(mlp, "act", None)
        return FFNLayer(i, "plain", None, mlp.dense_h_to_4h, mlp.dense_4h_to_h, act,
                        _n_out(mlp.dense_h_to_4h), f"{prefix}.{i}.mlp.dense_4h_to_h")
    if hasattr(block, "fc1") and hasattr(block, "fc2"):  # OPT
        return FFNLayer(i, "plain", None, block.fc1, block.fc2, block.activation_fn,
                        _n_out(block.fc1), f"{prefix}.{i}.fc2")
    raise UnsupportedArchitecture(
        f"layer {i} ({type(block).__name__}) has an FFN layout babel does not know; supported "
        f"are gated (gate_proj/up_proj/down_proj) and GPT-2/OPT/BLOOM plain FFNs"
    )


def ffn_layers(model: nn.Module) -> list[FFNLayer]:
    """The uniform FFN view of every layer of ``model`` (a causal LM or its body)."""
    prefix, blocks = decoder_layers(model)
    return [_layer_view(i, b, prefix) for i, b in enumerate(blocks)]


def body(model: nn.Module) -> nn.Module:
    """The transformer body of a causal LM (everything but the output head)."""
    base = getattr(model, "base_model", None)
    return base if isinstance(base, nn.Module) and base is not model else model
