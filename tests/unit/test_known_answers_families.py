"""Known answers for the families statistics: hand-computed tables, scipy/sklearn references,
and planted structure (bootstrap over chunks, clusters of languages sharing experts)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from babel.families.bootstrap import bootstrap_profiles
from babel.families.distances import mantel, partial_mantel, select_languages_matrix
from babel.families.similarity import similarity
from babel.families.stats import agreement, cluster_tree, cut_tree, group_means, separation
from babel.profile.profiler import Profile


def _profile(lang: str, chunk_counts, chunk_tokens) -> Profile:
    c = np.asarray(chunk_counts, dtype=np.int32)
    n_layers = c.shape[1]
    return Profile(lang, c, np.asarray(chunk_tokens, dtype=np.int64),
                   np.zeros((n_layers, 4), np.int64), np.zeros((n_layers, 4)))


def _same_partition(a, b) -> bool:
    """Two clusterings are equal up to renaming the clusters."""
    a, b = np.asarray(a), np.asarray(b)
    return all(len(set(b[a == k])) == 1 for k in set(a)) and len(set(a)) == len(set(b))


# --- bootstrap over chunks -----------------------------------------------------------------

def test_bootstrap_of_identical_chunks_has_zero_width():
    rng = np.random.default_rng(0)
    profiles = {}
    for lang in ("a", "b", "c", "d"):
        chunk = rng.integers(0, 30, (2, 6))
        profiles[lang] = _profile(lang, np.repeat(chunk[None], 7, 0), np.full(7, 40))
    boot = bootstrap_profiles(profiles, n_bootstrap=50, seed=3)
    # every resample has the same frequency as the full data: no sampling noise at all
    lo, hi = boot.interval()
    np.testing.assert_allclose(hi - lo, 0.0, atol=1e-12)
    np.testing.assert_allclose(boot.samples, np.broadcast_to(boot.point, boot.samples.shape),
                               atol=1e-12)
    point, low, high = boot.stat_interval(lambda s: separation(s, ["x", "x", "y", "y"]))
    assert low == pytest.approx(point, abs=1e-12) and high == pytest.approx(point, abs=1e-12)


def test_bootstrap_two_chunk_language_takes_three_known_values():
    """Language a: chunk u (along a's vector) or chunk w (orthogonal), equal token counts.

    A resample holds uu, uw or ww (probabilities 1/4, 1/2, 1/4), whose cosine with b is
    1, 1/sqrt(2) and 0; the full data (u + w) gives 1/sqrt(2).
    """
    u = np.array([[10, 0, 0, 0]])
    w = np.array([[0, 10, 0, 0]])
    a = _profile("a", np.stack([u, w]), [20, 20])
    b = _profile("b", np.stack([u, u, u]), [20, 20, 20])
    boot = bootstrap_profiles({"a": a, "b": b}, metric="cosine", n_bootstrap=400, seed=0)
    s = boot.samples[:, 0, 1]
    values = np.array([0.0, 1 / math.sqrt(2), 1.0])
    nearest = np.abs(s[:, None] - values[None]).argmin(1)
    np.testing.assert_allclose(s, values[nearest], atol=1e-12)
    share = np.bincount(nearest, minlength=3) / 400
    np.testing.assert_allclose(share, [0.25, 0.5, 0.25], atol=0.08)  # > 3 binomial sd
    point, low, high = boot.stat_interval(lambda m: m[0, 1])
    assert point == pytest.approx(1 / math.sqrt(2))
    assert (low, high) == (pytest.approx(0.0, abs=1e-12), pytest.approx(1.0))


@pytest.mark.parametrize("metric", ["pearson", "cosine"])
def test_bootstrap_interval_contains_the_full_data_statistic(metric):
    # (not "centered": its resamples are attenuated by the noise summed over all L·E
    # experts, and the percentile interval then sits below the point: see BootstrapResult.bias)
    rng = np.random.default_rng(1)
    groups = np.array([0, 0, 1, 1, 2, 2])
    base = rng.uniform(0.1, 0.5, (3, 16))
    rate = np.clip(base[None] + rng.normal(0, 0.08, (3, 3, 16))[groups], 0.01, 0.99)
    profiles = {f"l{i}": _profile(f"l{i}", rng.binomial(200, rate[i], (60, 3, 16)),
                                  np.full(60, 200)) for i in range(6)}
    boot = bootstrap_profiles(profiles, n_bootstrap=300, seed=2, metric=metric)
    point, low, high = boot.stat_interval(lambda m: separation(m, groups))
    assert low < point < high
    assert high - low > 1e-4  # sampling noise is there
    assert point > 0  # the planted pairs are more similar than the rest


# --- hand-computed tables ------------------------------------------------------------------

def test_group_means_by_hand():
    # families IE, IE, IE, AA, IE, AA; scripts Latn, Latn, Cyrl, Arab, Arab, Hebr
    langs = ["en", "fr", "ru", "ar", "fa", "he"]
    sim = np.zeros((6, 6))
    for i in range(6):
        for j in range(i + 1, 6):
            sim[i, j] = sim[j, i] = 0.1 * i + 0.01 * j
    t = group_means(sim, langs).set_index(["same_family", "same_script"])
    expected = {
        # en-ar .03, en-he .05, fr-ar .13, fr-he .15, ru-ar .23, ru-he .25, fa-he .45
        (False, False): (1.29 / 7, 7),
        (False, True): (0.34, 1),  # ar-fa
        # en-ru .02, en-fa .04, fr-ru .12, fr-fa .14, ru-fa .24, ar-he .35
        (True, False): (0.91 / 6, 6),
        (True, True): (0.01, 1),  # en-fr
    }
    assert sorted(t.index) == sorted(expected)
    for key, (mean, count) in expected.items():
        assert t.loc[key, "mean"] == pytest.approx(mean), key
        assert t.loc[key, "count"] == count, key


def test_select_languages_matrix_by_hand():
    d = np.array([[0, 1, 2, 3], [10, 11, 12, 13], [20, 21, 22, 23], [30, 31, 32, 33]])
    sub = select_languages_matrix(d, ["a", "b", "c", "d"], ["c", "a"])
    assert sub.tolist() == [[22, 20], [2, 0]]
    assert select_languages_matrix(d, list("abcd"), ["d"]).tolist() == [[33]]
    with pytest.raises(ValueError):
        select_languages_matrix(d, list("abcd"), ["x"])


# --- clusters and their agreement with labels ----------------------------------------------

def _shared_expert_languages(seed: int = 0) -> np.ndarray:
    """6 languages, 3 pairs; each pair shares a planted set of 6 frequent experts."""
    rng = np.random.default_rng(seed)
    freq = rng.uniform(0.15, 0.25, (6, 2, 24))
    for pair in range(3):
        experts = rng.choice(48, 6, replace=False)
        for lang in (2 * pair, 2 * pair + 1):
            freq[lang].reshape(-1)[experts] = 0.9
    return freq


def test_languages_sharing_experts_cluster_together():
    sim = similarity(_shared_expert_languages())
    clusters = cut_tree(cluster_tree(sim), 3)
    assert _same_partition(clusters, [0, 0, 1, 1, 2, 2])
    pairs = agreement(sim, ["p", "p", "q", "q", "r", "r"], n_permutations=3000, seed=0)
    assert pairs["ari"] == pytest.approx(1.0) and pairs["nmi"] == pytest.approx(1.0)
    # a shuffle reproduces the grouping with probability 1 / (6! / (2!^3 3!)) = 1/15
    assert pairs["ari_p"] == pytest.approx(1 / 15, abs=0.02)


def test_agreement_ari_and_nmi_by_hand_and_sklearn():
    sim = similarity(_shared_expert_languages())
    halves = [0, 0, 0, 1, 1, 1]  # cut at 2 groups: the pairs {01}, {23}, {45} can't match
    tree = cluster_tree(sim)
    clusters = cut_tree(tree, 2)
    ag = agreement(sim, halves, n_permutations=10, tree=tree)
    assert ag["n_groups"] == 2
    assert ag["ari"] == pytest.approx(adjusted_rand_score(halves, clusters), abs=1e-12)
    assert ag["nmi"] == pytest.approx(normalized_mutual_info_score(halves, clusters), abs=1e-12)
    # and by hand for the three pairs against the two halves (contingency 2,0 / 1,1 / 0,2):
    # sum C(n_ij, 2) = 2, rows 3 x C(2,2) = 3, columns 2 x C(3,2) = 6, C(6,2) = 15
    three = cut_tree(tree, 3)
    ari = (2 - 3 * 6 / 15) / ((3 + 6) / 2 - 3 * 6 / 15)
    assert adjusted_rand_score(halves, three) == pytest.approx(ari)  # the reference itself
    from babel.families.stats import ari_batch

    assert ari_batch(three, np.array([halves]))[0] == pytest.approx(ari)
    # NMI (arithmetic mean): MI = 2/3 ln 2, H = ln 3 and ln 2
    nmi = (2 / 3 * math.log(2)) / ((math.log(3) + math.log(2)) / 2)
    assert normalized_mutual_info_score(halves, three) == pytest.approx(nmi)


def test_cluster_tree_is_average_linkage_by_hand():
    # d(a,b) = .2, d(c,d) = .4, d(a,c) = .6, d(a,d) = 1, d(b,c) = d(b,d) = .8:
    # UPGMA merges ab at .2, cd at .4, then ab-cd at mean(.6, 1, .8, .8) = .8
    # (single linkage would say .6, complete 1.0)
    d = np.array([[0, .2, .6, 1.], [.2, 0, .8, .8], [.6, .8, 0, .4], [1., .8, .4, 0]])
    tree = cluster_tree(1.0 - d)
    np.testing.assert_allclose(tree[:, 2], [0.2, 0.4, 0.8])
    assert _same_partition(cut_tree(tree, 2), [0, 0, 1, 1])


def test_agreement_p_value_equals_a_shuffle_loop():
    sim = similarity(_shared_expert_languages())
    halves = np.array([0, 0, 0, 1, 1, 1])
    tree = cluster_tree(sim)
    clusters = cut_tree(tree, 2)
    ag = agreement(sim, halves, n_permutations=200, seed=7, tree=tree)
    perms = np.random.default_rng(7).permuted(np.tile(np.arange(6), (200, 1)), axis=1)
    hits = sum(adjusted_rand_score(halves[p], clusters) >= ag["ari"] - 1e-12 for p in perms)
    assert ag["ari_p"] == pytest.approx((1 + hits) / 201, abs=1e-12)
    assert 0.05 < ag["ari_p"] < 1


# --- Mantel tests against scipy and an explicit permutation loop ---------------------------

def _dist(points: np.ndarray) -> np.ndarray:
    return np.linalg.norm(points[:, None] - points[None], axis=-1)


def _upper(d):
    return d[np.triu_indices(len(d), 1)]


def _loop_p(x, y, r, corr, n_permutations, seed):
    """One permutation at a time, the same permutations as the implementation's generator."""
    n = len(x)
    perms = np.random.default_rng(seed).permuted(np.tile(np.arange(n), (n_permutations, 1)),
                                                 axis=1)
    hits = 0
    for perm in perms:
        hits += corr(_upper(x[np.ix_(perm, perm)]), _upper(y)) >= r - 1e-12
    return (1 + hits) / (1 + n_permutations)


@pytest.mark.parametrize("method", ["spearman", "pearson"])
def test_mantel_equals_scipy_and_a_permutation_loop(method):
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(9, 2))
    x = _dist(pts)
    noise = rng.uniform(0, 2, (9, 9))
    y = 0.2 * x + noise + noise.T  # weakly related: p well above its floor
    np.fill_diagonal(y, 0.0)
    corr = {"spearman": lambda a, b: spearmanr(a, b)[0],
            "pearson": lambda a, b: pearsonr(a, b)[0]}[method]
    m = mantel(x, y, method=method, n_permutations=300, seed=4)
    assert m.r == pytest.approx(corr(_upper(x), _upper(y)), abs=1e-10)
    assert m.p_value > 10 / 301  # many shuffles reach r: the count is exercised
    assert m.p_value == pytest.approx(_loop_p(x, y, m.r, corr, 300, 4), abs=1e-12)
    # a perfectly (monotonically) related pair: no shuffle reaches r = 1 -> p = 1 / (1 + P)
    perfect = mantel(x, x ** 2 + 1, n_permutations=300, seed=4)
    assert perfect.r == pytest.approx(1.0) and perfect.p_value == pytest.approx(1 / 301)


