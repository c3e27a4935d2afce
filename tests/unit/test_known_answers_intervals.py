"""Known answers for the bootstrap intervals of babel.prune.intervals: two-item corpora whose
resamples take three values with probabilities 1/4, 1/2, 1/4, quantiles of known draws."""
from __future__ import annotations

import math

import numpy as np
import pytest

from babel.prune.intervals import (
    Interval,
    interval,
    per_item,
    ratio_interval,
    rise_draws,
    rise_interval,
)


def _nearest(x: np.ndarray, values) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    return np.abs(np.asarray(x)[:, None] - values[None]).argmin(1)


def test_two_items_three_resamples_by_hand():
    """Item 0: 10 tokens at +ln 3 nats each; item 1: 30 tokens unchanged.

    Resamples hold {0,0}, {0,1} or {1,1} (probabilities 1/4, 1/2, 1/4): rises 3 - 1 = 2,
    3^(10/40) - 1 and 0; the full data is the middle one.
    """
    tokens = np.array([10, 30])
    dense = np.array([25.0, 40.0])
    pruned = dense + np.array([10 * math.log(3), 0.0])
    value, draws = rise_draws(dense, pruned, tokens)
    mid = 3 ** 0.25 - 1
    assert value == pytest.approx(mid)
    assert draws.shape == (1000,)  # the default number of resamples
    which = _nearest(draws, [0.0, mid, 2.0])
    np.testing.assert_allclose(draws, np.array([0.0, mid, 2.0])[which], atol=1e-12)
    np.testing.assert_allclose(np.bincount(which, minlength=3) / 1000, [0.25, 0.5, 0.25],
                               atol=0.05)
    iv = rise_interval(dense, pruned, tokens)  # 95%: from the lowest to the highest value
    assert (iv.value, iv.low, iv.high) == pytest.approx((mid, 0.0, 2.0))
    narrow = rise_interval(dense, pruned, tokens, level=0.4)  # 30th-70th percentile: middle
    assert (narrow.low, narrow.high) == pytest.approx((mid, mid))


def test_defaults_are_1000_resamples_of_seed_0():
    rng = np.random.default_rng(2)
    tokens = rng.integers(5, 20, 12)
    dense = rng.uniform(1, 3, 12) * tokens
    pruned = dense + rng.normal(0.2, 0.3, 12) * tokens
    value, draws = rise_draws(dense, pruned, tokens)
    v0, d0 = rise_draws(dense, pruned, tokens, n_bootstrap=1000, seed=0)
    assert value == v0 and np.array_equal(draws, d0)
    assert not np.array_equal(draws, rise_draws(dense, pruned, tokens, seed=1)[1])
    iv = rise_interval(dense, pruned, tokens)
    assert (iv.low, iv.high) == pytest.approx(tuple(np.quantile(d0, [0.025, 0.975])))
    other = rise_interval(dense, pruned, tokens, n_bootstrap=50, seed=4)
    _, d4 = rise_draws(dense, pruned, tokens, n_bootstrap=50, seed=4)
    assert (other.low, other.high) == pytest.approx(tuple(np.quantile(d4, [0.025, 0.975])))


def test_items_without_tokens_add_nothing():
    # an empty item in the corpus (0 tokens, 0 NLL): resamples of only it rise by 0
    tokens = np.array([0, 10])
    dense = np.array([0.0, 5.0])
    pruned = np.array([0.0, 5.0 + 10 * math.log(2)])
    value, draws = rise_draws(dense, pruned, tokens, n_bootstrap=400)
    assert value == pytest.approx(1.0)
    assert set(np.round(draws, 12)) == {0.0, 1.0}


def test_rise_draws_rejects_inconsistent_input():
    ok = np.ones(3)
    with pytest.raises(ValueError, match=r"^dense_nll, pruned_nll and tokens must be "
                                         r"\[n_items\] \(pruned_nll may be "
                                         r"\[n_masks, n_items\]\) with tokens > 0$"):
        rise_draws(ok, np.ones(4), ok)
    with pytest.raises(ValueError, match="tokens > 0"):
        rise_draws(ok, ok, np.ones(2))
    with pytest.raises(ValueError, match="tokens > 0"):
        rise_draws(ok, ok, np.zeros(3))  # no tokens at all
    rise_draws(ok, ok, np.array([0, 0, 1]), n_bootstrap=3)  # one token is enough


