"""The uniform FFN view: rebuilding each FFN's output from the view's parts is exact."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from babel.models.ffn import UnsupportedArchitecture, ffn_layers
from babel.models.hooks import mask_neurons, trace_ffn


def _mlp_module(model, v):
    # the module whose forward is the whole FFN
    block = dict(model.named_modules())[v.name.rsplit(".", 1)[0]]
    return block



def test_view_rebuilds_ffn_output(tiny_model):
    views = ffn_layers(tiny_model)
    assert len(views) == 3
    x = torch.randn(2, 5, 32)
    for v in views:
        assert v.n_neurons == 64
        assert v.in_weight("gate").shape == (64, 32)
        assert v.out_weight().shape == (32, 64)
        mlp = _mlp_module(tiny_model, v)
        with torch.no_grad():
            ref = mlp(x)
            ours = v.output(v.intermediate(x))
        assert (ref - ours).abs().max() <= 1e-5


def test_hook_reads_h_and_detaches(tiny_model):
    seen = {}

    def grab(i, h):
        seen[i] = h.shape

    ids = torch.randint(3, 90, (2, 7))
    with trace_ffn(tiny_model, grab):
        tiny_model(input_ids=ids)
    assert sorted(seen) == [0, 1, 2] and seen[0][-1] == 64
    # hooks are gone after the block, even after an exception
    with pytest.raises(RuntimeError), trace_ffn(tiny_model, grab):
        raise RuntimeError("boom")
    for v in ffn_layers(tiny_model):
        assert not v.down._forward_pre_hooks


def test_mask_all_true_is_identity_and_zero_mask_matches_manual(tiny_llama):
    ids = torch.randint(3, 90, (2, 9))
    with torch.no_grad():
        dense = tiny_llama(input_ids=ids).logits
        with mask_neurons(tiny_llama, torch.ones(3, 64, dtype=torch.bool)):
            same = tiny_llama(input_ids=ids).logits
    assert torch.equal(dense, same)
    keep = torch.rand(3, 64) > 0.5
    # manual: zero the down_proj columns of dropped neurons
    import copy

    ref_model = copy.deepcopy(tiny_llama)
    for v in ffn_layers(ref_model):
        v.down.weight.data[:, ~keep[v.index]] = 0
    with torch.no_grad():
        ref = ref_model(input_ids=ids).logits
        with mask_neurons(tiny_llama, keep):
            got = tiny_llama(input_ids=ids).logits
    assert (ref - got).abs().max() <= 1e-5


def test_unsupported_architecture_is_named():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.weird = nn.Linear(4, 4)

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList([Block()])

    with pytest.raises(UnsupportedArchitecture, match="Block"):
        ffn_layers(M())
