"""Known answers for the chunk bootstrap of language similarities (babel.families.bootstrap):
hand-made resamples for the result's intervals and bias, point estimates equal to the pooled
frequencies, a one-chunk language that never varies, and batching that changes nothing."""
from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics.pairwise import cosine_similarity

from babel.families.bootstrap import BootstrapResult, bootstrap_similarity
from babel.families.similarity import similarity


def test_result_interval_bias_and_statistic_by_hand():
    point = np.array([[1.0, 0.5], [0.5, 1.0]])
    values = np.arange(101.0) / 100  # off-diagonal of the 101 resamples: 0, 0.01, ..., 1
    samples = np.repeat(np.eye(2)[None], 101, axis=0)
    samples[:, 0, 1] = samples[:, 1, 0] = values
    res = BootstrapResult(point, samples)  # level 0.95 by default
    lo, hi = res.interval()
    assert lo[0, 1] == pytest.approx(0.025) and hi[0, 1] == pytest.approx(0.975)
    assert lo[0, 0] == hi[0, 0] == 1.0
    np.testing.assert_allclose(res.bias, [[0.0, 0.0], [0.0, 0.0]], atol=1e-12)  # mean 0.5
    p, low, high = res.stat_interval(lambda s: 2 * s[0, 1])
    assert (p, low, high) == pytest.approx((1.0, 0.05, 1.95))
    narrow = BootstrapResult(point, samples, level=0.5)
    assert narrow.interval()[0][0, 1] == pytest.approx(0.25)
    assert narrow.stat_interval(lambda s: s[0, 1])[1:] == pytest.approx((0.25, 0.75))
    shifted = BootstrapResult(point, samples + 0.1)
    np.testing.assert_allclose(shifted.bias, np.full((2, 2), 0.1), atol=1e-12)


def _chunks(seed: int = 0, n_lang: int = 4):
    rng = np.random.default_rng(seed)
    counts = [rng.integers(0, 20, (int(rng.integers(3, 7)), 2, 5)) for _ in range(n_lang)]
    tokens = [rng.integers(20, 40, len(c)) for c in counts]
    return counts, tokens


def test_point_is_the_similarity_of_pooled_frequencies():
    counts, tokens = _chunks()
    pooled = np.stack([c.sum(0) / t.sum() for c, t in zip(counts, tokens)])  # [4, 2, 5]
    res = bootstrap_similarity(counts, tokens, n_bootstrap=3)
    x = pooled.reshape(4, -1)
    np.testing.assert_allclose(res.point, cosine_similarity(x - x.mean(0)), atol=1e-12)
    for metric in ("cosine", "pearson", "jaccard"):
        r = bootstrap_similarity(counts, tokens, metric=metric, top_share=0.3, n_bootstrap=3)
        np.testing.assert_allclose(r.point, similarity(pooled, metric=metric, top_share=0.3),
                                   atol=1e-12, err_msg=metric)
    # jaccard's default top share: 10% of 10 experts = the top 1
    j = bootstrap_similarity(counts, tokens, metric="jaccard", n_bootstrap=3)
    np.testing.assert_allclose(j.point, similarity(pooled, metric="jaccard", top_share=0.1))


def test_defaults_200_resamples_level_95_and_batches_change_nothing():
    counts, tokens = _chunks(1)
    res = bootstrap_similarity(counts, tokens)
    assert res.samples.shape == (200, 4, 4) and res.level == 0.95
    same = bootstrap_similarity(counts, tokens, n_bootstrap=200, seed=0, batch=7)
    np.testing.assert_allclose(res.samples, same.samples, atol=1e-12)
    one = bootstrap_similarity(counts, tokens, n_bootstrap=200, seed=0, batch=1000)
    np.testing.assert_allclose(res.samples, one.samples, atol=1e-12)
    assert not np.allclose(res.samples, bootstrap_similarity(counts, tokens, seed=1).samples)
    assert bootstrap_similarity(counts, tokens, n_bootstrap=5, level=0.5).level == 0.5


def test_each_resample_is_a_pooled_resample_of_whole_chunks():
    """One-chunk languages never vary; a two-chunk language takes three values."""
    counts = [np.array([[[4, 0, 0]]]), np.array([[[0, 6, 0]]]),
              np.array([[[5, 0, 0]], [[0, 0, 5]]])]  # [C, L=1, E=3]
    tokens = [np.array([10]), np.array([10]), np.array([10, 10])]
    res = bootstrap_similarity(counts, tokens, metric="cosine", n_bootstrap=300, seed=2)
    np.testing.assert_allclose(res.samples[:, 0, 1], 0.0, atol=1e-12)  # orthogonal, fixed
    # language 2 is chunk u (e0), w (e2) or both: cosine with language 0 is 1, 0 or 1/sqrt 2
    s = res.samples[:, 0, 2]
    values = np.array([0.0, 1 / np.sqrt(2), 1.0])
    which = np.abs(s[:, None] - values[None]).argmin(1)
    np.testing.assert_allclose(s, values[which], atol=1e-12)
    np.testing.assert_allclose(np.bincount(which, minlength=3) / 300, [0.25, 0.5, 0.25],
                               atol=0.09)


def test_no_tokens_divides_by_one():
    # chunks without counted tokens: the frequency is the count itself (no 0/0)
    counts = [np.array([[[1, 0]]]), np.array([[[0, 2]]])]
    tokens = [np.array([0]), np.array([0])]
    res = bootstrap_similarity(counts, tokens, metric="cosine", n_bootstrap=2)
    np.testing.assert_allclose(res.point, np.eye(2), atol=1e-12)
    assert np.isfinite(res.samples).all()


