"""Language-specific expert pruning: keep-masks from frequencies, structural slicing, FLOPs.

Pipeline: a language's activation frequency ``[L, E]`` (:mod:`babel.profiling`) gives an
expert keep-mask (:func:`keep_mask`), expanded to FFN neurons through the partition
(:func:`neuron_keep_mask`); :func:`prune_model` returns a copy whose FFN weight matrices are
sliced to the kept neurons (a really smaller model, unlike :func:`babel.ffn.mask_neurons`,
which only zeroes them), and :func:`flops_per_token` counts the matmul work saved.

Design choices (the paper leaves them open):

- **Budget.** A kept share ``k`` keeps ``round(k·L·E)`` experts in all (never fewer than one
  per layer). Every layer has the same expert size, so the kept share of experts is the kept
  share of FFN neurons and parameters.
- **Global allocation** (``"global"``): all L·E experts are ranked by frequency together and
  the most frequent are kept, after reserving each layer's most frequent expert (the
  per-layer minimum). The cross-layer selection rule makes frequencies comparable across
  layers (every token selects the same share ``r`` of all L·E experts), so a layer whose
  selections are concentrated on a few experts loses many of its rarely selected ones.
- **Adaptive allocation** (``"adaptive"``, the v2 paper's per-layer rates): each layer keeps
  a count proportional to its *effective number of experts* ``exp(H_l)``, with ``H_l`` the
  entropy of the layer's frequencies normalised into a distribution over its E experts
  (E for a uniform layer, 1 for a layer that always selects the same expert). Counts are
  water-filled to sum exactly to the global budget, each in ``[1, E]``; within a layer the
  most frequent experts are kept. Concentrated layers lose more.
- **Ties** (many experts share a frequency of 0 at small token budgets) are broken by a
  fixed-seed random order, so no layer or expert index is favoured.
- **Random baselines:** the same per-layer counts as a frequency mask, random experts, seeded
  (:func:`random_like`: isolates *which* experts are kept); and the naive one, the same
  number of random experts in every layer (:func:`uniform_random_mask`).
- **Groups:** ``combine="sum"`` ranks by the summed frequency of the languages (budget exact);
  ``combine="union"`` keeps every expert that any language's own mask keeps (budget ``>= k``).
"""

from __future__ import annotations

import copy
import dataclasses
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn

from babel.artifacts import read_json, write_json, write_npz
from babel.experts import Partition
from babel.ffn import FFNLayer, body, ffn_layers

Allocation = Literal["global", "adaptive"]
Combine = Literal["sum", "union"]
ALLOCATIONS = ("global", "adaptive")
COMBINES = ("sum", "union")
TIEBREAK_SEED = 12345
WEIGHTS_FILE = "model.safetensors"
MASK_FILE = "keep.npz"
CONFIG_FILE = "config.json"
META_FILE = "babel_pruned.json"


# ---------------------------------------------------------------------------- keep-masks

def _check_freq(freq: np.ndarray) -> np.ndarray:
    f = np.asarray(freq, dtype=np.float64)
    if f.ndim != 2 or f.size == 0:
        raise ValueError(f"frequency must be a non-empty [L, E] matrix, got shape {f.shape}: "
                         f"pass Profile.frequency")
    if not np.isfinite(f).all() or (f < 0).any():
        raise ValueError("frequency must be finite and >= 0: pass Profile.frequency")
    return f


def _check_share(share: float) -> float:
    if isinstance(share, bool) or not 0.0 < float(share) <= 1.0:
        raise ValueError(f"kept share must be in (0, 1], got {share!r}")
    return float(share)


def kept_budget(share: float, n_layers: int, n_experts: int) -> int:
    """Experts kept in all at share ``k``: ``round(k·L·E)``, at least one per layer."""
    share = _check_share(share)
    return int(min(n_layers * n_experts, max(n_layers, round(share * n_layers * n_experts))))


def _rank_key(freq: np.ndarray) -> np.ndarray:
    """Descending-frequency order key with seeded random tie-breaking (flat ``[L*E]`` order)."""
    tie = np.random.default_rng(TIEBREAK_SEED).random(freq.size)
    return np.lexsort((tie, -freq.ravel()))


