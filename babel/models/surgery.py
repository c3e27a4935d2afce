"""Weight surgery: permuting FFN neurons, structurally slicing them out, saving pruned models.

Nothing here knows about experts or languages: every function takes neuron orders or neuron
keep-masks ``[L, N]``. A pruned model is saved as a standard Hugging Face folder (config with
per-layer intermediate sizes, safetensors) plus the keep-mask that made it.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from babel.core.artifacts import read_json, write_json, write_npz
from babel.models.ffn import FFNLayer, ffn_layers
from babel.models.loading import model_name

WEIGHTS_FILE = "model.safetensors"
MASK_FILE = "keep.npz"
CONFIG_FILE = "config.json"
META_FILE = "babel_pruned.json"


def _parents(root: nn.Module) -> dict[int, tuple[nn.Module, str]]:
    out: dict[int, tuple[nn.Module, str]] = {}
    for parent in root.modules():
        for name, child in parent.named_children():
            out.setdefault(id(child), (parent, name))
    return out


def _slice_out(m: nn.Module, idx: Tensor) -> nn.Module:
    """A copy of an input projection keeping output features ``idx`` (neurons)."""
    w = m.weight.detach()
    bias = getattr(m, "bias", None)
    if isinstance(m, nn.Linear):
        new = nn.Linear(m.in_features, idx.numel(), bias=bias is not None,
                        device="meta", dtype=w.dtype)
        new.weight = nn.Parameter(w.index_select(0, idx).clone())
    elif type(m).__name__ == "Conv1D":  # GPT-2: weight [in, out]
        new = type(m)(idx.numel(), m.nx).to(device=w.device, dtype=w.dtype)
        new.weight = nn.Parameter(w.index_select(1, idx).clone())
    else:
        raise TypeError(f"cannot slice a {type(m).__name__}: prune_model supports nn.Linear "
                        f"and GPT-2 Conv1D projections")
    if bias is not None:
        new.bias = nn.Parameter(bias.detach().index_select(0, idx).clone())
    new.weight.requires_grad_(m.weight.requires_grad)
    return new


def _slice_in(m: nn.Module, idx: Tensor) -> nn.Module:
    """A copy of the output projection keeping input features ``idx`` (neurons)."""
    w = m.weight.detach()
    bias = getattr(m, "bias", None)
    if isinstance(m, nn.Linear):
        new = nn.Linear(idx.numel(), m.out_features, bias=bias is not None,
                        device="meta", dtype=w.dtype)
        new.weight = nn.Parameter(w.index_select(1, idx).clone())
    elif type(m).__name__ == "Conv1D":
        new = type(m)(m.nf, idx.numel()).to(device=w.device, dtype=w.dtype)
        new.weight = nn.Parameter(w.index_select(0, idx).clone())
    else:
        raise TypeError(f"cannot slice a {type(m).__name__}: prune_model supports nn.Linear "
                        f"and GPT-2 Conv1D projections")
    if bias is not None:
        new.bias = nn.Parameter(bias.detach().clone())
    return new


def as_neuron_masks(keep_neurons, views: list[FFNLayer]) -> list[Tensor]:
    """Per-layer bool neuron masks from ``[L, N]`` (or a list), checked against the model's sizes."""
    masks = [torch.as_tensor(np.asarray(k), dtype=torch.bool) for k in keep_neurons]
    if len(masks) != len(views):
        raise ValueError(f"keep mask has {len(masks)} layers but the model has {len(views)}: "
                         f"build it for this model")
    for v, m in zip(views, masks, strict=True):
        if m.shape != (v.n_neurons,):
            raise ValueError(f"layer {v.index}: keep mask has shape {tuple(m.shape)} but the "
                             f"FFN has {v.n_neurons} neurons: pass a [L, N] neuron mask "
                             f"(neuron_keep_mask)")
    return masks


@torch.no_grad()
def slice_ffn_(model: nn.Module, keep_neurons) -> nn.Module:
    """Slice every FFN of ``model`` **in place** to the kept neurons; returns ``model``."""
    views = ffn_layers(model)
    masks = as_neuron_masks(keep_neurons, views)
    parents = _parents(model)
    for v, m in zip(views, masks, strict=True):
        idx = m.nonzero().squeeze(1).to(v.up.weight.device)
        pairs = [(v.up, _slice_out(v.up, idx)), (v.down, _slice_in(v.down, idx))]
        if v.gate is not None:
            pairs.append((v.gate, _slice_out(v.gate, idx)))
        for old, new in pairs:
            parent, name = parents[id(old)]
            setattr(parent, name, new)
            if parent is not None and hasattr(parent, "intermediate_size"):
                parent.intermediate_size = int(idx.numel())
    return model


