"""Known answers for expert construction, scoring, selection and routing helpers.

- Co-activation features: a 3x3 count matrix whose cosine profile, centring and Gram matrix
  are worked out by hand; an 80-neuron case against an explicit per-entry loop (the 64 kept
  components reproduce the Gram matrix of a profile of rank < 64).
- Cohesion: hand-set gate rows whose within-expert cosines are 1, 0, -1 and 1/sqrt(2).
- Partition files: round trips, and hand-made label tables that each break one rule.
- Balanced k-means: the trivial cases (one cluster, one row per cluster), rows of two
  directions with very different lengths (only normalised rows group by direction).
- Scores, z-scores and the selection rules on small tables worked out by hand; top-k masks
  checked entry by entry against a sort.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import ClassVar

import numpy as np
import pytest
import torch

from babel.construct import partition as part_mod
from babel.construct.partition import (
    Partition,
    _coactivation_rows,
    _default_workers,
    balanced_kmeans,
    build_partition,
    cluster_rows,
    cohesion,
    expand_to_neurons,
    layer_rows,
    random_labels,
    single_neuron_partition,
    weights_sha256,
)
from babel.construct.routing import contiguous_partition, neuron_mask, permuted_copy
from babel.construct.selection import expert_scores, select, topk_mask, zscore
from babel.core.artifacts import config_dict
from babel.core.cache import CacheError, save_arrays
from babel.core.config import PartitionConfig, SelectionRule


def _llama(n_layers: int = 2, hidden: int = 8, inter: int = 6, seed: int = 0):
    """A very small random Llama (gated FFN) with ``inter`` neurons per layer."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=11, hidden_size=hidden, intermediate_size=inter,
                      num_hidden_layers=n_layers, num_attention_heads=2, num_key_value_heads=1,
                      max_position_embeddings=16)
    return AutoModelForCausalLM.from_config(cfg).eval()


def _gpt2(n_layers: int = 2):
    """A very small random GPT-2 (plain FFN, Conv1D weights ``[in, out]``)."""
    from transformers import AutoModelForCausalLM, GPT2Config

    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=11, n_embd=8, n_inner=6, n_layer=n_layers, n_head=2,
                     n_positions=16)
    return AutoModelForCausalLM.from_config(cfg).eval()


def _part(labels, n_experts: int, method: str = "random", sha: str = "ab" * 32,
          seconds: float = 0.0) -> Partition:
    labels = np.asarray(labels, dtype=np.int32)
    return Partition(PartitionConfig(n_experts=n_experts, method=method), "m", labels, sha,
                     seconds)


# ---------------------------------------------------------------- co-activation features


def _gram(f: np.ndarray) -> np.ndarray:
    return f @ f.T  # invariant to the signs of the singular vectors


def test_coactivation_rows_of_a_hand_made_count_matrix():
    """c = [[4,2,0],[2,1,0],[0,0,0]]: diag scale sqrt(max(c_ii, 1)) = [2, 1, 1], so the
    profile is [[1,1,0],[1,1,0],[0,0,0]]; minus its column means [2/3, 2/3, 0] it is
    P = [[1/3,1/3,0],[1/3,1/3,0],[-2/3,-2/3,0]]. All 3 components are kept (3 < 64), so
    the features' Gram matrix is P Pᵀ = [[2,2,-4],[2,2,-4],[-4,-4,8]] / 9."""
    c = np.array([[4.0, 2, 0], [2, 1, 0], [0, 0, 0]])
    f = _coactivation_rows(c)
    assert f.shape == (3, 3)
    want = np.array([[2, 2, -4], [2, 2, -4], [-4, -4, 8]]) / 9
    np.testing.assert_allclose(_gram(f), want, atol=1e-12)


def test_coactivation_rows_keep_64_components_of_80_neurons():
    """Counts of 20 tokens x 80 neurons (rank <= 20): the profile, by an explicit loop over
    entries, has rank < 64, so 64 components reproduce its Gram matrix exactly; neurons that
    fire on one token or none use the floor 1 of the diagonal scale."""
    rng = np.random.default_rng(0)
    fires = (rng.random((20, 80)) < 0.3).astype(float)
    fires[:, :3] = 0.0
    fires[5, 1] = 1.0  # neuron 1 fires once, neurons 0 and 2 never
    c = fires.T @ fires
    n = c.shape[0]
    prof = np.empty_like(c)
    for i in range(n):
        for j in range(n):
            prof[i, j] = c[i, j] / math.sqrt(max(c[i, i], 1.0)) / math.sqrt(max(c[j, j], 1.0))
    for j in range(n):
        prof[:, j] -= sum(prof[i, j] for i in range(n)) / n
    f = _coactivation_rows(c)
    assert f.shape == (80, 64)
    np.testing.assert_allclose(_gram(f), prof @ prof.T, atol=1e-9)


# ---------------------------------------------------------------- single-neuron partition


