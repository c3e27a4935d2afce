"""Models dispatched by accelerate with CPU/disk offload give the same partitions and counts."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from babel.construct.partition import build_partition, weights_sha256
from babel.core.artifacts import sha256_file
from babel.core.config import PartitionConfig, SelectionRule
from babel.models.ffn import ffn_layers
from babel.models.hooks import is_offloaded, mask_neurons, onloaded_layer
from babel.models.loading import load_model
from babel.profile.profiler import profile_chunks

pytest.importorskip("accelerate")

DISK_LAYER_1 = {"model.embed_tokens": "cpu", "model.layers.0": "cpu", "model.layers.1": "disk",
                "model.layers.2": "cpu", "model.norm": "cpu", "model.rotary_emb": "cpu",
                "lm_head": "cpu"}


def _chunks(seed: int = 0, n: int = 6, t: int = 12, vocab: int = 97):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (n, t), generator=g)
    ids[:, 0] = 1
    am = torch.ones_like(ids)
    am[1, 8:] = 0  # some padding
    ids[1, 8:] = 0
    return ids, am


def _ffn_weights(model) -> list[torch.Tensor]:
    out = []
    for v in ffn_layers(model):
        with onloaded_layer(v):
            out += [w.detach().clone() for w in (v.in_weight("gate"), v.in_weight("up"),
                                                  v.out_weight())]
    return out


def _assert_same_profile(a, b) -> None:
    np.testing.assert_array_equal(a.chunk_counts, b.chunk_counts)
    np.testing.assert_array_equal(a.chunk_tokens, b.chunk_tokens)
    np.testing.assert_array_equal(a.neuron_active, b.neuron_active)
    np.testing.assert_allclose(a.neuron_abs, b.neuron_abs, rtol=1e-12, atol=0)


@pytest.fixture
def plain_and_disk(tiny_model_dir, tmp_path):
    plain, _ = load_model(str(tiny_model_dir))
    disk, _ = load_model(str(tiny_model_dir), device_map=DISK_LAYER_1,
                         offload_folder=tmp_path / "offload")
    return plain, disk


def test_disk_offload_is_real(plain_and_disk):
    _, disk = plain_and_disk
    v = ffn_layers(disk)
    assert is_offloaded(v[1].gate) and is_offloaded(v[1].down)
    assert not is_offloaded(v[0].gate)
    assert v[1].gate.weight.device.type == "meta"


@pytest.mark.parametrize("method", ["kmeans", "kmeans_fast"])
def test_disk_offload_same_partition_and_counts(plain_and_disk, tiny_model_dir, method):
    plain, disk = plain_and_disk
    checkpoint = sha256_file(tiny_model_dir / "model.safetensors")
    assert weights_sha256(disk) == weights_sha256(plain)
    cfg = PartitionConfig(n_experts=8, method=method, seed=0)
    part = build_partition(plain, cfg)
    np.testing.assert_array_equal(build_partition(disk, cfg).labels, part.labels)
    ids, am = _chunks(vocab=259)
    rule = SelectionRule("cross_layer", 0.2)
    ref = profile_chunks(plain, part, rule, ids, am, batch_size=4, progress=False)
    before = _ffn_weights(disk)
    got = profile_chunks(disk, part, rule, ids, am, batch_size=4, progress=False)
    _assert_same_profile(got, ref)
    assert ref.counts.sum() > 0
    for w0, w1 in zip(before, _ffn_weights(disk), strict=True):  # restored bit for bit
        assert torch.equal(w0, w1)
    assert ffn_layers(disk)[1].gate.weight.device.type == "meta"  # still offloaded
    assert sha256_file(tiny_model_dir / "model.safetensors") == checkpoint  # never written


def test_disk_offload_masks(plain_and_disk):
    plain, disk = plain_and_disk
    ids, am = _chunks(vocab=259)
    g = torch.Generator().manual_seed(1)
    keep = torch.rand(3, 64, generator=g) > 0.5
    with torch.no_grad(), mask_neurons(plain, keep):
        ref = plain(input_ids=ids, attention_mask=am).logits
    with torch.no_grad(), mask_neurons(disk, keep):
        got = disk(input_ids=ids, attention_mask=am).logits
    torch.testing.assert_close(got, ref, rtol=0, atol=0)


def test_cpu_offload_same_counts(tiny_llama):
    """accelerate's ``cpu_offload`` of one layer: its weights in a CPU state dict, moved in per
    forward (as ``device_map`` entries ``"cpu"`` do when the model runs on a GPU)."""
    from accelerate import cpu_offload

    plain, off = tiny_llama, copy.deepcopy(tiny_llama)
    cpu_offload(off.model.layers[1], execution_device=torch.device("cpu"))
    assert is_offloaded(ffn_layers(off)[1].up) and not is_offloaded(ffn_layers(off)[0].up)
    cfg = PartitionConfig(n_experts=8, method="kmeans", seed=0)
    part = build_partition(plain, cfg)
    np.testing.assert_array_equal(build_partition(off, cfg).labels, part.labels)
    ids, am = _chunks()
    rule = SelectionRule("per_layer_topk", 0.25)
    ref = profile_chunks(plain, part, rule, ids, am, batch_size=4, progress=False)
    before = _ffn_weights(off)
    got = profile_chunks(off, part, rule, ids, am, batch_size=4, progress=False)
    _assert_same_profile(got, ref)
    for w0, w1 in zip(before, _ffn_weights(off), strict=True):
        assert torch.equal(w0, w1)


def test_auto_device_map_with_max_memory_same_counts(tiny_model_dir):
    """``device_map="auto"`` with a CPU budget that fits the embedding and one layer: the rest
    goes to disk (in a temporary offload folder made by ``load_model``)."""
    plain, _ = load_model(str(tiny_model_dir))
    auto, _ = load_model(str(tiny_model_dir), device_map="auto", max_memory={"cpu": 120_000})
    offloaded = [is_offloaded(v.gate) for v in ffn_layers(auto)]
    assert any(offloaded) and not offloaded[0], auto.hf_device_map
    part = build_partition(plain, PartitionConfig(n_experts=8, method="random", seed=3))
    ids, am = _chunks(seed=1, vocab=259)
    rule = SelectionRule("z_threshold", z=1.0)
    ref = profile_chunks(plain, part, rule, ids, am, batch_size=3, progress=False)
    _assert_same_profile(profile_chunks(auto, part, rule, ids, am, batch_size=3,
                                        progress=False), ref)
