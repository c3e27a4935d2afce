"""Expert construction, scores, selection and exact routing on tiny random models."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from babel.construct.partition import (
    Partition,
    PartitionMismatch,
    build_partition,
    coactivation_features,
    cohesion,
    get_partition,
    weights_sha256,
)
from babel.construct.routing import contiguous_partition, permuted_copy, routed_forward
from babel.construct.selection import expert_scores, select
from babel.core.config import PartitionConfig, SelectionRule
from babel.models.ffn import ffn_layers


@pytest.mark.parametrize("method", ["kmeans", "random"])
def test_partition_is_balanced_and_deterministic(tiny_model, method):
    cfg = PartitionConfig(n_experts=8, method=method, seed=3)
    a = build_partition(tiny_model, cfg)
    b = build_partition(tiny_model, cfg)
    assert a.labels.shape == (3, 64)
    for layer in a.labels:
        assert np.bincount(layer, minlength=8).tolist() == [8] * 8
    assert np.array_equal(a.labels, b.labels)
    c = build_partition(tiny_model, PartitionConfig(n_experts=8, method=method, seed=4))
    assert not np.array_equal(a.labels, c.labels)


def test_coactivation_partition_is_balanced(tiny_llama):
    ids = torch.randint(3, 90, (4, 16))
    cfg = PartitionConfig(n_experts=8, method="coactivation")
    p = build_partition(tiny_llama, cfg, calibration=(ids, torch.ones_like(ids)))
    for layer in p.labels:
        assert np.bincount(layer, minlength=8).tolist() == [8] * 8



def test_coactivation_counts_equal_a_token_loop(tiny_model):
    """Counts of tokens on which two neurons' pre-activations are both > 0, padding excluded."""
    model = tiny_model
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 90, (3, 10), generator=g)
    am = torch.ones_like(ids)
    am[-1, 6:] = 0  # right padding in the last chunk: never counted
    views = ffn_layers(model)
    proj = views[0].gate if views[0].gate is not None else views[0].up
    with torch.no_grad():  # planted: neuron 5 of layer 0 has pre-activation exactly 0
        views[0].in_weight("gate")[5] = 0.0
        if getattr(proj, "bias", None) is not None:
            proj.bias[5] = 0.0
    got = coactivation_features(model, ids, am, batch_size=2)
    seen = {}
    hooks = [(v.gate if v.gate is not None else v.up).register_forward_hook(
        lambda m, a, o, i=v.index: seen.__setitem__(i, o.detach())) for v in views]
    ref = [np.zeros((64, 64)) for _ in views]
    try:
        for c in range(ids.shape[0]):
            n = int(am[c].sum())
            with torch.no_grad():
                model(input_ids=ids[c:c + 1, :n])  # the chunk alone, without its padding
            for t in range(n):
                for layer in range(len(views)):
                    fires = (seen[layer][0, t] > 0).numpy()
                    for a in np.flatnonzero(fires):
                        ref[layer][a, fires] += 1
    finally:
        for h in hooks:
            h.remove()
    for layer in range(len(views)):
        assert np.array_equal(got[layer], ref[layer]), layer
    assert not got[0][5].any() and not got[0][:, 5].any()  # 0 is not "fires"
    assert got[0].trace() == sum(ref[0][i, i] for i in range(64)) > 0


def test_bad_expert_count_is_explained(tiny_llama):
    with pytest.raises(ValueError, match="does not divide the 64 neurons"):
        build_partition(tiny_llama, PartitionConfig(n_experts=6))
    with pytest.raises(ValueError, match="method must be one of"):
        PartitionConfig(method="metis")


def test_kmeans_is_more_cohesive_than_random(tiny_llama):
    km = build_partition(tiny_llama, PartitionConfig(n_experts=8))
    rnd = build_partition(tiny_llama, PartitionConfig(n_experts=8, method="random"))
    assert cohesion(tiny_llama, km).mean() > cohesion(tiny_llama, rnd).mean()


def test_partition_cache_and_weight_check(tiny_llama, tmp_path):
    cfg = PartitionConfig(n_experts=8)
    p1 = get_partition(tiny_llama, cfg)
    p2 = get_partition(tiny_llama, cfg)
    assert np.array_equal(p1.labels, p2.labels)
    with torch.no_grad():
        ffn_layers(tiny_llama)[0].gate.weight.add_(1.0)
    with pytest.raises(PartitionMismatch, match="other weights"):
        get_partition(tiny_llama, cfg)
    p3 = get_partition(tiny_llama, cfg, rebuild=True)
    assert p3.weights_sha256 != p1.weights_sha256


