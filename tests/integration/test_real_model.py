"""Integration tests of experts and profiling on the real gemma-3-270m."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from babel.construct.partition import build_partition
from babel.construct.routing import contiguous_partition, permuted_copy, routed_forward
from babel.core.config import PartitionConfig, ProfileConfig, SelectionRule
from babel.data.chunking import chunk_texts
from babel.data.corpus import load_items
from babel.models.hooks import mask_neurons
from babel.profile.cache import profile_language
from babel.profile.profiler import profile_chunks


@pytest.fixture(scope="module")
def gemma_partition(gemma):
    # a random partition builds in a second; k-means E=256 is exercised by notebook 01
    return build_partition(gemma[0], PartitionConfig(n_experts=256, method="random"),
                           model_name="gemma-3-270m")



def test_all_experts_reproduce_dense_and_reordered(gemma, gemma_partition):
    model, tok = gemma
    ids = tok("La capitale de la France est", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        dense = model(input_ids=ids).logits
    full = routed_forward(model, gemma_partition, SelectionRule(share=1.0), ids).logits
    assert (dense - full).abs().max() <= 1e-4
    re = permuted_copy(model, gemma_partition)
    full_re = routed_forward(re, contiguous_partition(gemma_partition), SelectionRule(share=1.0),
                             ids).logits
    assert (dense - full_re).abs().max() <= 1e-4
    a = model.generate(ids, max_new_tokens=6, do_sample=False)
    b = re.generate(ids, max_new_tokens=6, do_sample=False)
    assert torch.equal(a, b)


def test_partial_selection_equals_zeroed_neurons(gemma, gemma_partition):
    model, tok = gemma
    ids = tok("Water boils at a lower temperature", return_tensors="pt")["input_ids"]
    keep_e = torch.rand(18, 256, generator=torch.Generator().manual_seed(0)) > 0.3
    keep_n = keep_e.gather(1, torch.as_tensor(gemma_partition.labels, dtype=torch.long))
    with torch.no_grad(), mask_neurons(model, keep_n):
        masked = model(input_ids=ids).logits
    import copy

    ref = copy.deepcopy(model)
    from babel.models.ffn import ffn_layers

    for v in ffn_layers(ref):
        v.down.weight.data[:, ~keep_n[v.index]] = 0
    with torch.no_grad():
        zeroed = ref(input_ids=ids).logits
    assert (masked - zeroed).abs().max() <= 1e-4


def test_profile_real_language_is_additive_and_cached(gemma, gemma_partition):
    model, tok = gemma
    texts = [it.text for it in load_items("fr", split="profiling")[:8]]
    ch = chunk_texts(texts, tok, seq_len=32, max_tokens=120)
    rule = SelectionRule()
    whole = profile_chunks(model, gemma_partition, rule, ch.input_ids, ch.attention_mask,
                           bos_id=tok.bos_token_id, progress=False)
    a = profile_chunks(model, gemma_partition, rule, ch.input_ids[:2], ch.attention_mask[:2],
                       bos_id=tok.bos_token_id, progress=False)
    b = profile_chunks(model, gemma_partition, rule, ch.input_ids[2:], ch.attention_mask[2:],
                       bos_id=tok.bos_token_id, progress=False)
    assert np.array_equal((a + b).counts, whole.counts)
    assert whole.counts.sum() == whole.tokens * round(0.2 * 18 * 256)
    cfg = ProfileConfig(max_tokens=60, seq_len=32)
    p1 = profile_language(model, tok, gemma_partition, "sw", cfg, model_name="gemma-3-270m",
                          progress=False)
    p2 = profile_language(model, tok, gemma_partition, "sw", cfg, model_name="gemma-3-270m",
                          progress=False)
    assert np.array_equal(p1.chunk_counts, p2.chunk_counts) and p1.tokens > 0
