"""Known answers for the label statistics (babel.families.stats): separations and permutation
tests worked out by hand on four languages, per-layer results equal to an explicit loop over
the same shuffles, exact enumeration, arrangement counts, and the label and control tables."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score
from sklearn.metrics.pairwise import cosine_similarity

from babel.families.bootstrap import BootstrapResult
from babel.families.similarity import language_labels
from babel.families.stats import (
    agreement,
    ari_batch,
    cluster_tree,
    control_table,
    cut_tree,
    label_table,
    layer_separation,
    n_arrangements,
    permutation_test,
    separation,
)

# two pairs: 0-1 and 2-3 similar (1), everything else 0
PAIRS = np.array([[1.0, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]])


# --- one separation, one permutation test, by hand -----------------------------------------

def test_separation_by_hand():
    # same-label pairs 0-1 (1) and 2-3 (1); different-label pairs: four at 0
    assert separation(PAIRS, ["a", "a", "b", "b"]) == pytest.approx(1.0)
    # labels across the pairs: within 0-2 and 1-3 (0, 0), between 0-1, 0-3, 1-2, 2-3 (1,0,0,1)
    assert separation(PAIRS, ["a", "b", "a", "b"]) == pytest.approx(-0.5)
    sim = np.array([[1.0, 0.9, 0.2], [0.9, 1.0, 0.4], [0.2, 0.4, 1.0]])
    assert separation(sim, [1, 1, 2]) == pytest.approx(0.9 - 0.3)


def test_exact_permutation_test_by_hand():
    """4! = 24 shuffles, three groupings (01|23, 02|13, 03|12) eight times each.

    Their separations are 1, -0.5, -0.5: the exact p is 1/3, the null mean 0, its
    standard deviation sqrt(1/2).
    """
    t = permutation_test(PAIRS, ["a", "a", "b", "b"], n_permutations=24)
    assert t.n_permutations == 24  # every permutation enumerated, none drawn
    assert t.statistic == pytest.approx(1.0)
    assert t.p_value == pytest.approx(1 / 3)
    assert t.null_mean == pytest.approx(0.0, abs=1e-12)
    assert t.null_std == pytest.approx(math.sqrt(0.5))
    assert t.z == pytest.approx(math.sqrt(2))
    assert (t.n_within, t.n_between) == (2, 4)
    assert t.n_arrangements == pytest.approx(3)  # 4! / (2! 2! 2!)
    assert t.p_floor == pytest.approx(1 / 3)
    # the least extreme grouping: every shuffle reaches it
    assert permutation_test(PAIRS, ["a", "b", "a", "b"], n_permutations=24).p_value == 1.0


def test_random_shuffles_when_enumeration_exceeds_the_budget():
    """23 < 4! shuffles: p = (1 + #{null >= observed}) / (1 + 23), the shuffles of the seed."""
    labels = np.array([0, 0, 1, 1])
    t = permutation_test(PAIRS, labels, n_permutations=23, seed=5)
    perms = np.random.default_rng(5).permuted(np.tile(np.arange(4), (23, 1)), axis=1)
    null = np.array([separation(PAIRS, labels[p]) for p in perms])
    assert t.n_permutations == 23
    assert t.p_value == pytest.approx((1 + (null >= 1.0 - 1e-12).sum()) / 24)
    assert t.null_mean == pytest.approx(null.mean()) and t.null_std == pytest.approx(null.std())
    assert t.p_floor == pytest.approx(1 / 3)  # the arrangements, not 1 / 24


def test_default_is_1000_shuffles_of_seed_0():
    rng = np.random.default_rng(3)
    sim = cosine_similarity(rng.normal(size=(8, 5)))
    labels = np.array([0, 0, 0, 1, 1, 1, 2, 2])
    t = permutation_test(sim, labels)
    perms = np.random.default_rng(0).permuted(np.tile(np.arange(8), (1000, 1)), axis=1)
    null = np.array([separation(sim, labels[p]) for p in perms])
    assert t.n_permutations == 1000
    assert t.p_value == pytest.approx((1 + (null >= t.statistic - 1e-12).sum()) / 1001)
    assert t.null_mean == pytest.approx(null.mean())


def test_stratified_test_by_hand():
    """Strata {0,1,2} and {3,4,5}: only the 6 within-stratum pairs count and labels move only
    inside a stratum (3! x 3! = 36 permutations, enumerated)."""
    sim = np.zeros((6, 6))
    sim[0, 1] = sim[1, 0] = 0.8  # within stratum x, same label
    sim[3, 4] = sim[4, 3] = 0.6  # within stratum y, same label
    sim[0, 3] = sim[3, 0] = 5.0  # across strata: never counted
    labels = ["a", "a", "b", "a", "a", "b"]
    t = permutation_test(sim, labels, strata=list("xxxyyy"), n_permutations=36)
    # within: 0-1 (0.8), 3-4 (0.6); between: 0-2, 1-2, 3-5, 4-5 (all 0)
    assert (t.n_within, t.n_between) == (2, 4)
    assert t.statistic == pytest.approx(0.7)
    # per stratum, the odd one out is 2 (resp. 5) with probability 1/3 each: the observed
    # statistic needs both, p = 1/9; arrangements: 3 per stratum
    assert t.p_value == pytest.approx(1 / 9)
    assert t.n_arrangements == pytest.approx(9) and t.p_floor == pytest.approx(1 / 9)


def test_stratified_random_shuffles_stay_inside_their_stratum():
    """Strata of 4 + 4 (labels a a b b in each): 4! x 4! = 576 permutations > 300 drawn.

    Shuffling within the strata reaches the planted grouping with probability 1/3 x 1/3;
    shuffles across strata would rarely put two a's and two b's in each.
    """
    lab = list("aabbaabb")
    sim = np.equal.outer(lab, lab).astype(float)
    t = permutation_test(sim, lab, strata=list("xxxxyyyy"), n_permutations=300, seed=2)
    assert t.n_permutations == 300
    assert t.p_value == pytest.approx(1 / 9, abs=0.04)
    hits = t.p_value * 301 - 1  # p = (1 + hits) / (1 + P): hits is a whole number >= 0
    assert hits == pytest.approx(round(hits), abs=1e-9) and round(hits) >= 0
    assert t.n_arrangements == pytest.approx(9)


def test_three_strata_each_shuffled_on_its_own():
    """Strata x, y, z with labels a a a b each and one similarity per stratum (0.9, 0.1, 0.5).

    Shuffling inside a stratum keeps 3 same-label and 3 different-label pairs in each, so
    every shuffle gives the observed statistic 0: the null has no spread. Shuffles that moved
    labels between strata would change the pair counts per stratum, and the statistic.
    """
    lab = list("aaab") * 3
    strata = np.repeat(["x", "y", "z"], 4)
    sim = np.zeros((12, 12))
    for s, v in zip("xyz", (0.9, 0.1, 0.5)):
        idx = np.flatnonzero(strata == s)
        sim[np.ix_(idx, idx)] = v
    t = permutation_test(sim, lab, strata=strata, n_permutations=300, seed=0)  # < 24^3
    assert t.n_permutations == 300
    assert t.statistic == pytest.approx(0.0, abs=1e-12)
    assert t.null_std == pytest.approx(0.0, abs=1e-12) and t.p_value == 1.0


def test_enumeration_beyond_the_default_limit_when_the_budget_allows():
    """Strata 8 + 2: 8! x 2! = 80,640 permutations (> 50,000), all enumerated when
    n_permutations allows: the exact p of the planted grouping is 1 / (8! / (4! 4! 2!)) = 1/35."""
    lab = list("aaaabbbb") + ["c", "d"]
    sim = np.equal.outer(lab, lab).astype(float)
    t = permutation_test(sim, lab, strata=["x"] * 8 + ["y"] * 2, n_permutations=80_640)
    assert t.p_value == pytest.approx(1 / 35, abs=1e-12)
    assert t.n_arrangements == pytest.approx(35)


def test_no_between_pairs_gives_nan_quietly():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an undefined mean is NaN, not a RuntimeWarning
        t = permutation_test(np.eye(3), ["a", "a", "a"], n_permutations=10)
        assert math.isnan(separation(np.eye(3), ["a", "b", "c"]))  # no within pairs
    assert math.isnan(t.statistic) and math.isnan(t.p_value) and math.isnan(t.z)
    assert math.isnan(t.null_mean) and math.isnan(t.null_std)
    assert (t.n_within, t.n_between, t.n_permutations) == (3, 0, 6)  # 3! enumerated
    assert t.n_arrangements == 1 and t.p_floor == 1.0  # one grouping only


def test_zero_spread_has_no_z():
    t = permutation_test(np.ones((4, 4)), ["a", "a", "b", "b"], n_permutations=24)
    assert t.statistic == 0.0 and t.null_std == 0.0 and math.isnan(t.z)
    assert t.p_value == 1.0


def test_permutation_budget_must_be_positive():
    with pytest.raises(ValueError, match="n_permutations must be >= 1, got 0"):
        permutation_test(PAIRS, [0, 0, 1, 1], n_permutations=0)
    assert permutation_test(PAIRS, [0, 0, 1, 1], n_permutations=1).n_permutations == 1


# --- per layer: an explicit loop over the same shuffles ------------------------------------

def _loop(freq, labels, n_permutations, seed):
    """Per layer: centred cosine (sklearn), separation of the labels and of every shuffle."""
    labels = np.asarray(labels)
    n = len(labels)
    perms = np.random.default_rng(seed).permuted(np.tile(np.arange(n), (n_permutations, 1)),
                                                 axis=1)
    out = []
    for layer in range(freq.shape[1]):
        x = freq[:, layer]
        sim = cosine_similarity(x - x.mean(0))
        iu = np.triu_indices(n, 1)

        def sep(lab, sim=sim, iu=iu):
            same = (lab[:, None] == lab[None, :])[iu]
            return sim[iu][same].mean() - sim[iu][~same].mean()

        obs = sep(labels)
        null = np.array([sep(labels[p]) for p in perms])
        out.append({"separation": obs, "null_mean": null.mean(),
                    "z": (obs - null.mean()) / null.std(),
                    "p": (1 + (null >= obs - 1e-12).sum()) / (1 + n_permutations)})
    return out


def _planted_layers(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``[6, 3, 10]``: layer 0 carries the groups strongly, layer 1 weakly, layer 2 not."""
    rng = np.random.default_rng(seed)
    groups = np.array([0, 0, 1, 1, 2, 2])
    freq = rng.uniform(0.2, 0.4, (6, 3, 10))
    freq[:, 0] += rng.normal(0, 0.2, (3, 10))[groups]
    freq[:, 1] += rng.normal(0, 0.05, (3, 10))[groups]
    return freq, groups


def test_layer_separation_equals_a_loop_with_defaults():
    freq, groups = _planted_layers()
    df = layer_separation(freq, {"family": groups})  # centred, 1000 shuffles, seed 0
    assert list(df.columns) == ["layer", "labelling", "separation", "null_mean", "z", "p"]
    assert df.layer.tolist() == [0, 1, 2] and set(df.labelling) == {"family"}
    ref = _loop(freq, groups, 1000, 0)
    for row, expected in zip(df.to_dict("records"), ref):
        got = {k: row[k] for k in expected}
        assert got == pytest.approx(expected, rel=1e-9, abs=1e-12)
    # the planted pairs: layers 0 and 1 at the smallest p three pairs allow (1 grouping of
    # 6! / (2!^3 3!) = 15, so ~1/15), layer 2 (no groups) far from it
    assert df.p[0] == df.p[1] == pytest.approx(1 / 15, abs=0.02)
    assert df.z[0] > 2.5 and df.z[1] > 2.5 and df.p[2] > 0.5


def test_layer_separation_several_labellings_and_seed():
    freq, groups = _planted_layers(1)
    other = np.array([0, 1, 0, 1, 0, 1])
    df = layer_separation(freq, {"groups": groups, "other": other}, n_permutations=60,
                          seed=9)
    assert df.index.tolist() == list(range(6))  # one table, numbered through
    assert df.labelling.tolist() == ["groups"] * 3 + ["other"] * 3
    assert df.layer.tolist() == [0, 1, 2, 0, 1, 2]
    for name, lab, part in (("groups", groups, df[:3]), ("other", other, df[3:])):
        ref = _loop(freq, lab, 60, 9)
        for row, expected in zip(part.to_dict("records"), ref):
            assert {k: row[k] for k in expected} == pytest.approx(expected, rel=1e-9), name


def test_layer_separation_jaccard_default_top_share():
    # top 10% of 20 experts = the top 2; languages of a group share them
    freq = np.full((4, 1, 20), 0.1)
    freq[[0, 1], 0, :2] = 0.9
    freq[[2, 3], 0, 2:4] = 0.9
    df = layer_separation(freq, {"g": [0, 0, 1, 1]}, metric="jaccard", n_permutations=24)
    # within pairs: Jaccard 1 (identical top sets); between: 0
    assert df.separation[0] == pytest.approx(1.0)
    # top_share reaches the metric: languages 0 and 1 rank experts 0-4 in different orders
    # (top 1: experts 0 and 1, Jaccard 0; top 5: the same five, Jaccard 1)
    ranked = np.zeros((4, 1, 10))
    ranked[0, 0] = [0.9, 0.8, 0.7, 0.6, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0]
    ranked[1, 0] = [0.8, 0.9, 0.7, 0.6, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0]
    ranked[2:, 0] = ranked[:2, 0, ::-1]
    top1 = layer_separation(ranked, {"g": [0, 0, 1, 1]}, metric="jaccard", n_permutations=24)
    top5 = layer_separation(ranked, {"g": [0, 0, 1, 1]}, metric="jaccard", top_share=0.5,
                            n_permutations=24)
    assert top1.separation[0] == pytest.approx(0.0) and top5.separation[0] == pytest.approx(1.0)


def test_a_null_without_spread_has_no_z_and_no_warning():
    # one shuffle: the null has a single value (sd 0) that differs from the observed one
    freq, groups = _planted_layers()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        df = layer_separation(freq, {"g": groups}, n_permutations=1, seed=1)
    assert (df.separation != df.null_mean).all() and df.z.isna().all()


def test_a_layer_without_spread_has_no_z():
    freq, groups = _planted_layers()
    freq[:, 2] = 0.3  # every language identical: all centred similarities 0
    df = layer_separation(freq, {"g": groups}, n_permutations=50)
    assert df.separation[2] == 0.0 and df.null_mean[2] == 0.0
    assert math.isnan(df.z[2]) and df.p[2] == 1.0  # every shuffle ties
    assert np.isfinite(df.z[:2]).all()


# --- the label table: each column is the statistic it names --------------------------------

# families IE x6, AA x2; scripts Latn x2, Cyrl, Deva, Arab x3, Hebr; branches: 6
TABLE_LANGS = ["en", "fr", "ru", "hi", "ur", "fa", "ar", "he"]


def _table_sim(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return cosine_similarity(rng.normal(size=(8, 6)))


def _planted_table_sim() -> np.ndarray:
    """Family and script planted weakly: clusterings that agree partly with the labels, so the
    ARI p-values are informative (neither 1 nor at their floor)."""
    fam = np.array([0, 0, 0, 0, 0, 0, 1, 1])
    script = np.array([0, 0, 1, 2, 3, 3, 3, 4])
    rng = np.random.default_rng(4)
    x = rng.normal(size=(8, 6)) + 0.8 * np.eye(6)[fam] + 0.8 * np.eye(6)[script + 1]
    return cosine_similarity(x)


def test_label_table_columns_are_the_named_statistics():
    sim = _planted_table_sim()
    t = label_table(sim, TABLE_LANGS, n_permutations=200, seed=6).set_index("labelling")
    assert 0.05 < t.at["branch", "ari_p"] < 0.95 and 0.05 < t.at["script", "ari_p"] < 0.95
    assert list(t.index) == ["family", "branch", "script"]
    # each test is controlled for the other axis: script for genealogy, family for script
    assert t.controlled_for.tolist() == ["script", "script", "family"]
    for field in ("family", "branch", "script"):
        lab = language_labels(TABLE_LANGS, field)
        ag = agreement(sim, lab, n_permutations=200, seed=6)
        raw = permutation_test(sim, lab, n_permutations=200, seed=6)
        ctl = permutation_test(sim, lab, n_permutations=200, seed=6,
                               strata=language_labels(TABLE_LANGS, t.at[field,
                                                                        "controlled_for"]))
        expected = {"n_groups": ag["n_groups"], "ari": ag["ari"], "nmi": ag["nmi"],
                    "ari_p": ag["ari_p"], "separation": raw.statistic, "z": raw.z,
                    "p": raw.p_value, "p_floor": raw.p_floor, "within_pairs": raw.n_within,
                    "separation_controlled": ctl.statistic, "p_controlled": ctl.p_value,
                    "p_controlled_floor": ctl.p_floor,
                    "within_pairs_controlled": ctl.n_within}
        got = {k: t.at[field, k] for k in expected}
        assert got == pytest.approx(expected, nan_ok=True), field
    # by hand: same-family pairs among same-script ones: en-fr (Latn) and fa-ur (Arab)
    assert t.at["family", "within_pairs_controlled"] == 2
    assert t.at["family", "within_pairs"] == 15 + 1  # C(6, 2) Indo-European + ar-he
    assert "separation_low" not in t.columns  # no bootstrap given


def test_label_table_defaults_and_bootstrap_interval():
    sim = _table_sim(1)
    samples = np.stack([_table_sim(s) for s in range(2, 23)])  # 21 resamples
    t = label_table(sim, TABLE_LANGS, fields=("script", "family"),
                    boot=BootstrapResult(sim, samples, level=0.9)).set_index("labelling")
    assert list(t.index) == ["script", "family"]
    for field in ("script", "family"):
        lab = language_labels(TABLE_LANGS, field)
        ref = permutation_test(sim, lab, n_permutations=1000, seed=0)
        assert t.at[field, "p"] == pytest.approx(ref.p_value)
        assert t.at[field, "z"] == pytest.approx(ref.z)
        # the 5th and 95th percentiles of the 21 resampled separations: 2nd and 20th smallest
        seps = np.sort([separation(s, lab) for s in samples])
        assert t.at[field, "separation_low"] == pytest.approx(seps[1])
        assert t.at[field, "separation_high"] == pytest.approx(seps[19])


def test_control_table_by_hand():
    # ur first: the pair hi-ur is stored as (ur, hi), after (ur, ar)
    langs = ["ur", "ar", "hi", "fa", "en"]
    sim = np.eye(5)
    pairs = {("ur", "ar"): 0.3, ("ur", "hi"): 0.9, ("ur", "fa"): 0.5, ("ur", "en"): 0.1,
             ("ar", "hi"): 0.2, ("ar", "fa"): 0.6, ("ar", "en"): 0.0, ("hi", "fa"): 0.4,
             ("hi", "en"): 0.7, ("fa", "en"): 0.8}
    for (a, b), s in pairs.items():
        i, j = langs.index(a), langs.index(b)
        sim[i, j] = sim[j, i] = s
    lo, hi = sim - 0.05, sim + 0.1
    boot = BootstrapResult(sim, np.stack([lo, hi]), level=1.0)  # interval = (lo, hi)
    t = control_table(sim, langs, boot=boot)
    # the control pairs present, in CONTROL_PAIRS order (sr-Cyrl / sr-Latn absent)
    assert t.pair.tolist() == ["hi–ur", "ar–fa", "ar–ur", "fa–ur"]
    assert t.what[1] == "one script (Arab), different families (Semitic / Indo-European)"
    assert t.similarity.tolist() == [0.9, 0.6, 0.3, 0.5]
    # ranks among the 10 pairs (0.9 first), percentile = share at most as similar
    assert t["rank"].tolist() == [1, 4, 7, 5] and t.of.tolist() == [10] * 4
    np.testing.assert_allclose(t.percentile, [100.0, 70.0, 40.0, 60.0])
    assert t.same_family.tolist() == [True, False, False, True]
    assert t.same_script.tolist() == [False, True, True, True]
    np.testing.assert_allclose(t.low, [0.85, 0.55, 0.25, 0.45])
    np.testing.assert_allclose(t.high, [1.0, 0.7, 0.4, 0.6])
    assert "low" not in control_table(sim, langs).columns


# --- ARI, agreement, arrangements: sklearn and hand counts ----------------------------------

def test_ari_of_trivial_clusterings_equals_sklearn():
    one, singles = np.zeros(5, dtype=int), np.arange(5)
    for a, b in ((one, one), (singles, singles), (one, singles), (singles, one)):
        assert ari_batch(a, b[None])[0] == pytest.approx(adjusted_rand_score(a, b)), (a, b)
    # several labellings at once, each against sklearn
    labs = np.array([one, singles, [0, 0, 1, 1, 2], [1, 1, 0, 0, 0]])
    np.testing.assert_allclose(ari_batch(np.array([2, 2, 0, 0, 1]), labs),
                               [adjusted_rand_score([2, 2, 0, 0, 1], lab) for lab in labs])


def test_agreement_defaults_are_1000_shuffles_of_seed_0():
    sim = _planted_table_sim()
    script = np.array([0, 0, 1, 2, 3, 3, 3, 4])
    ag = agreement(sim, script)
    clusters = cut_tree(cluster_tree(sim), 5)
    perms = np.random.default_rng(0).permuted(np.tile(np.arange(8), (1000, 1)), axis=1)
    ari = adjusted_rand_score(script, clusters)
    # the null through ari_batch (equal to sklearn: test_ari_batch_matches_sklearn)
    hits = (ari_batch(clusters, script[perms]) >= ari - 1e-12).sum()
    assert ag["ari"] == pytest.approx(ari)
    assert ag["ari_p"] == pytest.approx((1 + hits) / 1001)
    assert 0.05 < ag["ari_p"] < 0.95  # informative: neither floor nor 1


def test_agreement_uses_the_tree_it_is_given():
    pairs = np.array([[1.0, .9, 0, 0], [.9, 1, 0, 0], [0, 0, 1, .9], [0, 0, .9, 1]])
    across = pairs[np.ix_([0, 2, 1, 3], [0, 2, 1, 3])]  # pairs 0-2 and 1-3 instead
    labels = [0, 0, 1, 1]
    assert agreement(pairs, labels, n_permutations=10)["ari"] == pytest.approx(1.0)
    given = agreement(pairs, labels, n_permutations=10, tree=cluster_tree(across))
    assert given["ari"] == pytest.approx(-0.5)  # sklearn: ARI([0,0,1,1], [0,1,0,1])


@pytest.mark.parametrize("labels", [["a"] * 5, list("abcde")])
def test_agreement_is_undefined_for_one_group_or_only_singletons(labels):
    ag = agreement(np.eye(5), labels, n_permutations=10)
    assert set(ag) == {"n_groups", "ari", "nmi", "ari_p"}
    assert ag["n_groups"] == len(set(labels))
    assert all(math.isnan(ag[k]) for k in ("ari", "nmi", "ari_p"))


def test_arrangements_with_labels_missing_from_a_stratum():
    # stratum x: a a b (3 groupings); stratum y: c c d (3): labels a, b absent from y
    assert n_arrangements(list("aabccd"), list("xxxyyy")) == pytest.approx(9)
    # astronomically many arrangements are capped at e^700 (no float overflow)
    assert n_arrangements(["a"] * 550 + ["b"] * 550) == math.exp(700.0)


def test_cluster_tree_of_a_boolean_similarity():
    same = np.array([[1, 1, 0], [1, 1, 0], [0, 0, 1]], dtype=bool)
    # distances 1 - similarity: 0 within {0, 1}, 1 to item 2
    np.testing.assert_allclose(cluster_tree(same)[:, 2], [0.0, 1.0])
    np.testing.assert_allclose(cluster_tree(same), cluster_tree(same.astype(float)))