def test_single_neuron_partition_of_a_one_layer_model():
    """One neuron per expert: labels 0..N-1, E = N, and the name defaults to "model";
    method "neurons" with E != N (3 of 6) is refused, naming N."""
    model = _llama(n_layers=1)
    p = single_neuron_partition(model)
    assert p.model == "model"
    assert p.n_experts == 6 and p.labels.tolist() == [[0, 1, 2, 3, 4, 5]]
    assert single_neuron_partition(model, model_name="tiny").model == "tiny"
    with pytest.raises(ValueError, match=r"^method='neurons' means one neuron per expert: "
                                         r"set n_experts=6$"):
        build_partition(model, PartitionConfig(n_experts=3, method="neurons"))


def test_build_partition_records_its_name_and_int32_labels():
    """The random baseline of layer l is random_labels(N, E, seed=cfg.seed + l) (so any one
    layer can be regenerated on its own); the name defaults to "model"."""
    model = _llama(n_layers=3)
    cfg = PartitionConfig(n_experts=3, method="random", seed=5)
    p = build_partition(model, cfg)
    assert p.model == "model" and p.labels.dtype == np.int32
    for layer in range(3):
        assert p.labels[layer].tolist() == random_labels(6, 3, seed=5 + layer).tolist()
    assert build_partition(model, cfg, model_name="x").model == "x"


# ---------------------------------------------------------------- cohesion


def _cohesion_model():
    """2 layers x 6 neurons; gate rows of norm < 1 with known cosines."""
    model = _llama(n_layers=2)
    e = torch.eye(8)
    w0 = torch.stack([0.1 * e[0], 0.1 * e[1], 0.2 * e[0], 0.2 * e[2], 0.3 * e[0], 0.3 * e[3]])
    w1 = torch.stack([0.1 * e[0], -0.2 * e[0], 0.3 * e[0],
                      0.4 * e[1], 0.5 * (e[1] + e[2]) / math.sqrt(2), 0.7 * e[2]])
    with torch.no_grad():
        model.model.layers[0].mlp.gate_proj.weight.copy_(w0)
        model.model.layers[1].mlp.gate_proj.weight.copy_(w1)
    return model


def test_cohesion_of_hand_set_rows():
    """Layer 0: expert {0,2,4} is three rows along e0 (cosines 1), expert {1,3,5} three
    orthogonal rows (cosines 0): 1/2. Layer 1: expert {0,1,2} = e0, -e0, e0 has pair cosines
    -1, 1, -1 (mean -1/3); expert {3,4,5} = e1, (e1+e2)/sqrt2, e2 has 1/sqrt2, 0, 1/sqrt2
    (mean sqrt2/3): (sqrt2 - 1)/6. Row lengths (< 1) do not matter."""
    model = _cohesion_model()
    p = _part([[0, 1, 0, 1, 0, 1], [0, 0, 0, 1, 1, 1]], 2)
    want = [0.5, (math.sqrt(2) - 1) / 6]
    np.testing.assert_allclose(cohesion(model, p), want, atol=1e-6)
    np.testing.assert_allclose(cohesion(model, p, layers=[1]), want[1:], atol=1e-6)
    # one neuron per expert: cohesion 1 by convention (no pairs)
    np.testing.assert_allclose(cohesion(model, single_neuron_partition(model)), [1.0, 1.0])


def test_cohesion_of_pairs():
    """Experts of two neurons: the one pair's cosine. Layer 0 pairs (0,2), (1,3), (4,5):
    cosines 1, 0, 0 (mean 1/3); layer 1 pairs (0,1), (2,3), (4,5): -1, 0, 1/sqrt2."""
    model = _cohesion_model()
    p = _part([[0, 1, 0, 1, 2, 2], [0, 0, 1, 1, 2, 2]], 3)
    want = [1 / 3, (-1 + 1 / math.sqrt(2)) / 3]
    np.testing.assert_allclose(cohesion(model, p), want, atol=1e-6)


# ---------------------------------------------------------------- rows and weights hash


def test_layer_rows_of_each_projection():
    """Gated FFN: gate, up, their concatenation ``[N, 2d]``, and "in" = up. Plain FFN: the
    input projection (Conv1D weight transposed) for every name, "gate+up" included."""
    llama = _llama()
    mlp = llama.model.layers[1].mlp
    v = part_mod.ffn_layers(llama)[1]
    gate, up = mlp.gate_proj.weight.detach().numpy(), mlp.up_proj.weight.detach().numpy()
    np.testing.assert_array_equal(layer_rows(v, "gate"), gate)
    np.testing.assert_array_equal(layer_rows(v, "up"), up)
    np.testing.assert_array_equal(layer_rows(v, "in"), up)
    np.testing.assert_array_equal(layer_rows(v, "gate+up"), np.concatenate([gate, up], 1))
    gpt = _gpt2()
    w = gpt.transformer.h[0].mlp.c_fc.weight.detach().numpy().T
    g = part_mod.ffn_layers(gpt)[0]
    for proj in ("gate", "up", "in", "gate+up"):
        np.testing.assert_array_equal(layer_rows(g, proj), w)