@pytest.mark.parametrize("method", ["spearman", "pearson"])
def test_partial_mantel_equals_the_partial_correlation_formula(method):
    rng = np.random.default_rng(2)
    z = _dist(rng.normal(size=(8, 2)))
    x = z + _dist(rng.normal(size=(8, 2)))
    y = z + _dist(rng.normal(size=(8, 2)))  # x and y share only z
    corr = {"spearman": lambda a, b: spearmanr(a, b)[0],
            "pearson": lambda a, b: pearsonr(a, b)[0]}[method]
    rxy, rxz, ryz = (corr(_upper(a), _upper(b)) for a, b in ((x, y), (x, z), (y, z)))
    ref = (rxy - rxz * ryz) / math.sqrt((1 - rxz ** 2) * (1 - ryz ** 2))
    m = partial_mantel(x, y, z, method=method, n_permutations=200, seed=1)
    assert m.r == pytest.approx(ref, abs=1e-10)
    assert m.p_value > 10 / 201

    def partial(a, b):
        ra, rz = corr(a, b), corr(a, _upper(z))
        return (ra - rz * ryz) / math.sqrt((1 - rz ** 2) * (1 - ryz ** 2))

    assert m.p_value == pytest.approx(_loop_p(x, y, m.r, partial, 200, 1), abs=1e-12)
