"""Known answers for LAPE (language-specific neurons): a hand-built table of activation
probabilities whose threshold, candidates, entropies and selection are worked out by hand,
entropies against scipy, and the overlap table counted by hand."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy.stats import entropy as scipy_entropy

from babel.families.lape import expert_neurons, lape, overlap_table

LANGS = ["a", "b", "c"]


def _table() -> np.ndarray:
    """``[3 languages, 2 layers, 4 neurons]``; the 24 values, sorted:
    eight 0, 0.02, 0.05 x2, 0.1 x4, 0.2, 0.3, 0.6, 0.7 x3, 0.8 x2, 0.9."""
    p = np.zeros((3, 2, 4))
    p[:, 0, 0] = [0.9, 0.0, 0.0]  # one language: entropy 0
    p[:, 0, 1] = [0.8, 0.8, 0.0]  # two languages equally: ln 2
    p[:, 0, 2] = [0.7, 0.7, 0.7]  # every language: ln 3
    p[:, 0, 3] = [0.1, 0.1, 0.1]  # every language, rarely: ln 3, never above the threshold
    p[:, 1, 0] = [0.0, 0.0, 0.0]  # never active
    p[:, 1, 1] = [0.05, 0.6, 0.05]  # reaches the threshold (0.6) but does not exceed it
    p[:, 1, 2] = [0.2, 0.1, 0.3]
    p[:, 1, 3] = [0.0, 0.0, 0.02]
    return p


def test_threshold_candidates_and_selection_by_hand():
    p = _table()
    # k = round(0.75 * 24) = 18: the 18th smallest value is 0.6
    res = lape(p, LANGS, quantile=0.75, rate=0.25)
    assert res.threshold == pytest.approx(0.6)
    assert res.langs == ("a", "b", "c")
    # strictly above 0.6: only the three neurons of layer 0 with 0.9, 0.8 and 0.7
    assert res.candidates.tolist() == [[True, True, True, False], [False, False, False, False]]
    # rate 0.25 of all 8 neurons = 2: the two candidates of lowest entropy (0 and ln 2)
    assert res.selected.tolist() == [[True, True, False, False], [False] * 4]
    # a kept neuron belongs to each language above the threshold on it
    assert res.specific[0].tolist() == [[True, True, False, False], [False] * 4]
    assert res.specific[1].tolist() == [[False, True, False, False], [False] * 4]
    assert not res.specific[2].any()
    counts = res.counts()
    assert counts.language.tolist() == LANGS
    assert counts.neurons.tolist() == [2, 1, 0]
    np.testing.assert_allclose(counts.share, [2 / 8, 1 / 8, 0.0])
    layers = res.layer_counts()
    assert layers.index.name == "layer" and list(layers.columns) == LANGS
    assert layers.to_numpy().tolist() == [[2, 1, 0], [0, 0, 0]]


def test_entropy_over_languages_equals_scipy():
    p = _table()
    res = lape(p, LANGS, quantile=0.75)
    ref = scipy_entropy(p, axis=0)  # normalises over the languages, natural log
    never = p.sum(0) == 0  # scipy: 0/0 = nan; a never-active neuron has no spread: 0
    np.testing.assert_allclose(res.entropy[~never], ref[~never], atol=1e-12)
    assert res.entropy[never].tolist() == [0.0]
    assert res.entropy[0, 0] == 0.0 and res.entropy[0, 1] == pytest.approx(math.log(2))
    assert res.entropy[0, 2] == pytest.approx(math.log(3))


def test_how_many_are_kept():
    p = _table()
    # "all": round(0.34 * 8) = 3 -> every candidate; "candidates": round(0.34 * 3) = 1
    assert lape(p, LANGS, quantile=0.75, rate=0.34).selected.sum() == 3
    one = lape(p, LANGS, quantile=0.75, rate=0.34, rate_of="candidates")
    assert one.selected.tolist() == [[True, False, False, False], [False] * 4]
    # never more than the candidates, and never a non-candidate
    every = lape(p, LANGS, quantile=0.75, rate=1.0)
    assert (every.selected == every.candidates).all()
    # no candidate at all (threshold = the largest value): nothing kept
    top = lape(p, LANGS, quantile=1.0, rate=0.5)
    assert top.threshold == pytest.approx(0.9) and not top.candidates.any()
    assert not top.selected.any() and not top.specific.any()
    # rate 0: nothing kept although there are candidates
    none = lape(p, LANGS, quantile=0.75, rate=0.0)
    assert none.candidates.sum() == 3 and not none.selected.any()


def test_default_quantile_and_rate():
    """τ = the 95th percentile (k = round(0.95 n)); 1% of all neurons kept."""
    rng = np.random.default_rng(0)
    p = rng.permutation(np.arange(1, 601) / 1000).reshape(2, 3, 100)  # 600 distinct values
    res = lape(p, ["x", "y"])
    values = np.sort(p.ravel())
    assert res.threshold == values[570 - 1]  # round(0.95 * 600) = 570
    assert res.selected.sum() == 3  # round(0.01 * 300)
    assert res.candidates.sum() == (p > values[569]).any(0).sum()


@pytest.mark.parametrize("quantile, expected", [(0.0, 0.1), (0.4, 0.2), (0.5, 0.3),
                                                (0.99, 0.6), (1.0, 0.6), (2.0, 0.6)])
def test_threshold_is_the_kth_smallest(quantile, expected):
    # k = round(6 q), at least 1 and at most 6
    p = np.array([0.3, 0.6, 0.1, 0.5, 0.2, 0.4]).reshape(2, 1, 3)
    assert lape(p, ["x", "y"], quantile=quantile).threshold == pytest.approx(expected)


def test_lape_rejects_bad_input():
    p = _table()
    with pytest.raises(ValueError, match=r"probability must be \[n_lang=2, L, N\], got \(3, 2, 4\)"):
        lape(p, ["a", "b"])
    with pytest.raises(ValueError, match="probability must be"):
        lape(p[:, 0], LANGS)
    with pytest.raises(ValueError, match="rate_of must be 'all' or 'candidates', got 'some'"):
        lape(p, LANGS, rate_of="some")


def test_expert_neurons_expand_through_the_labels():
    labels = np.array([[2, 0, 1, 2], [1, 1, 0, 0]])  # [L=2, N=4], E = 3
    flags = np.zeros((2, 2, 3), dtype=int)  # int on purpose: returned as bool
    flags[0, 0, 2] = 1  # language 0, layer 0, expert 2 -> neurons 0 and 3
    flags[1, 1, 0] = 1  # language 1, layer 1, expert 0 -> neurons 2 and 3
    out = expert_neurons(flags, labels)
    assert out.dtype == bool
    assert out.tolist() == [[[True, False, False, True], [False] * 4],
                            [[False] * 4, [False, False, True, True]]]


def test_overlap_table_by_hand():
    n = 10  # neurons (L * N = 2 * 5)
    a = np.zeros((4, n), dtype=bool)
    b = np.zeros((4, n), dtype=bool)
    a[0, [0, 1, 2, 3]] = True
    b[0, [2, 3, 4, 5, 6, 7]] = True  # language w: 4 and 6 neurons, 2 shared, 8 in either
    b[1, 1] = True  # language x: no LAPE neuron
    # language y: nothing in either set
    a[3, 9] = b[3, 9] = True  # language z: the same single neuron
    t = overlap_table(a.reshape(4, 2, 5), b.reshape(4, 2, 5), list("wxyz")).set_index("language")
    assert t.lape.tolist() == [4, 0, 0, 1] and t.experts.tolist() == [6, 1, 0, 1]
    assert t.both.tolist() == [2, 0, 0, 1]
    np.testing.assert_allclose(t.jaccard, [2 / 8, 0.0, np.nan, 1.0])
    np.testing.assert_allclose(t.share_of_lape, [2 / 4, np.nan, np.nan, 1.0])
    np.testing.assert_allclose(t.share_of_experts, [2 / 6, 0.0, np.nan, 1.0])
    np.testing.assert_allclose(t.expected_both, [4 * 6 / n, 0.0, 0.0, 1 / n])
    np.testing.assert_allclose(t.enrichment, [2 / 2.4, np.nan, np.nan, 10.0])


def test_no_warnings_for_zero_probabilities():
    # q = 0 (log 0) and never-active neurons (0 / 0) are handled, not warned about
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = lape(_table(), LANGS, quantile=0.75, rate=0.25)
    assert res.entropy[1, 0] == 0.0 and res.entropy[0, 0] == 0.0


def test_never_active_neurons_have_zero_entropy_whatever_memory_held():
    p = _table()
    for _ in range(3):
        junk = np.full(p.shape, 0.7)  # a freed buffer of p's size, which numpy may reuse
        del junk
        assert lape(p, LANGS, quantile=0.75).entropy[1, 0] == 0.0


def test_integer_activation_flags_are_probabilities():
    flags = (_table() > 0.5).astype(int)  # 0/1 per language and neuron
    a, b = lape(flags, LANGS, quantile=0.5, rate=0.5), lape(flags.astype(float), LANGS,
                                                             quantile=0.5, rate=0.5)
    np.testing.assert_allclose(a.entropy, b.entropy)
    assert (a.selected == b.selected).all() and a.threshold == b.threshold


def test_selection_is_the_lowest_entropy_candidates_of_a_large_layer():
    """600 neurons, all candidates, entropies in a shuffled order: the kept ones are exactly
    the k of lowest entropy (checked against a full sort) for small and large k."""
    order = np.random.default_rng(2).permutation(600)
    q = 0.01 + 0.48 * order / 600  # share of language 0; entropy grows with order
    p = np.stack([q, 1 - q])[:, None, :]  # [2, 1, 600]; every neuron has a p >= 0.51
    for k in (1, 7, 482):
        res = lape(p, ["x", "y"], quantile=0.4, rate=k / 600)
        assert res.candidates.all()
        expected = np.zeros(600, dtype=bool)
        expected[np.argsort(res.entropy[0])[:k]] = True
        assert (res.selected[0] == expected).all(), k
        assert (np.argsort(order)[:k] == np.argsort(res.entropy[0])[:k]).all()
    # the threshold is the k-th smallest of 1200 values: k = 1 is the smallest
    assert lape(p, ["x", "y"], quantile=0.0).threshold == p.min()


def test_non_candidates_are_never_kept():
    # the first neurons have the lowest entropy (0) but never exceed the threshold
    p = np.zeros((2, 1, 8))
    p[0, 0, :4] = 0.01  # one language, rarely: entropy 0, not a candidate
    p[:, 0, 4:] = [[0.9, 0.6, 0.8, 0.7], [0.1, 0.6, 0.2, 0.3]]
    res = lape(p, ["x", "y"], quantile=0.5, rate=0.25)  # τ = 8th smallest of 16 = 0.01
    assert res.threshold == pytest.approx(0.01)
    assert res.candidates[0].tolist() == [False] * 4 + [True] * 4
    # k = 2: the two candidates of lowest entropy, 0.9/0.1 and 0.8/0.2
    assert res.selected[0].tolist() == [False] * 4 + [True, False, True, False]


def test_overlap_table_reads_any_nonzero_as_a_flag():
    flags = np.zeros((2, 6))
    flags[0, :3] = 1.0  # float flags (e.g. from a mean over seeds)
    other = np.zeros((2, 6))
    other[0, 2:4] = 2.0
    t = overlap_table(flags.reshape(2, 2, 3), other.reshape(2, 2, 3), ["u", "v"])
    assert t.both.tolist() == [1, 0] and t.lape.tolist() == [3, 0]
    assert t.experts.tolist() == [2, 0]
    assert t.jaccard[0] == pytest.approx(1 / 4)