def test_weights_sha256_hashes_gate_up_down_of_every_layer():
    """The sha256 of the float32 bytes of each layer's gate, up and down weights in turn."""
    model = _llama()
    h = hashlib.sha256()
    for layer in model.model.layers:
        for lin in (layer.mlp.gate_proj, layer.mlp.up_proj, layer.mlp.down_proj):
            h.update(lin.weight.detach().float().contiguous().numpy().tobytes())
    assert weights_sha256(model) == h.hexdigest()


# ---------------------------------------------------------------- Partition object and files


def test_order_labels_tensors_and_membership():
    """labels [[1,0,1,0]] (E=2): order = stable argsort = [1,3,0,2]; both tensors are int64,
    cached per device (the same object twice, a separate one on another device)."""
    p = _part([[1, 0, 1, 0]], 2)
    o, lab = p.order_tensor(), p.labels_tensor()
    assert o.dtype == torch.long and lab.dtype == torch.long
    assert o.tolist() == [[1, 3, 0, 2]] and lab.tolist() == [[1, 0, 1, 0]]
    assert p.order_tensor() is o and p.labels_tensor() is lab
    om, lm = p.order_tensor("meta"), p.labels_tensor("meta")
    assert om.device.type == "meta" and lm.device.type == "meta"
    assert om.dtype == torch.long and lm.dtype == torch.long
    assert p.order_tensor() is o and p.order_tensor().device.type == "cpu"
    assert p.labels_tensor().device.type == "cpu"
    assert p.membership(0).tolist() == [[0, 1], [1, 0], [0, 1], [1, 0]]


def test_save_load_round_trip(tmp_path):
    """Saved into a folder that does not exist yet (parents too), saved again over it; the
    loaded partition has the same settings, name, labels, hash and time; config.json records
    the layer and neuron counts."""
    p = Partition(PartitionConfig(n_experts=2, method="random", seed=3), "tiny",
                  np.array([[1, 0, 1, 0], [0, 0, 1, 1], [1, 1, 0, 0]], dtype=np.int32),
                  "cd" * 32, 1.25)
    folder = tmp_path / "a" / "b"
    p.save(folder)
    p.save(folder)
    q = Partition.load(folder, expect_sha256="cd" * 32, n_layers=3, n_neurons=4)
    assert q.config == p.config and q.model == "tiny" and q.weights_sha256 == "cd" * 32
    assert q.seconds == 1.25 and q.labels.tolist() == p.labels.tolist()
    assert q.labels.dtype == np.int32
    meta = json.loads((folder / "config.json").read_text())
    assert meta["n_layers"] == 3 and meta["n_neurons"] == 4 and meta["model"] == "tiny"
    assert meta["weights_sha256"] == "cd" * 32 and meta["seconds"] == 1.25
    assert meta["config"]["seed"] == 3
    # without the optional checks, and with the time missing from config.json: 0.0
    assert Partition.load(folder).labels.shape == (3, 4)
    del meta["seconds"]
    (folder / "config.json").write_text(json.dumps(meta))
    assert Partition.load(folder).seconds == 0.0


def test_load_refuses_other_counts_and_weights(tmp_path):
    """Another layer count, neuron count or weights hash is named in the error."""
    p = _part([[1, 0, 1, 0], [0, 0, 1, 1], [1, 1, 0, 0]], 2, sha="12345678901234567890")
    p.save(tmp_path)
    with pytest.raises(CacheError, match=r"has 3 layers, the model has 4$"):
        Partition.load(tmp_path, n_layers=4)
    with pytest.raises(CacheError, match=r"has 4 neurons per layer, the model has 8$"):
        Partition.load(tmp_path, n_neurons=8)
    assert Partition.load(tmp_path, n_layers=3, n_neurons=4).n_layers == 3
    with pytest.raises(part_mod.PartitionMismatch,
                       match=r"\(sha256 123456789012…, model has abcdefghijkl…\): rebuild it"):
        Partition.load(tmp_path, expect_sha256="abcdefghijklmnop")


def _write_labels(folder, labels, n_experts: int) -> None:
    """A partition folder holding ``labels`` as they are (no cast, no check)."""
    folder.mkdir(parents=True, exist_ok=True)
    save_arrays(folder / "partition.npz", folder / "config.json",
                {"config": config_dict(PartitionConfig(n_experts=n_experts, method="random")),
                 "model": "m", "weights_sha256": "0" * 64}, labels=np.asarray(labels))


