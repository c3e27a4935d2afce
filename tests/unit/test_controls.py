"""Frequency-matched random controls: same frequencies, other experts."""

from __future__ import annotations

import numpy as np
import pytest

from babel.prune.controls import matched_random_experts


def test_matched_experts_have_the_chosen_frequencies():
    rng = np.random.default_rng(1)
    freq = rng.gamma(2.0, 0.1, size=(6, 64))
    chosen = np.zeros_like(freq, dtype=bool)
    top = np.argsort(-freq.ravel())[:40:2]  # every other of the 40 most active experts
    chosen.ravel()[top] = True
    got = matched_random_experts(freq, chosen, seed=0)
    assert got.sum() == chosen.sum() and not (got & chosen).any()
    # uniform random experts are far less active; matched ones are as active as the chosen
    uniform = freq.ravel()[rng.choice(np.flatnonzero(~chosen.ravel()), 20, replace=False)]
    assert abs(freq[got].mean() - freq[chosen].mean()) < 0.15 * freq[chosen].mean()
    assert freq[chosen].mean() - uniform.mean() > 3 * abs(freq[got].mean() - freq[chosen].mean())
    # deterministic for a seed, different for another
    assert np.array_equal(got, matched_random_experts(freq, chosen, seed=0))
    assert not np.array_equal(got, matched_random_experts(freq, chosen, seed=1))


def test_matching_too_many_is_refused():
    freq = np.ones((1, 4))
    with pytest.raises(ValueError, match="choose fewer"):
        matched_random_experts(freq, np.array([[True, True, True, False]]), seed=0)
