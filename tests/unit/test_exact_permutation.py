"""Exact permutation tests when the arrangements are few."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from babel.families.stats import all_permutations, permutation_test


def test_all_permutations_within_strata():
    perms = all_permutations(5, np.array([0, 0, 1, 1, 1]))
    assert perms.shape == (2 * 6, 5)
    assert len({tuple(p) for p in perms}) == 12
    assert set(map(tuple, perms[:, :2])) == {(0, 1), (1, 0)}  # stratum 0 stays in place
    assert all_permutations(9, limit=1000) is None  # 9! > 1000


def _planted(labels):
    codes = np.unique(labels, return_inverse=True)[1]
    sim = np.where(codes[:, None] == codes[None, :], 0.9, 0.1)
    sim = sim + np.random.default_rng(0).normal(0, 0.01, sim.shape)
    return (sim + sim.T) / 2


def _brute_force_p(sim, labels):
    """Share of distinct groupings (label assignments) at least as separated as the observed."""
    def sep(lab):
        same = np.equal.outer(lab, lab)
        iu = np.triu_indices(len(lab), 1)
        return sim[iu][same[iu]].mean() - sim[iu][~same[iu]].mean()

    obs = sep(np.asarray(labels))
    values = [sep(np.asarray(labels)[list(p)]) for p in itertools.permutations(range(len(labels)))]
    return float(np.mean(np.asarray(values) >= obs - 1e-12))


def test_exact_p_equals_brute_force_and_reaches_the_floor():
    labels = ["a", "a", "a", "b", "b", "b"]
    sim = _planted(labels)
    res = permutation_test(sim, labels, n_permutations=1000)
    assert res.n_permutations == math.factorial(6)  # enumerated, not sampled
    assert res.p_value == pytest.approx(_brute_force_p(sim, labels))
    assert res.p_value == pytest.approx(1 / 10) == pytest.approx(res.p_floor)  # 6!/(3!3!2!)
    sampled = permutation_test(sim, labels, n_permutations=500)  # 720 > 500: random shuffles
    assert sampled.n_permutations == 500
