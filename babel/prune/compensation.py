"""Compensation for removed experts: their mean output folded into a constant FFN bias.

Removing neuron ``i`` takes ``h_i · W_down[:, i]`` out of every token's FFN output. Its mean
over a language's text, ``E[h_i] · W_down[:, i]``, can be put back as a constant (FLAP's bias
compensation, retraining-free): after pruning, layer ``l`` computes
``down(h_kept) + b_l`` with ``b_l = Σ_{i removed} E[h_i] · W_down[:, i]``. ``E[h_i]`` is the
language's profile mean (``Σh / T`` on the **profiling** split,
:attr:`babel.profile.profiler.Profile.neuron_mean`): no extra forward pass. What is lost is
then only the removed neurons' *fluctuation* around their mean (the FLAP-style score of
:mod:`babel.prune.importance`). For a constant input the compensation is exact.

How a saved model carries the bias (:func:`babel.models.surgery.save_pruned`):

- architectures whose config has ``mlp_bias`` (Llama family: Llama-2, SmolLM2, …): the folder
  sets ``mlp_bias: true`` with zero gate/up biases and ``b_l`` as the down-projection bias,
  so plain ``AutoModelForCausalLM.from_pretrained`` computes the compensated model;
- every other architecture (Gemma 3 among them: its MLP is built with ``bias=False`` and the
  FFN output passes through ``post_feedforward_layernorm``, a non-linear RMS norm, so no
  weight downstream can absorb a constant): the bias is stored beside the weights in
  ``compensation.npz``. :func:`babel.models.surgery.load_pruned` applies it; plain
  transformers loads the **uncompensated** pruned model, and ``babel_pruned.json`` says so.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from babel.models.ffn import ffn_layers
from babel.models.hooks import onloaded


def removed_mean_bias(model: nn.Module, neuron_mean: np.ndarray, keep_neurons) -> np.ndarray:
    """``[L, d_model]`` mean output of the neurons ``keep_neurons`` removes (float64).

    Args:
        model: The dense model (its down projections give ``W_down``).
        neuron_mean: ``[L, N]`` mean ``h`` of every neuron (``Profile.neuron_mean``).
        keep_neurons: ``[L, N]`` bool keep-mask.
    """
    views = ffn_layers(model)
    mean = np.asarray(neuron_mean, dtype=np.float64)
    keep = np.asarray(keep_neurons, dtype=bool)
    if mean.shape != keep.shape or mean.shape[0] != len(views):
        raise ValueError(f"neuron means {mean.shape} and keep-mask {keep.shape} must both be "
                         f"[L={len(views)}, N]: pass the profile and mask of this model")
    removed = torch.as_tensor(np.where(keep, 0.0, mean))
    out = []
    for v, r in zip(views, removed, strict=True):
        with onloaded(v.down):
            w = v.out_weight().detach().double().cpu()
        out.append((w @ r).numpy())
    return np.stack(out)


def carries_bias(model: nn.Module) -> bool:
    """Whether a standard folder of this architecture can hold an FFN output bias
    (``mlp_bias`` in its config: the Llama family)."""
    cfg = getattr(model.config, "get_text_config", lambda: model.config)()
    return hasattr(cfg, "mlp_bias")


@torch.no_grad()
def fold_bias_(model: nn.Module, bias: np.ndarray, *, all_projections: bool = False
               ) -> nn.Module:
    """Add ``bias[l]`` to every FFN's down-projection bias **in place** (``nn.Linear`` only).

    A projection without a bias gets a zero one first. With ``all_projections`` the gate and
    up projections get zero biases too (what ``mlp_bias: true`` in a Llama config expects).
    """
    views = ffn_layers(model)
    b = np.asarray(bias)
    if b.shape[0] != len(views):
        raise ValueError(f"bias has {b.shape[0]} layers, the model {len(views)}")
    for v, bl in zip(views, b, strict=True):
        mods = [(v.down, torch.as_tensor(bl))]
        if all_projections:
            mods += [(m, None) for m in (v.gate, v.up) if m is not None]
        for m, value in mods:
            if not isinstance(m, nn.Linear):
                raise TypeError(f"cannot give a {type(m).__name__} a bias: nn.Linear only")
            w = m.weight
            if m.bias is None:
                m.bias = nn.Parameter(torch.zeros(m.out_features, dtype=w.dtype,
                                                  device=w.device), requires_grad=False)
            if value is not None:
                m.bias.add_(value.to(m.bias))
    return model