@pytest.mark.parametrize("labels, n_experts, message", [
    (np.array([[0.0, 1.0]]), 2, r"labels float64\[1, 2\] cannot hold 2 equal experts"),
    (np.array([0, 1]), 2, r"labels int64\[2\] cannot hold 2 equal experts"),
    (np.zeros((1, 2, 2), dtype=np.int32), 2, r"cannot hold 2 equal experts"),
    (np.array([[0, 1, 0]]), 2, r"labels int64\[1, 3\] cannot hold 2 equal experts"),
    (np.array([[0, 1, 0, 1], [0, 0, 0, 1]]), 2,
     r"layer 1 is unbalanced \(every one of the 2 experts must hold 2 neurons\)"),
    (np.array([[-1, 1, 0, 0]]), 2, r"layer 0 is unbalanced"),
    (np.array([[0, 1, 2, 1]]), 2, r"layer 0 is unbalanced"),
])
def test_load_refuses_labels_that_break_a_rule(tmp_path, labels, n_experts, message):
    """Float labels, one or three axes, N not divisible by E, a layer with 3 + 1 neurons,
    a negative label, a label >= E: each a CacheError saying which, after the path of the
    labels file."""
    _write_labels(tmp_path, labels, n_experts)
    with pytest.raises(CacheError, match=message) as err:
        Partition.load(tmp_path)
    assert str(err.value).startswith(f"{tmp_path / 'partition.npz'}: ")


@pytest.mark.parametrize("labels, n_experts", [
    (np.zeros((2, 3), dtype=np.int32), 1),  # one expert of every neuron
    (np.zeros((2, 0), dtype=np.int32), 2),  # no neurons: 2 experts of 0
    (np.array([[1, 0], [0, 1]], dtype=np.uint8), 2),
])
def test_load_accepts_edge_balanced_labels(tmp_path, labels, n_experts):
    """E = 1 (all labels 0), empty layers, unsigned labels: every expert holds N/E."""
    _write_labels(tmp_path, labels, n_experts)
    assert Partition.load(tmp_path).labels.shape == labels.shape


# ---------------------------------------------------------------- clustering


def test_balanced_kmeans_trivial_cases():
    """One cluster: all zeros; one row per cluster: row i is cluster i; labels are int32."""
    x = np.random.default_rng(0).normal(size=(6, 3))
    one = balanced_kmeans(x, 1, seed=0)
    assert one.dtype == np.int32 and one.tolist() == [0] * 6
    each = balanced_kmeans(x, 6, seed=0)
    assert each.dtype == np.int32 and each.tolist() == [0, 1, 2, 3, 4, 5]


def test_balanced_kmeans_groups_directions_not_lengths():
    """Rows 0.001a, 0.9a, 0.001b, 0.9b with a, b at 60 degrees. Normalised, the two rows of a
    direction coincide (cost 0). Unnormalised (or scaled by anything but each row's own
    length) the two short rows would pair up (cost 0.405 < 0.808 for the direction pairs)."""
    a, b = np.array([1.0, 0.0]), np.array([0.5, math.sqrt(3) / 2])
    x = np.stack([0.001 * a, 0.9 * a, 0.001 * b, 0.9 * b]).astype(np.float32)
    for seed in range(3):
        lab = balanced_kmeans(x, 2, seed=seed)
        assert lab.dtype == np.int32
        assert lab[0] == lab[1] != lab[2] == lab[3]


def _inertia(x: np.ndarray, lab: np.ndarray) -> float:
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    return float(sum(((x[lab == c] - x[lab == c].mean(0)) ** 2).sum() for c in np.unique(lab)))


def test_balanced_kmeans_settings_are_used():
    """48 gaussian rows, 6 clusters of 8 (worked out once): the defaults are n_init=1,
    max_iter=30; 8 restarts find a lower cost than 1, a single iteration a higher one than
    30; a seed gives the same labels every time; sizes are exact."""
    x = np.random.default_rng(1).normal(size=(48, 6))
    base = balanced_kmeans(x, 6, seed=0)
    assert np.bincount(base).tolist() == [8] * 6
    assert np.array_equal(base, balanced_kmeans(x, 6, seed=0, n_init=1, max_iter=30))
    assert np.array_equal(base, balanced_kmeans(x, 6, seed=0))
    assert _inertia(x, balanced_kmeans(x, 6, seed=0, n_init=8)) < _inertia(x, base) - 1.0
    x0 = np.random.default_rng(0).normal(size=(48, 6))
    assert _inertia(x0, balanced_kmeans(x0, 6, seed=0, max_iter=1)) > \
        _inertia(x0, balanced_kmeans(x0, 6, seed=0)) + 0.5