def test_partition_load_returns_the_saved_labels_and_refuses_other_weights(tiny_llama, tmp_path):
    cfg = PartitionConfig(n_experts=8, method="random", seed=5)
    saved = build_partition(tiny_llama, cfg, model_name="tiny")
    saved.save(tmp_path / "p")
    loaded = Partition.load(tmp_path / "p", expect_sha256=saved.weights_sha256)
    assert np.array_equal(loaded.labels, saved.labels)
    assert loaded.labels.dtype.kind == "i" and loaded.labels.shape == (3, 64)
    assert (loaded.config, loaded.model, loaded.weights_sha256) == (cfg, "tiny",
                                                                   saved.weights_sha256)
    with torch.no_grad():  # other weights: a partition saved for the original is refused
        ffn_layers(tiny_llama)[2].down.weight.mul_(2.0)
    other = weights_sha256(tiny_llama)
    assert other != saved.weights_sha256
    with pytest.raises(PartitionMismatch, match="other weights"):
        Partition.load(tmp_path / "p", expect_sha256=other)


def test_scores_equal_membership_matmul(tiny_llama):
    p = build_partition(tiny_llama, PartitionConfig(n_experts=8, method="random"))
    h = torch.randn(5, 7, 64)
    for layer in range(3):
        ref = h.abs() @ p.membership(layer)
        got = expert_scores(h, p.order_tensor()[layer], 8)
        assert torch.allclose(ref, got, atol=1e-5)


def test_selection_shares():
    torch.manual_seed(0)
    s = torch.rand(50, 4, 16)
    cross = select(s, SelectionRule("cross_layer", share=0.25))
    assert cross.sum(dim=(1, 2)).eq(16).all()  # 25% of 64 per token
    per = select(s, SelectionRule("per_layer_topk", share=0.25))
    assert per.sum(-1).eq(4).all()
    z = select(s, SelectionRule("z_threshold", z=1.0))
    zz = (s - s.mean(-1, keepdim=True)) / s.std(-1, keepdim=True)
    assert torch.equal(z, zz > 1.0)
    # cross-layer: a layer with uniformly larger scores does not win after z-normalization
    s2 = s.clone()
    s2[:, 0] *= 100
    assert torch.equal(select(s2, SelectionRule("cross_layer", share=0.25)), cross)


@pytest.mark.parametrize("kind", ["cross_layer", "per_layer_topk"])
def test_routing_all_experts_is_exact(tiny_model, kind):
    p = build_partition(tiny_model, PartitionConfig(n_experts=8))
    ids = torch.randint(3, 90, (2, 9))
    with torch.no_grad():
        dense = tiny_model(input_ids=ids).logits
    full = routed_forward(tiny_model, p, SelectionRule(kind, share=1.0), ids).logits
    assert torch.equal(dense, full)
    half = routed_forward(tiny_model, p, SelectionRule(kind, share=0.5), ids).logits
    assert (dense - half).abs().max() > 1e-4


def test_permuted_copy_is_same_function(tiny_model):
    p = build_partition(tiny_model, PartitionConfig(n_experts=8))
    q = permuted_copy(tiny_model, p)
    ids = torch.randint(3, 90, (2, 9))
    with torch.no_grad():
        a = tiny_model(input_ids=ids).logits
        b = q(input_ids=ids).logits
    assert (a - b).abs().max() <= 1e-5
    # expert e of the copy is the contiguous block of neurons e*S:(e+1)*S
    cp = contiguous_partition(p)
    rule = SelectionRule("per_layer_topk", share=0.5)
    ra = routed_forward(tiny_model, p, rule, ids).logits
    rb = routed_forward(q, cp, rule, ids).logits
    assert (ra - rb).abs().max() <= 1e-5


def test_contiguous_experts_restores_weights_exactly(tiny_model):
    from babel.construct.routing import contiguous_experts

    p = build_partition(tiny_model, PartitionConfig(n_experts=8))
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    ids = torch.randint(3, 90, (2, 9))
    with torch.no_grad():
        dense = tiny_model(input_ids=ids).logits
    with pytest.raises(RuntimeError), contiguous_experts(tiny_model, p) as cp:
        assert cp.labels[0, :8].tolist() == [0] * 8
        with torch.no_grad():
            inside = tiny_model(input_ids=ids).logits
        assert (inside - dense).abs().max() <= 1e-5
        raise RuntimeError("interrupted")
    for k, v in tiny_model.state_dict().items():
        assert torch.equal(v, before[k]), k



def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _same(model, before) -> bool:
    return all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def _count_permutes(monkeypatch) -> list[int]:
    """The layer index of every layer permutation from now on (reorders and restores)."""
    from babel.construct import routing

    calls: list[int] = []
    real = routing.permute_layer_
    monkeypatch.setattr(routing, "permute_layer_",
                        lambda v, perm: (calls.append(v.index), real(v, perm)))
    return calls