def prune_model(model: nn.Module, keep_neurons) -> nn.Module:
    """A pruned copy of ``model``: FFN gate/up rows and down columns sliced to kept neurons.

    The original is untouched (its FFN projections are not even copied: the copy gets new,
    smaller modules). Intermediate sizes may differ per layer. With every neuron kept, the
    copy computes the same logits; in general it equals the dense model under
    :func:`babel.models.hooks.mask_neurons` with the same mask.

    Args:
        model: A causal LM with gated (``nn.Linear``) or GPT-2 (``Conv1D``) FFNs.
        keep_neurons: ``[L, N]`` bool (numpy, tensor or list of per-layer masks).

    Returns:
        The pruned model (eval mode, same device and dtype).
    """
    views = ffn_layers(model)
    as_neuron_masks(keep_neurons, views)
    memo: dict[int, object] = {}
    for v in views:  # share, then replace: the copy never duplicates the dense FFN weights
        for mod in (v.gate, v.up, v.down):
            if mod is not None:
                memo[id(mod)] = mod
    new = copy.deepcopy(model, memo)
    slice_ffn_(new, keep_neurons)
    new.babel_keep_neurons = np.stack([np.asarray(k, dtype=bool) for k in keep_neurons])
    return new.eval()


def ffn_sizes(model: nn.Module) -> list[int]:
    """Intermediate size of each FFN layer (differs per layer after pruning)."""
    return [v.n_neurons for v in ffn_layers(model)]


def save_pruned(model: nn.Module, folder: Path, *, keep_neurons=None,
                meta: dict | None = None) -> Path:
    """Save a pruned model: safetensors weights, keep-mask, the dense config, babel metadata.

    Written into a temporary sibling folder, then renamed onto ``folder`` (atomic: a crash
    leaves the old folder or nothing). ``keep_neurons`` defaults to the mask
    :func:`prune_model` attached to the model.
    """
    from safetensors.torch import save_model

    keep = keep_neurons if keep_neurons is not None else getattr(model, "babel_keep_neurons",
                                                                   None)
    if keep is None:
        raise ValueError("no keep mask: pass keep_neurons= or save a model from prune_model")
    keep = np.stack([np.asarray(k, dtype=bool) for k in keep])
    if [int(k.sum()) for k in keep] != ffn_sizes(model):
        raise ValueError("keep mask does not match the model's FFN sizes: pass the mask the "
                         "model was pruned with")
    folder = Path(folder)
    tmp = folder.parent / f".{folder.name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        save_model(model, str(tmp / WEIGHTS_FILE))
        write_npz(tmp / MASK_FILE, keep=keep)
        model.config.to_json_file(str(tmp / CONFIG_FILE))

        write_json(tmp / META_FILE, {"base_model": model_name(model), "dtype": str(
            next(model.parameters()).dtype), "ffn_sizes": ffn_sizes(model),
            "kept_share": float(keep.mean()), **(meta or {})})
        old = folder.parent / f".{folder.name}.old"
        if folder.exists():
            folder.rename(old)
        tmp.rename(folder)
        if old.exists():
            shutil.rmtree(old)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return folder


def load_pruned(folder: Path) -> nn.Module:
    """Load a model written by :func:`save_pruned` (dense skeleton from config, sliced, loaded)."""
    from safetensors.torch import load_model
    from transformers import AutoConfig, AutoModelForCausalLM

    folder = Path(folder)
    if not (folder / META_FILE).exists():
        raise FileNotFoundError(f"{folder} holds no pruned model: write one with save_pruned")
    meta = read_json(folder / META_FILE)
    cfg = AutoConfig.from_pretrained(str(folder))
    with np.load(folder / MASK_FILE) as z:
        keep = z["keep"]
    dtype = getattr(torch, meta.get("dtype", "torch.float32").replace("torch.", ""))
    try:
        from transformers.initialization import no_init_weights
    except ImportError:  # older transformers
        from transformers.modeling_utils import no_init_weights
    with no_init_weights():
        model = AutoModelForCausalLM.from_config(cfg, dtype=dtype)
    model.tie_weights()  # tied heads must share before loading (the file stores them once)
    slice_ffn_(model, keep)
    load_model(model, str(folder / WEIGHTS_FILE), strict=True)
    model.babel_name = meta.get("base_model", "model")
    model.babel_keep_neurons = keep
    return model.eval()


def permute_layer_(v: FFNLayer, perm: Tensor) -> None:
    """Reorder one FFN's neurons in place: rows of gate/up, columns of down, by ``perm``."""
    _permute_out(v.up, perm.to(v.up.weight.device))
    if v.gate is not None:
        _permute_out(v.gate, perm.to(v.gate.weight.device))
    _permute_in(v.down, perm.to(v.down.weight.device))


def _permute_out(m: nn.Module, perm: Tensor) -> None:
    if isinstance(m, nn.Linear):
        m.weight.data = m.weight.data[perm].clone()
    else:  # Conv1D: weight [in, out]
        m.weight.data = m.weight.data[:, perm].clone()
    if getattr(m, "bias", None) is not None:
        m.bias.data = m.bias.data[perm].clone()


def _permute_in(m: nn.Module, perm: Tensor) -> None:
    if isinstance(m, nn.Linear):
        m.weight.data = m.weight.data[:, perm].clone()
    else:
        m.weight.data = m.weight.data[perm].clone()