def test_balanced_kmeans_hands_its_settings_to_k_means_constrained(monkeypatch):
    """6 rows into 3 clusters: KMeansConstrained gets 3 clusters of exactly 6 // 3 = 2 (ints),
    the seed as random_state, n_init=1 and max_iter=30 unless given, and fits the rows scaled
    to unit length in float64 ([3, 4] -> [0.6, 0.8]; a zero row stays zero); the labels it
    returns come back as int32."""
    import k_means_constrained

    made = []

    class Spy:
        def __init__(self, **kw):
            self.kw = kw
            made.append(self)

        def fit_predict(self, x):
            self.x = x
            return np.array([0, 0, 1, 1, 2, 2])

    monkeypatch.setattr(k_means_constrained, "KMeansConstrained", Spy)
    x = np.array([[3, 4], [0, 2], [0, 0], [-5, 0], [1, 1], [0, -0.5]], dtype=np.float32)
    lab = balanced_kmeans(x, 3, seed=7)
    assert lab.dtype == np.int32 and lab.tolist() == [0, 0, 1, 1, 2, 2]
    balanced_kmeans(x, 3, seed=2, n_init=5, max_iter=9)
    first, second = made
    assert first.kw == {"n_clusters": 3, "size_min": 2, "size_max": 2, "random_state": 7,
                        "n_init": 1, "max_iter": 30}
    assert type(first.kw["size_min"]) is int and type(first.kw["size_max"]) is int
    assert second.kw["random_state"] == 2 and second.kw["n_init"] == 5
    assert second.kw["max_iter"] == 9
    r = math.sqrt(0.5)
    assert first.x.dtype == np.float64
    np.testing.assert_allclose(first.x, [[0.6, 0.8], [0, 1], [0, 0], [-1, 0], [r, r], [0, -1]],
                               atol=1e-7)


def test_cluster_rows_passes_the_settings_on(monkeypatch):
    """kmeans_fast goes to balanced_kmeans_fast with the device; the others to
    balanced_kmeans; both with the rows, E, seed, n_init and max_iter as given."""
    calls = []

    def spy(name):
        def f(rows, k, **kw):
            calls.append((name, rows, k, kw))
            return np.zeros(len(rows), dtype=np.int32)
        return f

    monkeypatch.setattr(part_mod, "balanced_kmeans_fast", spy("fast"))
    monkeypatch.setattr(part_mod, "balanced_kmeans", spy("cmf"))
    rows = np.ones((4, 2))
    cluster_rows(rows, PartitionConfig(n_experts=2, method="kmeans_fast", n_init=3,
                                       max_iter=7), seed=9, device="meta")
    cluster_rows(rows, PartitionConfig(n_experts=2, method="coactivation", n_init=4,
                                       max_iter=5), seed=8)
    assert [(c[0], c[1] is rows, c[2], c[3]) for c in calls] == [
        ("fast", True, 2, {"seed": 9, "n_init": 3, "max_iter": 7, "device": "meta"}),
        ("cmf", True, 2, {"seed": 8, "n_init": 4, "max_iter": 5}),
    ]


def test_random_labels_are_balanced_int32_and_seeded():
    """12 items into 4 groups: every group holds 3; a seed repeats, another seed differs."""
    a = random_labels(12, 4, seed=1)
    assert a.dtype == np.int32 and np.bincount(a).tolist() == [3, 3, 3, 3]
    assert np.array_equal(a, random_labels(12, 4, seed=1))
    b = random_labels(1000, 10, seed=1)
    assert np.array_equal(b, random_labels(1000, 10, seed=1))
    assert not np.array_equal(b, random_labels(1000, 10, seed=2))


def test_default_workers(monkeypatch):
    """With 6 cores: k-means-constrained (kmeans, coactivation) on layers of at least 2^20
    values gets one process per core, at most one per layer (a one-layer model: 1);
    everything else 1."""
    monkeypatch.setattr(part_mod, "available_cores", lambda: 6)
    big, edge, small = (2048, 1024), (1024, 1024), (1023, 1024)
    assert _default_workers(PartitionConfig(n_experts=8), 10, *big) == 6
    assert _default_workers(PartitionConfig(n_experts=8), 4, *edge) == 4
    assert _default_workers(PartitionConfig(n_experts=8, method="coactivation"), 3, *big) == 3
    assert _default_workers(PartitionConfig(n_experts=8), 10, *small) == 1
    assert _default_workers(PartitionConfig(n_experts=8), 1, *big) == 1
    for method in ("kmeans_fast", "random", "neurons"):
        assert _default_workers(PartitionConfig(n_experts=8, method=method), 10, *big) == 1


def test_build_partition_of_a_one_layer_model():
    """One layer of 6 neurons, 3 experts of 2 by k-means: one row of balanced labels."""
    p = build_partition(_llama(n_layers=1), PartitionConfig(n_experts=3))
    assert p.labels.shape == (1, 6) and np.bincount(p.labels[0]).tolist() == [2, 2, 2]


