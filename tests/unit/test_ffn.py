"""The uniform FFN view: rebuilding each FFN's output from the view's parts is exact."""
from __future__ import annotations

import math

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


def _tiny_plain(kind: str):
    """Tiny OPT / BLOOM models built from configs (like tests/conftest.py)."""
    from transformers import AutoModelForCausalLM, BloomConfig, OPTConfig

    torch.manual_seed(0)
    if kind == "opt":
        cfg = OPTConfig(vocab_size=97, hidden_size=32, ffn_dim=64, num_hidden_layers=2,
                        num_attention_heads=4, max_position_embeddings=64, word_embed_proj_dim=32,
                        bos_token_id=1, eos_token_id=2, pad_token_id=0)
    else:
        cfg = BloomConfig(vocab_size=97, hidden_size=16, n_layer=2, n_head=4, bos_token_id=1,
                          eos_token_id=2, pad_token_id=0)  # BLOOM's FFN is 4 x hidden = 64
    model = AutoModelForCausalLM.from_config(cfg)
    model.eval()
    with torch.no_grad():  # pre-activations of order 1, where GELU variants differ (~1e-4)
        for v in ffn_layers(model):
            v.up.weight.mul_(40.0)
    return model


@pytest.mark.parametrize("kind,act,d_model", [("opt", torch.relu, 32),
                                              ("bloom", None, 16)])
def test_plain_ffn_branches_read_h_and_rebuild_the_output(kind, act, d_model):
    model = _tiny_plain(kind)
    views = ffn_layers(model)
    assert len(views) == 2 and all(v.kind == "plain" and v.n_neurons == 64 for v in views)
    assert views[0].name == {"opt": "model.decoder.layers.0.fc2",
                             "bloom": "transformer.h.0.mlp.dense_4h_to_h"}[kind]
    xs, ys, hs = {}, {}, {}
    hooks = []
    for v in views:  # the FFN's input (the input projection's input) and its output
        hooks.append(v.up.register_forward_pre_hook(
            lambda m, a, i=v.index: xs.__setitem__(i, a[0].detach())))
        hooks.append(v.down.register_forward_hook(
            lambda m, a, o, i=v.index: ys.__setitem__(i, o.detach())))
    ids = torch.randint(3, 90, (2, 7), generator=torch.Generator().manual_seed(1))
    try:
        with torch.no_grad(), trace_ffn(model, lambda i, h: hs.__setitem__(i, h.detach())):
            model(input_ids=ids)
    finally:
        for h in hooks:
            h.remove()
    for v in views:
        x = xs[v.index]
        assert x.shape[-1] == d_model
        with torch.no_grad():
            h = v.intermediate(x)
            # independently of the view: OPT's ReLU, BLOOM's tanh-approximate GELU
            if act is not None:
                ref = act(x @ v.up.weight.T + v.up.bias)
            else:
                ref = torch.nn.functional.gelu(x @ v.up.weight.T + v.up.bias, approximate="tanh")
            assert (h - ref).abs().max() <= 1e-5
            assert (h - hs[v.index]).abs().max() <= 1e-5  # the trace hook reads h
            assert (v.output(h) - ys[v.index]).abs().max() <= 1e-5  # down(h) = FFN output
        assert v.in_weight("in").shape == (64, d_model) and v.out_weight().shape == (d_model, 64)


def test_bloom_mlp_module_equals_down_of_h():
    model = _tiny_plain("bloom")
    x = torch.randn(2, 5, 16)
    for v, block in zip(ffn_layers(model), model.transformer.h):
        with torch.no_grad():  # BloomMLP adds its residual argument: pass zeros
            ref = block.mlp(x, torch.zeros_like(x))
            assert (ref - v.output(v.intermediate(x))).abs().max() <= 1e-5
            pre = v.up(x)
            assert pre.abs().max() > 2  # GELU's curved part is exercised
            tanh_gelu = 0.5 * pre * (1 + torch.tanh(math.sqrt(2 / math.pi)
                                                    * (pre + 0.044715 * pre ** 3)))
            assert (v.intermediate(x) - tanh_gelu).abs().max() <= 1e-5