def test_interval_quantiles_and_accessors():
    draws = np.arange(101.0)  # the q-quantile is 100 q
    iv = interval(7.0, draws)
    assert (iv.value, iv.low, iv.high) == pytest.approx((7.0, 2.5, 97.5))
    assert iv.half_width == pytest.approx(47.5)
    assert iv.as_dict() == pytest.approx({"value": 7.0, "low": 2.5, "high": 97.5})
    assert interval(1, draws, level=0.5).as_dict() == pytest.approx(
        {"value": 1.0, "low": 25.0, "high": 75.0})
    assert Interval(0.5, 0.25, 1.0).half_width == pytest.approx(0.375)


def test_ratio_interval_two_repeats_by_hand():
    """Timings (1, 2) against (0.5, 0.5): resampled medians of base 1, 1.5 or 2 (1/4, 1/2,
    1/4), so speedups 2, 3 or 4."""
    base, other = np.array([1.0, 2.0]), np.array([0.5, 0.5])
    iv = ratio_interval(base, other)
    assert (iv.value, iv.low, iv.high) == pytest.approx((3.0, 2.0, 4.0))
    assert ratio_interval(base, other, level=0.4).as_dict() == pytest.approx(
        {"value": 3.0, "low": 3.0, "high": 3.0})
    with pytest.raises(ValueError, match=r"^base and other must be paired timings of the "
                                         r"same length >= 2$"):
        ratio_interval(base[:1], other[:1])
    ratio_interval(base, base, n_bootstrap=5)  # two rounds are enough


def test_ratio_interval_defaults_are_2000_resamples_of_seed_0():
    rng = np.random.default_rng(1)
    base = rng.uniform(1.0, 2.0, 40)  # many distinct medians: the interval moves with the draws
    other = base / rng.uniform(1.1, 1.6, 40)
    assert ratio_interval(base, other) == ratio_interval(base, other, n_bootstrap=2000, seed=0)
    assert ratio_interval(base, other) != ratio_interval(base, other, seed=1)
    assert ratio_interval(base, other) != ratio_interval(base, other, n_bootstrap=1999)


def test_per_item_with_empty_trailing_items():
    out = per_item([0.5, 1.5, 2.0], [1, 1, 0], 4)
    assert out.tolist() == [2.0, 2.0, 0.0, 0.0]


def test_a_one_item_corpus_resamples_to_itself_exactly():
    # every resample holds the one item: each draw is the full-data rise, to the last bit
    value, draws = rise_draws(np.array([3.0]), np.array([13.0]), np.array([1]), n_bootstrap=20)
    assert value == pytest.approx(math.expm1(10.0))
    np.testing.assert_allclose(draws, value, rtol=1e-14)


def test_several_masks_by_hand():
    # two masks on two items: rises e^(3/4) - 1 and e^(1/4) - 1 (not e^(4/4) - 1 pooled)
    tokens = np.array([2, 2])
    dense = np.zeros(2)
    pruned = np.array([[1.0, 2.0], [0.5, 0.5]])
    value, _ = rise_draws(dense, pruned, tokens, n_bootstrap=4)
    assert value == pytest.approx((math.expm1(0.75) + math.expm1(0.25)) / 2)


def test_single_precision_timings_are_compared_in_double_precision():
    # medians of float32 timings, taken in float32, would round differently
    # the middle two of base, 1.5436... and 1.8158..., average differently in float32
    base = np.array([1.543624997138977, 1.935072422027588, 1.8158535957336426,
                     1.0027384757995605], dtype=np.float32)
    other = np.array([1.1847156286239624, 0.819291353225708, 1.3274592161178589,
                      1.1767003536224365], dtype=np.float32)  # likewise
    for t in (base, other):
        assert np.median(t) != np.median(t.astype(float))  # the premise
    assert ratio_interval(base, other) == ratio_interval(base.astype(float), other.astype(float))
    assert ratio_interval(base, other.astype(float)) == ratio_interval(base.astype(float), other)


def test_single_precision_draws_and_tokens_are_read_in_double_precision():
    # interpolating between 0.1 and 3.7 (or 3.7 and 11.3) in float32 rounds the difference
    draws = np.array([0.1, 3.7, 11.3], dtype=np.float32)
    assert interval(0.0, draws) == interval(0.0, draws.astype(float))
    # 2^24 + 2 tokens: a float32 sum would drop the last ones
    tokens = np.array([2 ** 24, 1, 1], dtype=np.float32)
    dense = np.zeros(3)
    pruned = np.array([0.0, 3.0, 3.0])
    value, _ = rise_draws(dense, pruned, tokens, n_bootstrap=2)
    assert value == math.expm1(6.0 / (2 ** 24 + 2))