def test_build_partition_sizes_the_worker_pool_by_layer_values(monkeypatch):
    """With 4 cores and 2 layers, k-means layers of N x d >= 2^20 values get 2 processes:
    N = 1024, d_model = 512 is 2^19 for "gate" or "up" (1 process) and 2^20 for "gate+up"
    (2); d_model = 384 with "gate+up" is 786432 (1). Co-activation features have
    min(N, 64) columns: N = 16200 gives 1036800 < 2^20 (1). A given count is kept."""
    seen = []

    def fake_map(jobs, n_layers, workers):
        seen.append((n_layers, workers))
        return [np.zeros(n, dtype=np.int32)] * n_layers

    monkeypatch.setattr(part_mod, "_map_layers", fake_map)
    monkeypatch.setattr(part_mod, "available_cores", lambda: 4)
    monkeypatch.setattr(part_mod, "coactivation_features",
                        lambda model, ids, am: [np.eye(2)] * 2)
    n = 1024
    wide = _llama(hidden=512, inter=n)
    for proj, want in (("gate", 1), ("up", 1), ("gate+up", 2)):
        build_partition(wide, PartitionConfig(n_experts=8, projection=proj))
        assert seen.pop() == (2, want), proj
    build_partition(wide, PartitionConfig(n_experts=8, projection="gate+up"), workers=3)
    assert seen.pop() == (2, 3)
    build_partition(_llama(hidden=384, inter=n), PartitionConfig(n_experts=8,
                                                                 projection="gate+up"))
    assert seen.pop() == (2, 1)
    n = 16200
    calib = (torch.ones(1, 2, dtype=torch.long), torch.ones(1, 2, dtype=torch.long))
    build_partition(_llama(hidden=4, inter=n), PartitionConfig(n_experts=8,
                                                              method="coactivation"),
                    calibration=calib)
    assert seen.pop() == (2, 1)