def test_contiguous_experts_nested_reorders_once_and_outer_restores(tiny_model, monkeypatch):
    from babel.construct import routing

    p = build_partition(tiny_model, PartitionConfig(n_experts=8))
    before = _weights(tiny_model)
    calls = _count_permutes(monkeypatch)
    n_layers = p.n_layers
    with routing.contiguous_experts(tiny_model, p):
        inside = _weights(tiny_model)
        with routing.contiguous_experts(tiny_model, p) as cp:
            assert cp.labels[0, :8].tolist() == [0] * 8
            assert _same(tiny_model, inside)  # not reordered a second time
        assert _same(tiny_model, inside)  # the inner exit restores nothing
        assert len(calls) == n_layers
    assert len(calls) == 2 * n_layers and _same(tiny_model, before)
    assert tiny_model not in routing._REORDERED


def test_contiguous_experts_refuses_another_partition_inside(tiny_model):
    from babel.construct.routing import contiguous_experts

    p = build_partition(tiny_model, PartitionConfig(n_experts=8))
    q = build_partition(tiny_model, PartitionConfig(n_experts=4))
    before = _weights(tiny_model)
    with contiguous_experts(tiny_model, p), \
            pytest.raises(ValueError, match="already reordered for another partition"), \
            contiguous_experts(tiny_model, q):
        pass
    assert _same(tiny_model, before)


def test_hold_contiguous_reorders_once_for_many_blocks(tiny_model, monkeypatch):
    from babel.construct import routing

    p = build_partition(tiny_model, PartitionConfig(n_experts=8))
    before = _weights(tiny_model)
    calls = _count_permutes(monkeypatch)
    with routing.hold_contiguous(tiny_model):
        assert not calls and _same(tiny_model, before)  # lazy: nothing until a block needs it
        with routing.contiguous_experts(tiny_model, p):
            inside = _weights(tiny_model)
        assert not _same(tiny_model, before) and _same(tiny_model, inside)  # kept reordered
        with routing.hold_contiguous(tiny_model), routing.contiguous_experts(tiny_model, p):
            assert _same(tiny_model, inside)
        assert len(calls) == p.n_layers
    assert len(calls) == 2 * p.n_layers and _same(tiny_model, before)
    with routing.hold_contiguous(tiny_model):
        pass
    assert len(calls) == 2 * p.n_layers and tiny_model not in routing._REORDERED


def test_hold_contiguous_restores_after_an_error(tiny_model):
    from babel.construct.routing import contiguous_experts, hold_contiguous

    p = build_partition(tiny_model, PartitionConfig(n_experts=8))
    before = _weights(tiny_model)
    with pytest.raises(RuntimeError, match="stop"), hold_contiguous(tiny_model), \
            contiguous_experts(tiny_model, p):
        raise RuntimeError("stop")
    assert _same(tiny_model, before)


def test_a_failed_reorder_puts_the_done_layers_back(tiny_model, monkeypatch):
    from babel.construct import routing

    p = build_partition(tiny_model, PartitionConfig(n_experts=8))
    before = _weights(tiny_model)
    real = routing.permute_layer_
    seen = []

    def flaky(v, perm):
        seen.append(v.index)
        if len(seen) == 2:
            raise RuntimeError("out of memory")
        real(v, perm)

    monkeypatch.setattr(routing, "permute_layer_", flaky)
    with pytest.raises(RuntimeError, match="out of memory"), \
            routing.contiguous_experts(tiny_model, p):
        pass
    assert _same(tiny_model, before) and tiny_model not in routing._REORDERED

def test_topk_mask_matches_torch_topk_and_handles_ties():
    from babel.construct.selection import topk_mask

    x = torch.randn(40, 50)
    ref = torch.zeros_like(x, dtype=torch.bool).scatter_(-1, x.topk(7, dim=-1).indices, True)
    assert torch.equal(topk_mask(x, 7), ref)
    ties = torch.zeros(3, 10)
    ties[:, :2] = 1.0
    m = topk_mask(ties, 4)  # two clear winners, then a 8-way tie for the last two places
    assert m.sum(-1).eq(4).all() and m[:, :2].all()


def test_single_neuron_partition_has_its_own_key(tiny_llama):
    from babel.construct.partition import single_neuron_partition

    p = single_neuron_partition(tiny_llama)
    assert p.config.method == "neurons" and p.n_experts == 64 and p.expert_size == 1
    assert (p.labels == np.arange(64)).all()
    assert p.config.key != PartitionConfig(n_experts=64, method="random").key
    with pytest.raises(ValueError, match="n_experts=64"):
        build_partition(tiny_llama, PartitionConfig(n_experts=8, method="neurons"))