def test_bad_input_is_refused():
    counts, tokens = _chunks()
    with pytest.raises(ValueError, match="same >= 2 languages"):
        bootstrap_similarity(counts[:2], tokens[:3])
    with pytest.raises(ValueError, match="same >= 2 languages"):
        bootstrap_similarity(counts[:1], tokens[:1])
    bootstrap_similarity(counts[:2], tokens[:2], n_bootstrap=2)  # two languages suffice
    with pytest.raises(ValueError, match="a language has no chunks"):
        bootstrap_similarity([counts[0], np.zeros((0, 2, 5))], [tokens[0], np.zeros(0)])
    with pytest.raises(ValueError, match="metric must be one of"):
        bootstrap_similarity(counts, tokens, metric="euclid")


def test_refusals_say_exactly_what_is_wrong():
    """The two refusals carry their whole message, nothing before or after it."""
    counts, tokens = _chunks()
    with pytest.raises(ValueError) as err:
        bootstrap_similarity(counts[:1], tokens[:1])
    assert str(err.value) == "need chunk counts and chunk tokens for the same >= 2 languages"
    with pytest.raises(ValueError) as err:
        bootstrap_similarity([counts[0], np.zeros((0, 2, 5))], [tokens[0], np.zeros(0)])
    assert str(err.value) == "a language has no chunks: profile it with some tokens first"


def test_frequencies_divide_by_at_least_one_token_with_centred_similarity():
    """One chunk per language, so every resample equals the full data. Frequencies are
    counts / max(tokens, 1): A (1, 0, 0) over 1 token, B (0, 2, 0) over 2, C (0, 0, 3) over 0
    give (1, 0, 0), (0, 1, 0), (0, 0, 3). Centred over the languages (mean (1/3, 1/3, 1)):
    A = (2, -1, -3) / 3, B = (-1, 2, -3) / 3, C = (-1, -1, 6) / 3, so cos(A, B) = 5 / 14 and
    cos(A, C) = cos(B, C) = -19 / sqrt(14 * 38). (Centring is not scale free: dividing by 2
    instead of 1 would move them.)"""
    counts = [np.array([[[1, 0, 0]]]), np.array([[[0, 2, 0]]]), np.array([[[0, 0, 3]]])]
    tokens = [np.array([1]), np.array([2]), np.array([0])]
    ac = -19 / np.sqrt(14 * 38)
    expected = np.array([[1, 5 / 14, ac], [5 / 14, 1, ac], [ac, ac, 1]])
    res = bootstrap_similarity(counts, tokens, n_bootstrap=4, seed=1)  # default: centered
    np.testing.assert_allclose(res.point, expected, atol=1e-12)
    np.testing.assert_allclose(res.samples, np.repeat(expected[None], 4, axis=0), atol=1e-12)


def test_single_precision_inputs_are_computed_in_double():
    """float32 counts and tokens give the float64 answer: 1/3-like frequencies are not
    rounded to single precision, and 2**24 + 1 tokens (not a float32) are summed exactly."""
    counts, tokens = _chunks(3, n_lang=3)
    tokens[0] = tokens[0].copy()
    tokens[0][0] = 2 ** 24  # language 0: 2**24 + more tokens, its frequencies tiny
    counts[1] = counts[1] * 7 + 1  # odd counts over odd token totals: no exact float32
    tokens[1] = tokens[1] * 3 + 1
    ref = bootstrap_similarity(counts, tokens, n_bootstrap=6, seed=5)
    single = bootstrap_similarity([c.astype(np.float32) for c in counts],
                                  [t.astype(np.float32) for t in tokens], n_bootstrap=6, seed=5)
    np.testing.assert_allclose(single.point, ref.point, rtol=0, atol=1e-13)
    np.testing.assert_allclose(single.samples, ref.samples, rtol=0, atol=1e-13)
    # the float32 answer is measurably different, so the comparison above has teeth
    pooled32 = np.stack([c.astype(np.float32).sum(0) / np.float32(t.astype(np.float32).sum())
                         for c, t in zip(counts, tokens)]).astype(np.float64)
    assert not np.allclose(similarity(pooled32), ref.point, rtol=0, atol=1e-13)


def test_single_precision_counts_are_pooled_in_double():
    """Language A's two chunks count (2**24, 0, 0) and (1, 2**24, 0), each exact in float32;
    pooled they are (2**24 + 1, 2**24, 0), which float32 would round to (2**24, 2**24, 0).
    Against B = (1, 0, 0) the cosine is (N + 1) / sqrt((N + 1)**2 + N**2) with N = 2**24,
    about 2e-8 above the float32 answer 1 / sqrt 2."""
    n = 2.0 ** 24
    counts = [np.array([[[n, 0, 0]], [[1, n, 0]]], dtype=np.float32),
              np.array([[[1, 0, 0]]], dtype=np.float32)]
    tokens = [np.array([1, 1], dtype=np.float32), np.array([1], dtype=np.float32)]
    res = bootstrap_similarity(counts, tokens, metric="cosine", n_bootstrap=2)
    expected = (n + 1) / math.sqrt((n + 1) ** 2 + n ** 2)
    assert expected - 1 / math.sqrt(2) > 1e-8
    assert res.point[0, 1] == pytest.approx(expected, rel=0, abs=1e-14)