class _FakePool:
    """Stands in for ProcessPoolExecutor: records its settings, the jobs, and how many
    submitted layers are not collected yet; each job's labels are its seed."""

    made: ClassVar[list[_FakePool]] = []

    def __init__(self, max_workers, mp_context=None):
        self.max_workers = max_workers
        self.start_method = None if mp_context is None else mp_context.get_start_method()
        self.jobs, self.outstanding, self.peak = [], 0, 0
        _FakePool.made.append(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def submit(self, fn, job):
        pool = self

        class Done(Future):
            collected = False

            def result(self, timeout=None):
                if not self.collected:
                    self.collected = True
                    pool.outstanding -= 1
                return super().result(timeout)

        self.jobs.append(job)
        f = Done()
        f.set_result(np.full(3, job[2], dtype=np.int32))
        self.outstanding += 1
        self.peak = max(self.peak, self.outstanding)
        return f


def test_map_layers_in_process_or_in_a_spawn_pool(monkeypatch):
    """workers=1: every layer in this process, no pool. workers=2 with 3 cores: one spawn
    pool of 2 processes, each job with 3 // 2 = 1 thread, at most 2 layers submitted and
    not yet collected, results in layer order."""
    _FakePool.made = []
    monkeypatch.setattr(part_mod, "ProcessPoolExecutor", _FakePool)
    monkeypatch.setattr(part_mod, "available_cores", lambda: 3)
    monkeypatch.setattr(part_mod, "cluster_rows",
                        lambda rows, cfg, seed: np.full(3, seed, dtype=np.int32))
    cfg = PartitionConfig(n_experts=3)

    def jobs():
        return ((np.zeros((3, 2)), cfg, s) for s in range(5))

    serial = part_mod._map_layers(jobs(), 5, 1)
    assert [lab.tolist() for lab in serial] == [[s] * 3 for s in range(5)]
    assert _FakePool.made == []
    out = part_mod._map_layers(jobs(), 5, 2)
    assert [lab.tolist() for lab in out] == [[s] * 3 for s in range(5)]
    (pool,) = _FakePool.made
    assert pool.max_workers == 2 and pool.start_method == "spawn"
    assert [job[2:] for job in pool.jobs] == [(s, 1) for s in range(5)]
    assert pool.peak == 2 and pool.outstanding == 0


class _ThreadPool(ThreadPoolExecutor):
    """Stands in for ProcessPoolExecutor with threads (jobs really run, side by side)."""

    def __init__(self, max_workers, mp_context=None):
        super().__init__(max_workers)


def test_map_layers_refills_the_pool_as_each_layer_finishes(monkeypatch):
    """3 layers, 2 workers: layer 0 finishes only once layer 2 has started (it gives up after
    2 s), layer 1 at once. Refilling as soon as one layer finishes starts layer 2 while layer
    0 still runs, so layer 0 sees it start; waiting for both would not. Each layer's labels
    are what _cluster_job returned for it, in layer order."""
    started = threading.Event()
    seen = []

    def job(j):
        seed = j[2]
        if seed == 0:
            seen.append(started.wait(2.0))
        if seed == 2:
            started.set()
        return np.full(3, seed, dtype=np.int32)

    monkeypatch.setattr(part_mod, "_cluster_job", job)
    monkeypatch.setattr(part_mod, "ProcessPoolExecutor", _ThreadPool)
    monkeypatch.setattr(part_mod, "available_cores", lambda: 2)
    cfg = PartitionConfig(n_experts=3)
    out = part_mod._map_layers(((np.zeros((3, 2)), cfg, s) for s in range(3)), 3, 2)
    assert [lab.tolist() for lab in out] == [[0] * 3, [1] * 3, [2] * 3]
    assert seen == [True]


def test_indivisible_expert_count_lists_divisors():
    """2048 neurons: every listed candidate 8 ... 1024 divides it; 96: only 8, 16, 32."""
    model = _llama(n_layers=1, hidden=4, inter=2048)
    msg = "n_experts=3 does not divide the 2048 neurons per layer: use a divisor such as " \
          "[8, 16, 32, 64, 128, 256, 512, 1024]"
    with pytest.raises(ValueError, match=re.escape(msg)):
        build_partition(model, PartitionConfig(n_experts=3))
    with pytest.raises(ValueError, match=re.escape("96 neurons per layer: use a divisor such "
                                                   "as [8, 16, 32]")):
        build_partition(_llama(n_layers=1, hidden=4, inter=96), PartitionConfig(n_experts=5))


# ---------------------------------------------------------------- expert flags to neurons


def test_expand_to_neurons_by_hand():
    """flags [P=2, L=2, E=3], labels [L=2, N=4]: neuron n of layer l takes flag
    [p, l, labels[l, n]] (checked by a loop); labels may come as floats."""
    flags = np.arange(12).reshape(2, 2, 3) * 10
    labels = np.array([[2, 0, 0, 1], [1, 1, 2, 0]])
    want = np.array([[[flags[p, lay, labels[lay, n]] for n in range(4)] for lay in range(2)]
                     for p in range(2)])
    np.testing.assert_array_equal(expand_to_neurons(flags, labels), want)
    np.testing.assert_array_equal(expand_to_neurons(flags, labels.astype(float)), want)
    np.testing.assert_array_equal(expand_to_neurons(flags[0], labels), want[0])


# ---------------------------------------------------------------- scores and selection


def test_expert_scores_by_hand():
    """h [2, 2, 4], labels [1,0,0,1] (order [1,2,0,3]): expert 0 = |h1| + |h2|,
    expert 1 = |h0| + |h3|."""
    h = torch.tensor([[[1.0, -2.0, 3.0, -4.0], [0.5, 0.0, -1.0, 2.0]],
                      [[-1.0, 1.0, 1.0, 1.0], [10.0, 20.0, 30.0, 40.0]]])
    s = expert_scores(h, torch.tensor([1, 2, 0, 3]), 2)
    assert s.tolist() == [[[5.0, 5.0], [1.0, 2.5]], [[2.0, 2.0], [50.0, 50.0]]]
    assert expert_scores(h[0, 0], torch.tensor([1, 2, 0, 3]), 2).tolist() == [5.0, 5.0]


def test_zscore_by_hand():
    """Per layer over E (sample std, ddof 1): [0, .1, .2] -> [-1, 0, 1];
    [5, 5, 8] -> [-1, -1, 2]/sqrt3; a constant layer -> 0 (no division by zero)."""
    s = torch.tensor([[[0.0, 0.1, 0.2], [5.0, 5.0, 8.0]], [[4.0, 4.0, 4.0], [1.0, 2.0, 3.0]]],
                     dtype=torch.float64)
    r3 = 1 / math.sqrt(3)
    want = [[[-1.0, 0.0, 1.0], [-r3, -r3, 2 * r3]], [[0.0, 0.0, 0.0], [-1.0, 0.0, 1.0]]]
    np.testing.assert_allclose(zscore(s).numpy(), want, atol=1e-12)


def _scores() -> torch.Tensor:
    """[T=2, L=2, E=4]. Token 0: layer 0 [0, 1, 2, 10] (z of 10: 6.75/sqrt(62.75/3) = 1.476),
    layer 1 [0, 0, 0, 1] (z of 1: 1.5). Token 1: the layers swapped."""
    a = [0.0, 1.0, 2.0, 10.0]
    b = [0.0, 0.0, 0.0, 1.0]
    return torch.tensor([[a, b], [b, a]])


def test_cross_layer_selection_ranks_z_scores_of_all_layers():
    """share 1/8 of 8 experts = 1: the z-score 1.5 of layer 1's small score beats the 1.476
    of layer 0's 10; share 1/4 = 2: both."""
    s = _scores()
    one = select(s, SelectionRule("cross_layer", share=0.125))
    assert one.dtype == torch.bool and one.shape == (2, 2, 4)
    assert one.nonzero().tolist() == [[0, 1, 3], [1, 0, 3]]
    two = select(s, SelectionRule("cross_layer", share=0.25))
    assert two.nonzero().tolist() == [[0, 0, 3], [0, 1, 3], [1, 0, 3], [1, 1, 3]]


def test_per_layer_topk_selection():
    """share 1/4 of 4 = 1 per layer: the largest; share 1/2 = 2: the two largest (ties at 0
    in layer [0,0,0,1] resolved to exactly 2)."""
    s = _scores()
    one = select(s, SelectionRule("per_layer_topk", share=0.25))
    assert one.nonzero()[:, 2].tolist() == [3, 3, 3, 3]
    two = select(s, SelectionRule("per_layer_topk", share=0.5))
    assert two.sum(-1).tolist() == [[2, 2], [2, 2]]
    assert two[0, 0].tolist() == [False, False, True, True]
    assert two[0, 1, 3] and two[1, 0, 3]


def test_z_threshold_selection_is_strict():
    """[0, 1, 2] has z = [-1, 0, 1] exactly: threshold 1 selects nothing (z > 1 only),
    threshold 0 the last; [5, 5, 8] has z 2/sqrt3 = 1.155 > 1."""
    s = torch.tensor([[[0.0, 1.0, 2.0], [5.0, 5.0, 8.0]]])
    assert select(s, SelectionRule("z_threshold", z=1.0)).tolist() == \
        [[[False, False, False], [False, False, True]]]
    assert select(s, SelectionRule("z_threshold", z=0.0)).tolist() == \
        [[[False, False, True], [False, False, True]]]


def _check_topk(x: torch.Tensor, k: int, m: torch.Tensor) -> None:
    """Exactly k per row, and each selected entry >= each unselected one (a sort's answer)."""
    assert m.dtype == torch.bool and m.shape == x.shape
    xs, ms = x.float().reshape(-1, x.shape[-1]), m.reshape(-1, x.shape[-1])
    for row, sel in zip(xs.tolist(), ms.tolist()):
        assert sum(sel) == k
        kth = sorted(row, reverse=True)[k - 1]
        assert all(v >= kth for v, s in zip(row, sel) if s)
        assert all(v <= kth for v, s in zip(row, sel) if not s)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_topk_mask_against_a_sort(dtype):
    """[2, 3, 5] rows, distinct values and ties at the threshold (rows 1, 3, 5), k = 1, 2, 4:
    exactly the k largest; k >= n selects all."""
    x = torch.tensor([[[5.0, 1.0, 4.0, 2.0, 3.0], [3.0, 1.0, 1.0, 1.0, 0.0],
                       [0.0, -1.0, 2.0, 7.0, 6.0]],
                      [[1.0, 1.0, 1.0, 1.0, 1.0], [9.0, 8.0, 7.0, 6.0, 5.0],
                       [2.0, 2.0, 0.0, 2.0, 2.0]]], dtype=dtype)
    for k in (1, 2, 4):
        _check_topk(x, k, topk_mask(x, k))
    m = topk_mask(x, 2)
    assert m[0, 0].tolist() == [True, False, True, False, False]
    assert m[0, 2].tolist() == [False, False, False, True, True]
    assert m[1, 1].tolist() == [True, True, False, False, False]
    assert m[0, 1, 0] and m[0, 1, 1:4].sum() == 1
    full = topk_mask(x, 5)
    assert full.dtype == torch.bool and full.all() and full.shape == x.shape


def test_topk_mask_of_one_tied_row():
    """A single row with a tie at the threshold: still exactly k."""
    x = torch.tensor([[4.0, 1.0, 1.0, 1.0, 0.0]])
    m = topk_mask(x, 2)
    assert m.sum() == 2 and m[0, 0] and m[0, 4].item() is False


# ---------------------------------------------------------------- routing helpers


def test_neuron_mask_by_hand():
    """Neuron n takes its expert's flag: labels [2, 0, 1, 0, 2]."""
    labels = torch.tensor([2, 0, 1, 0, 2])
    assert neuron_mask(torch.tensor([True, False, True]), labels).tolist() == \
        [True, True, False, True, True]
    m = torch.tensor([[[1, 2, 3], [4, 5, 6]], [[7, 8, 9], [10, 11, 12]]])
    assert neuron_mask(m, labels).tolist() == [[[3, 1, 2, 1, 3], [6, 4, 5, 4, 6]],
                                               [[9, 7, 8, 7, 9], [12, 10, 11, 10, 12]]]


def test_contiguous_partition_by_hand():
    """E = 2 of N = 6 over 3 layers: every layer [0,0,0,1,1,1] (int32), settings kept."""
    p = _part([[1, 0, 1, 0, 1, 0], [0, 0, 1, 1, 1, 0], [1, 1, 1, 0, 0, 0]], 2)
    c = contiguous_partition(p)
    assert c.labels.dtype == np.int32
    assert c.labels.tolist() == [[0, 0, 0, 1, 1, 1]] * 3
    assert c.config == p.config and c.model == p.model
    assert c.weights_sha256 == p.weights_sha256


def test_permuted_copy_leaves_the_model_alone():
    """The copy's gate rows are the original's in expert order; the original is untouched."""
    model = _llama()
    before = [lay.mlp.gate_proj.weight.detach().clone() for lay in model.model.layers]
    p = _part([[1, 0, 1, 0, 1, 0], [0, 1, 1, 0, 0, 1]], 2)
    new = permuted_copy(model, p)
    for i, lay in enumerate(model.model.layers):
        assert torch.equal(lay.mlp.gate_proj.weight, before[i])
        assert torch.equal(new.model.layers[i].mlp.gate_proj.weight,
                           before[i][torch.as_tensor(p.order[i])])
