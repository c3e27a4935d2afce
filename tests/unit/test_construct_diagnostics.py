"""Notebook 01's diagnostics: balance, cohesion, exactness, per-language scoring, selection."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from babel.construct import diagnostics as dx
from babel.construct.partition import build_partition
from babel.core.config import PartitionConfig, SelectionRule
from babel.models.ffn import ffn_layers


def test_balance_of_a_partition_and_of_a_broken_one(tiny_llama):
    part = build_partition(tiny_llama, PartitionConfig(n_experts=8, method="random"))
    assert dx.is_balanced(part) and (dx.expert_sizes(part) == 8).all()
    labels = part.labels.copy()
    labels[0, 0] = (labels[0, 0] + 1) % 8  # one neuron moved: two experts off by one
    assert not dx.is_balanced(dataclasses.replace(part, labels=labels))


def test_kmeans_recovers_planted_groups_cohesion_one(tiny_llama):
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for v in ffn_layers(tiny_llama):  # 8 groups of 8 neurons reading one direction each
            dirs = torch.randn(8, v.gate.weight.shape[1], generator=g)
            v.gate.weight.copy_(dirs.repeat_interleave(8, 0)[torch.randperm(64, generator=g)])
    part = build_partition(tiny_llama, PartitionConfig(n_experts=8, method="kmeans"))
    coh = dx.cohesion_table(tiny_llama, part)
    assert list(coh.columns) == ["chosen", "random"] and len(coh) == 3
    assert np.allclose(coh["chosen"], 1.0, atol=1e-5)
    assert (coh["random"] < 0.5).all()


def test_exactness_all_experts_is_the_dense_model(tiny_llama):
    part = build_partition(tiny_llama, PartitionConfig(n_experts=8, method="random", seed=1))
    ids = torch.tensor([[1, 5, 9, 17, 33, 40, 41]])
    ex = dx.exactness(tiny_llama, part, ids, max_new_tokens=4)
    assert ex["moe_all_experts_max_abs_diff"] == 0.0  # the mask multiplies by exactly 1
    assert ex["reordered_max_abs_diff"] < 1e-5 and ex["reordered_moe_max_abs_diff"] < 1e-5
    assert ex["same_greedy_continuation"] is True
    assert ex["continuation_ids"][:7] == ids[0].tolist() and len(ex["continuation_ids"]) == 11


def test_scoring_chunks_give_every_language_the_same_budget(byte_tokenizer):
    chunks = dx.scoring_chunks(byte_tokenizer, ["en", "fr", "ar"], score_tokens=50,
                               seq_len=16)
    assert list(chunks) == ["en", "fr", "ar"]
    assert all(c.n_content_tokens == 50 for c in chunks.values())
    assert all(c.n_chunks == 4 for c in chunks.values())  # ceil(50 / 15)


def test_scores_sum_to_the_total_activation(tiny_llama, byte_tokenizer):
    """Σ over experts of Σ|h| is Σ|h| over all neurons, whatever the partition."""
    part = build_partition(tiny_llama, PartitionConfig(n_experts=8, method="random"))
    chunks = dx.scoring_chunks(byte_tokenizer, ["en"], score_tokens=40, seq_len=16)["en"]
    s = dx.expert_score_tensor(tiny_llama, part, chunks)
    assert s.shape == (chunks.n_tokens, 3, 8)
    total: dict[int, torch.Tensor] = {}
    handles = [v.down.register_forward_pre_hook(
        lambda m, a, i=v.index: total.__setitem__(i, a[0].abs().sum(-1)))
        for v in ffn_layers(tiny_llama)]
    with torch.no_grad():
        tiny_llama(input_ids=chunks.input_ids, attention_mask=chunks.attention_mask)
    for h in handles:
        h.remove()
    valid = chunks.attention_mask.reshape(-1).bool()
    for i in range(3):
        assert torch.allclose(s[:, i].sum(-1), total[i].reshape(-1)[valid], rtol=1e-5)


def test_selection_per_layer_on_planted_scores():
    t = 5
    s = torch.zeros(t, 2, 10)
    s[:, 0, 3] = 100.0  # layer 0: one loud expert (z ≈ 2.85), the rest z ≈ -0.32
    s[:, 1] = torch.arange(10.0)  # layer 1: an even spread (top z ≈ 1.49, 1.16, 0.83)
    cross = dx.selection_per_layer(s, SelectionRule("cross_layer", share=0.2))  # k = 4
    assert cross["selected experts / token"].tolist() == [1.0, 3.0]
    assert cross["mean raw score"].tolist() == pytest.approx([10.0, 4.5])
    per = dx.selection_per_layer(s, SelectionRule("per_layer_topk", share=0.2))
    assert per["selected experts / token"].tolist() == [2.0, 2.0]


def test_design_choices_show_this_runs_values():
    df = dx.design_choices(PartitionConfig(n_experts=32, method="random", projection="up"),
                           SelectionRule("per_layer_topk", share=0.1))
    col = df["this run"]
    assert col["which weight rows are clustered"] == "up"
    assert col["balanced clustering"] == "random" and col["experts per layer E"] == "32"
    assert col['"highly activated"'] == "per_layer_topk" and col["r"] == "0.1"
