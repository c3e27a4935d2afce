"""Hooks on the FFN output projection that read or replace ``h``; context managers only.

:func:`trace_ffn` attaches a pre-hook on every FFN's output projection and removes it on exit,
even on error; :func:`mask_neurons` uses it to zero neurons (the dense model with them removed).

Models dispatched by accelerate (``load_model(..., device_map=...)``) are hooked the same way:
``h`` arrives on the device its layer runs on (masks follow it there). Layers offloaded to CPU
or disk keep their weights on the ``meta`` device between forward passes; :func:`onloaded`
makes them real tensors for code that reads or rewrites weights (partitions, neuron
permutations) and writes rewritten ones back to the offload store.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, MutableMapping, Sequence

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
def add_ffn_bias(model: nn.Module, bias: Tensor | Sequence[Tensor]) -> Iterator[None]:
    """Add ``bias[l]`` (``[L, d_model]``) to every FFN's output, ``down(h) + bias[l]``; detach on
    exit, even on error (pruning compensation, :mod:`babel.prune.compensation`)."""
    views = ffn_layers(model)
    biases = [torch.as_tensor(b) for b in bias]
    if len(biases) != len(views):
        raise ValueError(f"bias has {len(biases)} layers, the model {len(views)}")
    handles = []

    def make(b: Tensor):
        def hook(_module: nn.Module, _args, out: Tensor) -> Tensor:
            return out + b.to(device=out.device, dtype=out.dtype)

        return hook

    try:
        for v, b in zip(views, biases, strict=True):
            handles.append(v.down.register_forward_hook(make(b)))
        yield
    finally:
        for h in handles:
            h.remove()


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


def _offload_hook(module: nn.Module):
    """accelerate's weight-offloading hook on ``module`` itself, or ``None``."""
    hook = getattr(module, "_hf_hook", None)
    if hook is None or not getattr(hook, "offload", False):
        return None
    if not hasattr(hook, "weights_map"):  # e.g. a SequentialHook: not a layout babel knows
        raise NotImplementedError(f"{type(module).__name__} carries an offload hook of type "
                                  f"{type(hook).__name__}, which babel cannot read")
    return hook


def is_offloaded(module: nn.Module) -> bool:
    """Whether accelerate keeps ``module``'s own weights off-device (CPU or disk offload)."""
    return _offload_hook(module) is not None


@contextlib.contextmanager
def onloaded(module: nn.Module, *, write_back: bool = False) -> Iterator[nn.Module]:
    """Inside the block, ``module``'s weights are real tensors, also when they are offloaded.

    For a module whose weights accelerate offloaded to CPU or disk (they sit on ``meta``
    between forward passes), the weights are loaded onto its execution device on entry and
    released on exit, as a forward pass would. Any other module is left as it is.

    Args:
        module: A module (usually one projection of an FFN).
        write_back: Store the module's weights as they are at the end of the block (without
            an error) into the offload store: the next forward pass then uses them. Disk
            offload writes them to ``<offload folder>/<name>.dat`` (never into the model's own
            files), CPU offload replaces the tensor in RAM.

    Yields:
        ``module``.
    """
    hook = _offload_hook(module)
    if hook is None:
        yield module
        return
    hook.pre_forward(module)
    try:
        yield module
        if write_back:
            _store(hook, module)
    finally:
        hook.post_forward(module, None)


def _store(hook, module: nn.Module) -> None:
    """Write ``module``'s current weights into the offload store of its accelerate ``hook``."""
    from accelerate.utils import named_module_tensors, offload_weight
    from accelerate.utils.offload import OffloadedWeightsLoader, PrefixedDataset

    wmap = hook.weights_map
    prefix = ""
    if isinstance(wmap, PrefixedDataset):
        wmap, prefix = wmap.dataset, wmap.prefix
    for name, tensor in named_module_tensors(module, include_buffers=hook.offload_buffers,
                                             recurse=hook.place_submodules,
                                             remove_non_persistent=True):
        key, value = prefix + name, tensor.detach().to("cpu").contiguous()
        if isinstance(wmap, OffloadedWeightsLoader) and key not in wmap.state_dict \
                and wmap.save_folder is not None:
            offload_weight(value, key, str(wmap.save_folder), index=wmap.index)
        elif isinstance(wmap, OffloadedWeightsLoader):
            wmap.state_dict[key] = value.clone()
            if key not in wmap.all_keys:
                wmap.all_keys.append(key)
        elif isinstance(wmap, MutableMapping):
            wmap[key] = value.clone()
        else:
            raise NotImplementedError(f"cannot write {key} back into an offload store of type "
                                      f"{type(wmap).__name__}")


@contextlib.contextmanager
def onloaded_layer(layer: FFNLayer) -> Iterator[FFNLayer]:
    """:func:`onloaded` for every projection of one FFN (read only): its weights are real."""
    with contextlib.ExitStack() as stack:
        for m in (layer.gate, layer.up, layer.down):
            if m is not None:
                stack.enter_context(onloaded(m))
        yield layer
