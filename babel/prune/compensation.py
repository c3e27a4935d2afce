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
from babel.models.surgery import carries_bias, fold_bias_

__all__ = ["carries_bias", "fold_bias_", "removed_mean_bias"]


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
