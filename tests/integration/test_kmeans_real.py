"""The default construction (balanced k-means on gate rows) on the real gemma-3-270m."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from babel.construct.partition import balanced_kmeans, layer_rows, random_labels
from babel.models.ffn import ffn_layers

N_EXPERTS = 256


def _cohesion(x: np.ndarray, labels: np.ndarray) -> float:
    """Mean within-expert cosine of rows, written out expert by expert (independent of babel)."""
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    sims = []
    for e in range(labels.max() + 1):
        g = x[labels == e]
        s = g @ g.T
        sims.append((s.sum() - np.trace(s)) / (len(g) * (len(g) - 1)))
    return float(np.mean(sims))


def _inertia(x: np.ndarray, labels: np.ndarray) -> float:
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    return float(sum(((x[labels == e] - x[labels == e].mean(0)) ** 2).sum()
                     for e in range(labels.max() + 1)))


@pytest.mark.parametrize("layer", [17])
def test_balanced_kmeans_on_gemma_layer(gemma, layer):
    model, _ = gemma
    rows = layer_rows(ffn_layers(model)[layer], "gate")
    assert rows.shape == (2048, 640)
    labels = balanced_kmeans(rows, N_EXPERTS, seed=0, max_iter=30)
    # exact balance: 8 neurons per expert, every expert used
    assert np.array_equal(np.bincount(labels, minlength=N_EXPERTS), np.full(N_EXPERTS, 8))
    rand = random_labels(2048, N_EXPERTS, seed=layer)
    # k-means groups neurons that read similar directions: tighter and more cohesive than chance
    assert _inertia(rows, labels) < 0.95 * _inertia(rows, rand)
    assert _cohesion(rows, labels) > 5 * max(_cohesion(rows, rand), 1e-3)
    # deterministic for a seed
    torch.manual_seed(123)
    np.random.seed(123)
    assert np.array_equal(balanced_kmeans(rows, N_EXPERTS, seed=0, max_iter=30), labels)