def _top_per_layer(freq: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Keep the ``counts[l]`` most frequent experts of each layer (ties seeded-random)."""
    grank = np.empty(freq.size, dtype=np.int64)
    grank[_rank_key(freq)] = np.arange(freq.size)  # 0 = most frequent overall
    rank = np.argsort(np.argsort(grank.reshape(freq.shape), axis=1), axis=1)
    return rank < np.asarray(counts)[:, None]


def global_keep_mask(freq: np.ndarray, share: float) -> np.ndarray:
    """Keep the most frequent experts ranked across all layers (each layer keeps >= 1).

    Args:
        freq: ``[L, E]`` activation frequency of one language (or a group's summed one).
        share: Kept share ``k`` of all L·E experts.

    Returns:
        ``[L, E]`` bool keep-mask with exactly :func:`kept_budget` experts.
    """
    f = _check_freq(freq)
    n_layers, n_exp = f.shape
    budget = kept_budget(share, n_layers, n_exp)
    keep = _top_per_layer(f, np.ones(n_layers, dtype=np.int64))  # the per-layer minimum
    order = _rank_key(f)
    rest = order[~keep.ravel()[order]][: budget - n_layers]
    flat = keep.ravel().copy()
    flat[rest] = True
    return flat.reshape(n_layers, n_exp)


def effective_experts(freq: np.ndarray) -> np.ndarray:
    """``[L]`` effective number of experts ``exp(H_l)`` of each layer's frequencies.

    ``H_l`` is the entropy of ``freq[l] / freq[l].sum()``; a layer with no selections counts
    as uniform (``E``).
    """
    f = _check_freq(freq)
    tot = f.sum(1, keepdims=True)
    p = np.where(tot > 0, f / np.where(tot > 0, tot, 1.0), 1.0 / f.shape[1])
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(p > 0, p * np.log(p), 0.0).sum(1)
    return np.exp(h)


def allocate(weights: np.ndarray, budget: int, n_experts: int) -> np.ndarray:
    """Integer per-layer counts in ``[1, E]`` proportional to ``weights``, summing to ``budget``.

    Water-filling: find ``c`` with ``Σ clip(c·w, 1, E) = budget`` by bisection, floor, then
    hand the remainder to the largest fractional parts.
    """
    w = np.maximum(np.asarray(weights, dtype=np.float64), 1e-12)
    n_layers = w.size
    if not n_layers <= budget <= n_layers * n_experts:
        raise ValueError(f"budget {budget} must be in [{n_layers}, {n_layers * n_experts}] "
                         f"(one to E experts per layer)")
    lo, hi = 0.0, n_experts / w.min()
    for _ in range(200):
        mid = (lo + hi) / 2
        if np.clip(mid * w, 1, n_experts).sum() < budget:
            lo = mid
        else:
            hi = mid
    x = np.clip(hi * w, 1, n_experts)
    n = np.floor(x + 1e-9).astype(np.int64)
    frac = x - n
    up, down = np.argsort(-frac, kind="stable"), np.argsort(frac, kind="stable")
    while n.sum() < budget:  # largest remainders first; rarely more than one round
        for i in up[n[up] < n_experts][: budget - n.sum()]:
            n[i] += 1
    while n.sum() > budget:
        for i in down[n[down] > 1][: n.sum() - budget]:
            n[i] -= 1
    return n


def adaptive_counts(freq: np.ndarray, share: float) -> np.ndarray:
    """``[L]`` kept experts per layer under the adaptive allocation (sums to the budget)."""
    f = _check_freq(freq)
    n_layers, n_exp = f.shape
    return allocate(effective_experts(f), kept_budget(share, n_layers, n_exp), n_exp)


def keep_mask(freq: np.ndarray, share: float, *, allocation: Allocation = "global") -> np.ndarray:
    """Frequency-based expert keep-mask ``[L, E]`` of one language at kept share ``share``.

    Args:
        freq: ``[L, E]`` activation frequency (``Profile.frequency``).
        share: Kept share ``k`` of all experts.
        allocation: ``"global"`` (rank across layers) or ``"adaptive"`` (per-layer counts
            proportional to each layer's effective number of experts).
    """
    if allocation not in ALLOCATIONS:
        raise ValueError(f"allocation must be one of {ALLOCATIONS}, got {allocation!r}")
    if allocation == "global":
        return global_keep_mask(freq, share)
    return _top_per_layer(_check_freq(freq), adaptive_counts(freq, share))


def group_keep_mask(freqs: np.ndarray, share: float, *, combine: Combine = "sum",
                    allocation: Allocation = "global") -> np.ndarray:
    """Keep-mask ``[L, E]`` for a group of languages (``freqs``: ``[n_lang, L, E]``).

    ``combine="sum"`` ranks by summed frequency (budget exact); ``"union"`` keeps what any
    language's own mask keeps (at least the budget).
    """
    f = np.asarray(freqs, dtype=np.float64)
    if f.ndim != 3:
        raise ValueError(f"freqs must be [n_lang, L, E], got shape {f.shape}: use "
                         f"babel.profiling.frequency_tensor")
    if combine == "sum":
        return keep_mask(f.sum(0), share, allocation=allocation)
    if combine == "union":
        return np.logical_or.reduce([keep_mask(x, share, allocation=allocation) for x in f])
    raise ValueError(f"combine must be one of {COMBINES}, got {combine!r}")


def random_keep_mask(counts: Sequence[int] | np.ndarray, n_experts: int, *,
                     seed: int) -> np.ndarray:
    """Random baseline: ``counts[l]`` uniformly random experts of each layer, seeded."""
    c = np.asarray(counts, dtype=np.int64)
    if c.ndim != 1 or (c < 0).any() or (c > n_experts).any():
        raise ValueError(f"counts must be a [L] vector in [0, {n_experts}], got {c!r}")
    rnd = np.random.default_rng(seed).random((c.size, n_experts))
    ranks = np.argsort(np.argsort(rnd, axis=1), axis=1)
    return ranks < c[:, None]


def uniform_random_mask(n_layers: int, n_experts: int, share: float, *,
                        seed: int) -> np.ndarray:
    """Naive random baseline: every layer keeps (nearly) the same number of random experts.

    The counts are the budget :func:`kept_budget` spread evenly (remainders to the first
    layers), so the total equals a frequency mask's at the same share.
    """
    budget = kept_budget(share, n_layers, n_experts)
    counts = np.full(n_layers, budget // n_layers, dtype=np.int64)
    counts[: budget % n_layers] += 1
    return random_keep_mask(counts, n_experts, seed=seed)


def random_like(mask: np.ndarray, *, seed: int) -> np.ndarray:
    """A random keep-mask with the same per-layer counts as ``mask``."""
    m = np.asarray(mask, dtype=bool)
    return random_keep_mask(m.sum(1), m.shape[1], seed=seed)


def removal_mask(remove: np.ndarray, freq: np.ndarray | None = None) -> np.ndarray:
    """Keep everything but ``remove`` (``[L, E]`` bool); a layer never loses all its experts.

    If every expert of a layer is in ``remove``, its most frequent one (by ``freq``, else
    the first) is kept.
    """
    keep = ~np.asarray(remove, dtype=bool)
    empty = ~keep.any(1)
    if empty.any():
        f = np.zeros(keep.shape) if freq is None else _check_freq(freq)
        best = _top_per_layer(f, np.ones(keep.shape[0], dtype=np.int64))
        keep = keep | (best & empty[:, None])
    return keep


def neuron_keep_mask(expert_keep: np.ndarray, partition: Partition) -> np.ndarray:
    """Expand an expert keep-mask ``[L, E]`` to FFN neurons ``[L, N]`` via ``partition.labels``."""
    k = np.asarray(expert_keep, dtype=bool)
    if k.shape != (partition.n_layers, partition.n_experts):
        raise ValueError(f"expert mask {k.shape} does not match the partition "
                         f"({partition.n_layers}, {partition.n_experts}): build it from this "
                         f"partition's profiles")
    return np.take_along_axis(k, partition.labels.astype(np.int64), axis=1)


def mask_summary(mask: np.ndarray) -> dict:
    """Kept share overall and per layer (for tables)."""
    m = np.asarray(mask, dtype=bool)
    return {"kept_share": float(m.mean()), "per_layer": m.sum(1).tolist(),
            "min_layer": int(m.sum(1).min())}


# ---------------------------------------------------------------------------- slicing

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


def _as_masks(keep_neurons, views: list[FFNLayer]) -> list[Tensor]:
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
    masks = _as_masks(keep_neurons, views)
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
    :func:`babel.ffn.mask_neurons` with the same mask.

    Args:
        model: A causal LM with gated (``nn.Linear``) or GPT-2 (``Conv1D``) FFNs.
        keep_neurons: ``[L, N]`` bool (numpy, tensor or list of per-layer masks).

    Returns:
        The pruned model (eval mode, same device and dtype).
    """
    views = ffn_layers(model)
    _as_masks(keep_neurons, views)
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


# ---------------------------------------------------------------------------- save / load

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
        from babel.models import model_name

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


# ---------------------------------------------------------------------------- FLOPs

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
        masks = _as_masks(keep_neurons, views)
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


__all__ = [
    "ALLOCATIONS",
    "FlopCount",
    "adaptive_counts",
    "allocate",
    "effective_experts",
    "ffn_sizes",
    "flops_per_token",
    "global_keep_mask",
    "group_keep_mask",
    "keep_mask",
    "kept_budget",
    "load_pruned",
    "mask_summary",
    "neuron_keep_mask",
    "prune_model",
    "random_keep_mask",
    "random_like",
    "removal_mask",
    "save_pruned",
    "slice_ffn_",
    "theoretical_speedup",
    "uniform_random_mask",
]
