"""The fast balanced k-means (auction assignment) and layers built in parallel processes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score

from babel.construct.balanced import auction, balanced_kmeans_fast, inertia, round_to_sizes
from babel.construct.partition import balanced_kmeans, build_partition, cohesion
from babel.core.config import PartitionConfig


def planted(n_clusters: int, size: int, dim: int, noise: float, seed: int = 0):
    """Rows around ``n_clusters`` random directions, ``size`` each, shuffled; and the truth."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((n_clusters, dim))
    truth = rng.permutation(np.repeat(np.arange(n_clusters), size))
    x = centers[truth] / np.linalg.norm(centers[truth], axis=1, keepdims=True)
    return (x + noise * rng.standard_normal(x.shape)).astype(np.float32), truth


@pytest.mark.parametrize(("n", "e"), [(64, 8), (96, 32), (120, 8), (172, 4), (256, 128),
                                      (64, 1), (64, 64)])
def test_exact_equal_sizes(n, e):
    x = np.random.default_rng(n + e).standard_normal((n, 16)).astype(np.float32)
    labels = balanced_kmeans_fast(x, e, seed=0, device="cpu")
    assert labels.dtype == np.int32 and labels.shape == (n,)
    assert (np.bincount(labels, minlength=e) == n // e).all()


def test_indivisible_is_refused():
    with pytest.raises(ValueError, match="do not divide"):
        balanced_kmeans_fast(np.ones((10, 3), np.float32), 4, seed=0)


def test_deterministic_under_a_seed():
    x, _ = planted(16, 8, 24, noise=0.8, seed=3)
    a = balanced_kmeans_fast(x, 16, seed=5, device="cpu")
    b = balanced_kmeans_fast(x, 16, seed=5, device="cpu")
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, balanced_kmeans_fast(x, 16, seed=6, device="cpu"))


@pytest.mark.parametrize(("e", "size", "dim"), [(8, 8, 16), (16, 12, 32), (32, 5, 64)])
def test_planted_equal_clusters_are_recovered(e, size, dim):
    x, truth = planted(e, size, dim, noise=0.05, seed=e)
    fast = balanced_kmeans_fast(x, e, seed=0, device="cpu")
    assert adjusted_rand_score(truth, fast) == 1.0
    assert adjusted_rand_score(truth, balanced_kmeans(x, e, seed=0)) == 1.0


def test_cohesion_beats_random_and_matches_min_cost_flow():
    """Overlapping clusters (no exact answer): inertia (= lower within-expert cosine) well
    below a random partition's and within 2% of k-means-constrained's, over a few seeds."""
    x, _ = planted(16, 16, 32, noise=0.3, seed=1)
    rand = np.random.default_rng(0).permutation(256) % 16
    for seed in range(3):
        fast = inertia(x, balanced_kmeans_fast(x, 16, seed=seed, device="cpu"), 16)
        kmc = inertia(x, balanced_kmeans(x, 16, seed=seed), 16)
        assert fast < 0.85 * inertia(x, rand, 16)
        assert fast <= 1.02 * kmc


def test_partition_method_on_a_model(tiny_llama):
    cfg = PartitionConfig(n_experts=8, method="kmeans_fast")
    assert cfg.key.startswith("kmeans_fast-")
    part = build_partition(tiny_llama, cfg)
    assert (np.stack([np.bincount(r, minlength=8) for r in part.labels]) == 8).all()
    rand = build_partition(tiny_llama, PartitionConfig(n_experts=8, method="random"))
    kmc = build_partition(tiny_llama, PartitionConfig(n_experts=8, method="kmeans"))
    fast_c, kmc_c = cohesion(tiny_llama, part), cohesion(tiny_llama, kmc)
    assert (fast_c > cohesion(tiny_llama, rand)).all()
    assert fast_c.mean() >= kmc_c.mean() - 0.02


def test_unknown_method_names_the_choices():
    with pytest.raises(ValueError, match="kmeans_fast"):
        PartitionConfig(method="kmeans_quick")


def test_auction_is_optimal_within_tolerance():
    """Against the exact optimum (Hungarian on the clusters' seats)."""
    n, e = 60, 6
    score = torch.as_tensor(np.random.default_rng(2).standard_normal((n, e)))
    eps = 1e-4
    labels, _ = auction(score, n // e, eps=eps, eps_start=0.1)
    assert (torch.bincount(labels, minlength=e) == n // e).all()
    got = float(score[torch.arange(n), labels].sum())
    seats = np.repeat(score.numpy(), n // e, axis=1)  # column k is a seat of cluster k // size
    r, c = linear_sum_assignment(seats, maximize=True)
    best = float(seats[r, c].sum())
    assert best - n * eps <= got <= best + 1e-9


def test_auction_guard_still_fills_every_cluster():
    score = torch.as_tensor(np.random.default_rng(4).standard_normal((40, 4)))
    labels, _ = auction(score, 10, eps=1e-6, eps_start=1.0, max_rounds=3)
    assert (torch.bincount(labels, minlength=4) == 10).all()


def test_round_to_sizes_uneven_room():
    score = torch.as_tensor(np.random.default_rng(5).standard_normal((10, 3)))
    labels = round_to_sizes(score, torch.tensor([5, 3, 2]))
    assert torch.bincount(labels, minlength=3).tolist() == [5, 3, 2]
    with pytest.raises(ValueError, match="seats"):
        round_to_sizes(score, torch.tensor([5, 3, 3]))


@pytest.mark.parametrize("method", ["kmeans", "kmeans_fast"])
def test_parallel_layers_equal_serial(tiny_llama, method):
    cfg = PartitionConfig(n_experts=8, method=method, seed=2)
    serial = build_partition(tiny_llama, cfg, workers=1)
    parallel = build_partition(tiny_llama, cfg, workers=2)
    np.testing.assert_array_equal(parallel.labels, serial.labels)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")
def test_gpu_equal_sizes_and_planted_recovery():
    x, truth = planted(16, 12, 32, noise=0.05, seed=16)
    labels = balanced_kmeans_fast(x, 16, seed=0, device="cuda")
    assert adjusted_rand_score(truth, labels) == 1.0
    assert (np.bincount(labels, minlength=16) == 12).all()
