"""Routing at share < 1 against an independent reference: plain torch hooks and per-token loops."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from babel.construct.partition import build_partition
from babel.construct.routing import routed_forward
from babel.core.config import PartitionConfig, SelectionRule


def _downs(model):
    return [layer.mlp.down_proj for layer in model.model.layers]


def _ref_scores(h: np.ndarray, labels: np.ndarray, n_experts: int) -> np.ndarray:
    """``[T, E]``: Σ|h| over each expert's neurons, one expert at a time."""
    return np.stack([np.abs(h[:, labels == e]).sum(1) for e in range(n_experts)], axis=1)


def _z(s: np.ndarray) -> np.ndarray:
    return (s - s.mean(-1, keepdims=True)) / s.std(-1, ddof=1, keepdims=True)


def _ref_layer_select(s: np.ndarray, rule: SelectionRule) -> np.ndarray:
    """``[T, E]`` bool for the layer-local rules, token by token."""
    sel = np.zeros_like(s, dtype=bool)
    for t in range(s.shape[0]):
        if rule.kind == "per_layer_topk":
            k = max(1, round(rule.share * s.shape[1]))
            sel[t, np.argsort(-s[t], kind="stable")[:k]] = True
        else:
            sel[t] = _z(s[t]) > rule.z
    return sel


def _forward_with(model, ids, fn):
    handles = [d.register_forward_pre_hook(lambda _m, a, i=i: (fn(i, a[0]),))
               for i, d in enumerate(_downs(model))]
    try:
        with torch.no_grad():
            return model(input_ids=ids).logits
    finally:
        for h in handles:
            h.remove()


def _reference(model, part, rule: SelectionRule, ids: torch.Tensor) -> torch.Tensor:
    labels, n_exp = part.labels, part.n_experts
    if rule.kind != "cross_layer":  # each layer selects on its own (already routed) input
        def local(i, h):
            flat = h.reshape(-1, h.shape[-1])
            sel = _ref_layer_select(_ref_scores(flat.numpy(), labels[i], n_exp), rule)
            keep = torch.from_numpy(sel[:, labels[i]]).to(h.dtype)
            return (flat * keep).reshape(h.shape)

        return _forward_with(model, ids, local)
    seen: dict[int, np.ndarray] = {}

    def record(i, h):
        seen[i] = _ref_scores(h.reshape(-1, h.shape[-1]).numpy(), labels[i], n_exp)
        return h

    _forward_with(model, ids, record)
    scores = np.stack([seen[i] for i in range(len(seen))], axis=1)  # [T, L, E]
    n_tok, n_layers = scores.shape[:2]
    k = max(1, round(rule.share * n_layers * n_exp))
    sel = np.zeros(scores.shape, dtype=bool)
    for t in range(n_tok):
        z = np.concatenate([_z(scores[t, layer]) for layer in range(n_layers)])
        top = np.argsort(-z, kind="stable")[:k]
        sel[t].reshape(-1)[top] = True

    def apply(i, h):
        flat = h.reshape(-1, h.shape[-1])
        return (flat * torch.from_numpy(sel[:, i][:, labels[i]]).to(h.dtype)).reshape(h.shape)

    return _forward_with(model, ids, apply)


@pytest.mark.parametrize("rule", [SelectionRule("cross_layer", share=0.3),
                                  SelectionRule("per_layer_topk", share=0.25),
                                  SelectionRule("z_threshold", z=0.5)],
                         ids=lambda r: r.kind)
@pytest.mark.parametrize("fixture", ["tiny_llama", "tiny_gemma"])
def test_routed_forward_equals_reference(fixture, rule, request):
    model = request.getfixturevalue(fixture)
    part = build_partition(model, PartitionConfig(n_experts=8, method="random", seed=3))
    ids = torch.randint(3, 97, (1, 12), generator=torch.Generator().manual_seed(0))
    got = routed_forward(model, part, rule, ids).logits
    want = _reference(model, part, rule, ids)
    with torch.no_grad():
        dense = model(input_ids=ids).logits
    assert not torch.allclose(want, dense, atol=1e-4), "the rule must remove something"
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
