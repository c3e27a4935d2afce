"""Bootstrap intervals: known rises, coverage that narrows with more items."""

from __future__ import annotations

import numpy as np
import pytest

from babel.prune.intervals import per_item, ratio_interval, rise_draws, rise_interval


def test_per_item_sums_tokens_into_their_items():
    assert per_item(np.array([1.0, 2.0, 3.0, 4.0]), np.array([0, 0, 2, 2]), 3).tolist() == [
        3.0, 0.0, 7.0]


def test_a_constant_shift_gives_its_exact_rise_and_a_point_interval():
    tokens = np.array([10, 20, 30.0])
    dense = 2.0 * tokens
    pruned = dense + np.log(1.5) * tokens  # +log 1.5 nats per token: ppl x1.5 everywhere
    iv = rise_interval(dense, pruned, tokens)
    assert iv.value == pytest.approx(0.5)
    assert iv.low == pytest.approx(0.5) and iv.high == pytest.approx(0.5)


def test_interval_covers_the_truth_and_narrows_with_more_items():
    rng = np.random.default_rng(0)

    def sample(n):
        tokens = rng.integers(20, 60, n).astype(float)
        dense = tokens * 2.0
        pruned = dense + tokens * rng.normal(0.1, 0.2, n)  # true rise exp(0.1) - 1
        return rise_interval(dense, pruned, tokens, seed=1)

    small, large = sample(20), sample(400)
    truth = np.expm1(0.1)
    assert large.low < truth < large.high
    assert large.half_width < small.half_width / 2


def test_ratio_interval_of_paired_timings():
    base = np.array([2.0, 2.1, 1.9, 2.0, 2.05])
    iv = ratio_interval(base, base / 1.25)
    assert iv.value == pytest.approx(1.25) and iv.low == pytest.approx(1.25)
    with pytest.raises(ValueError, match="paired"):
        ratio_interval(base, base[:3])


def test_several_masks_average_their_rises_and_resample_items_together():
    tokens = np.array([10.0, 10.0, 10.0, 10.0])
    dense = np.zeros(4)
    seeds = np.stack([np.log(1.2) * tokens, np.log(1.6) * tokens])  # rises 0.2 and 0.6
    value, draws = rise_draws(dense, seeds, tokens, n_bootstrap=200)
    assert value == pytest.approx(0.4)
    assert np.allclose(draws, 0.4)  # every item shifts alike: no sampling noise
    with pytest.raises(ValueError, match="n_items"):
        rise_draws(dense, seeds[:, :3], tokens)
