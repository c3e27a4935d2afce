"""Families vs scripts: similarity, clustering, permutation and Mantel tests, bootstrap, LAPE."""
from __future__ import annotations

import math

import numpy as np
import pytest

from babel.families.bootstrap import BootstrapResult, bootstrap_similarity
from babel.families.distances import (
    linguistic_distances,
    mantel,
    mantel_table,
    partial_mantel,
    uriel_distance,
    uriel_positions,
)
from babel.families.lape import expert_neurons, lape, overlap_table
from babel.families.robustness import robustness_table
from babel.families.similarity import METRICS, layer_similarity, pair_table, similarity
from babel.families.stats import (
    agreement,
    ari_batch,
    control_table,
    label_table,
    layer_separation,
    n_arrangements,
    permutation_test,
)
from babel.figures.families import clustermap


def planted(n_groups: int = 3, per_group: int = 4, n_layers: int = 4, n_experts: int = 32,
            signal: float = 0.05, noise: float = 0.01, seed: int = 0):
    """Frequencies ``[n, L, E]``: a shared always-on profile + a group pattern + noise."""
    rng = np.random.default_rng(seed)
    shared = rng.uniform(0.1, 0.6, (n_layers, n_experts))
    patterns = rng.normal(0, signal, (n_groups, n_layers, n_experts))
    groups = np.repeat(np.arange(n_groups), per_group)
    freq = shared[None] + patterns[groups] + rng.normal(0, noise, (len(groups), n_layers,
                                                                    n_experts))
    return np.clip(freq, 0, 1), groups


def make_chunks(rate: np.ndarray, n_chunks: int, tokens: int, rng):
    counts = rng.binomial(tokens, rate[None], (n_chunks, *rate.shape)).astype(np.int32)
    return counts, np.full(n_chunks, tokens)


def point_distances(x: np.ndarray) -> np.ndarray:
    return np.linalg.norm(x[:, None] - x[None], axis=-1)



def test_similarity_metrics_shapes_and_centering():
    freq, groups = planted()
    for m in METRICS:
        s = similarity(freq, metric=m)
        assert s.shape == (12, 12)
        np.testing.assert_allclose(s, s.T, atol=1e-12)
        np.testing.assert_allclose(np.diag(s), 1.0, atol=1e-9)
    iu = np.triu_indices(12, 1)
    raw = similarity(freq, metric="cosine")[iu]
    centred = similarity(freq, metric="centered")[iu]
    assert raw.min() > 0.9  # the shared profile dominates raw cosine
    same = (groups[:, None] == groups[None, :])[iu]
    assert centred[same].mean() > 0.5 > centred[~same].mean()
    per_layer = layer_similarity(freq, metric="jaccard", top_share=0.25)
    assert per_layer.shape == (4, 12, 12)
    with pytest.raises(ValueError, match="metric must be one of"):
        similarity(freq, metric="euclid")


def test_jaccard_counts_top_sets():
    freq = np.array([[1.0, 0.9, 0.1, 0.0], [0.8, 0.0, 0.9, 0.1], [1.0, 0.9, 0.0, 0.2]])
    s = similarity(freq, metric="jaccard", top_share=0.5)  # k = 2
    assert s[0, 2] == pytest.approx(1.0)
    assert s[0, 1] == pytest.approx(1 / 3)


def test_planted_families_are_recovered():
    freq, groups = planted()
    sim = similarity(freq)
    ag = agreement(sim, groups, n_permutations=500)
    assert ag["ari"] > 0.95 and ag["nmi"] > 0.95 and ag["ari_p"] < 0.01
    t = permutation_test(sim, groups, n_permutations=1000)
    assert t.statistic > 0.5 and t.p_value < 0.01 and t.z > 5
    assert t.n_within == 3 * 6 and t.n_between == 66 - 18
    # three groups of 4 (interchangeable): 12! / (4!^3 3!) groupings
    assert t.n_arrangements == pytest.approx(
        math.factorial(12) / math.factorial(4) ** 3 / math.factorial(3))


def test_p_floor_of_small_strata():
    # strata {a, a, b} and {a, b}: 3 groupings x 1 (swapping two singletons changes nothing)
    assert n_arrangements(list("aabab"), list("xxxyy")) == pytest.approx(3)
    # singletons c, d, e are interchangeable: 6! / (3! 3!) = 20 groupings
    assert n_arrangements(list("aaacde")) == pytest.approx(20)
    sim = np.eye(5)
    t = permutation_test(sim, list("aabab"), strata=list("xxxyy"), n_permutations=500)
    assert t.p_floor == pytest.approx(1 / 3)


def test_p_value_reaches_the_floor():
    """The most extreme grouping gets p ~ its floor (all equivalent shuffles tie with it)."""
    sim = np.where(np.equal.outer(list("aaabbc"), list("aaabbc")), 1.0, 0.0)
    t = permutation_test(sim, list("aaabbc"), n_permutations=2000, seed=0)
    assert t.p_floor == pytest.approx(1 / 60)
    assert t.p_value == pytest.approx(1 / 60, rel=0.3)


def test_unrelated_labels_are_not_significant():
    freq, groups = planted()
    orthogonal = np.tile(np.arange(4), 3)  # one member of every planted group per label
    t = permutation_test(similarity(freq), orthogonal, n_permutations=1000)
    assert t.statistic < 0 and t.p_value > 0.5
    shuffled = np.random.default_rng(3).permutation(groups)
    noise = np.random.default_rng(1).uniform(0, 1, freq.shape)
    t2 = permutation_test(similarity(noise), shuffled, n_permutations=1000)
    assert t2.p_value > 0.05


def test_stratified_test_removes_a_confound():
    """Similarity driven by script only; family is confounded with script."""
    rng = np.random.default_rng(0)
    script = np.array([0] * 6 + [1] * 6)
    family = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 0])  # mostly aligned with script
    patterns = rng.normal(0, 0.05, (2, 4, 32))
    freq = 0.3 + patterns[script] + rng.normal(0, 0.01, (12, 4, 32))
    sim = similarity(freq)
    raw = permutation_test(sim, family, n_permutations=1000)
    controlled = permutation_test(sim, family, strata=script, n_permutations=1000)
    assert raw.p_value < 0.05
    assert controlled.p_value > 0.1


def test_ari_batch_matches_sklearn():
    from sklearn.metrics import adjusted_rand_score

    rng = np.random.default_rng(0)
    a = rng.integers(0, 4, 20)
    b = rng.integers(0, 5, (30, 20))
    ours = ari_batch(a, b)
    ref = [adjusted_rand_score(a, row) for row in b]
    np.testing.assert_allclose(ours, ref, atol=1e-12)


def test_layer_separation_finds_the_informative_layers():
    freq, groups = planted(n_layers=4)
    rng = np.random.default_rng(5)
    freq[:, :2] = rng.uniform(0.1, 0.6, (12, 2, 32))  # layers 0-1: no group structure
    df = layer_separation(freq, {"family": groups}, n_permutations=300)
    z = df.set_index("layer").z
    assert z.loc[[2, 3]].min() > 4 > z.loc[[0, 1]].max()
    assert set(df.columns) >= {"layer", "labelling", "separation", "z", "p"}


def test_pair_table_and_controls():
    sim = np.array([[1.0, 0.9, 0.1], [0.9, 1.0, 0.5], [0.1, 0.5, 1.0]])
    t = pair_table(sim, ["hi", "ur", "en"])
    top = t.sort_values("rank").iloc[0]
    assert (top.a, top.b, top["rank"], top.percentile) == ("hi", "ur", 1, 100.0)
    c = control_table(sim, ["hi", "ur", "en"])
    assert list(c.pair) == ["hi–ur"]  # the other control pairs are absent
    assert not c.same_script.iloc[0] and c.same_family.iloc[0]


def test_bootstrap_contains_point_and_narrows():
    rng = np.random.default_rng(0)
    # moderate similarities (sampling variance, not the attenuation bias, sets the width)
    freq, _ = planted(n_groups=2, per_group=3, n_layers=2, n_experts=16, signal=0.05,
                      noise=0.04)

    def width(n_chunks: int):
        data = [make_chunks(f, n_chunks, 100, rng) for f in freq]
        b = bootstrap_similarity([c for c, _ in data], [t for _, t in data],
                                          n_bootstrap=300, seed=1)
        lo, hi = b.interval()
        off = ~np.eye(6, dtype=bool)
        assert np.all((lo[off] <= b.point[off] + 1e-9) & (b.point[off] <= hi[off] + 1e-9))
        assert b.samples.shape == (300, 6, 6)
        return (hi - lo)[off].mean()

    assert width(80) < 0.6 * width(10)


def test_robustness_table():
    freq, _ = planted()
    langs = ["en", "fr", "es", "pt", "ru", "sr-Cyrl", "hi", "ur", "ar", "fa", "he", "zh-Hans"]
    table = robustness_table({"a": freq, "b": freq[:, :2]}, langs, n_permutations=100)
    assert list(table.setting) == ["a", "b"]
    assert {"family_p", "script_p", "ari_family", "ari_script"} <= set(table.columns)
    assert table.family_p.between(0, 1).all()
    with pytest.raises(ValueError, match="languages"):
        robustness_table({"a": freq[:3]}, langs)


def test_label_table_and_clustermap(tmp_path):
    langs = ["en", "de", "fr", "es", "ru", "sr-Cyrl", "ar", "he"]
    freq, _ = planted(n_groups=4, per_group=2)
    sim = similarity(freq)
    boot = BootstrapResult(sim, np.stack([sim, sim]))
    table = label_table(sim, langs, n_permutations=100, boot=boot)
    assert list(table.labelling) == ["family", "branch", "script"]
    assert table.set_index("labelling").at["branch", "ari"] == pytest.approx(1.0)
    g = clustermap(sim, langs, title="test")
    g.figure.savefig(tmp_path / "map.png")
    assert (tmp_path / "map.png").stat().st_size > 1000


def test_mantel_planted_and_independent():
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(15, 2))
    a = point_distances(pts)
    b = point_distances(pts + rng.normal(0, 0.2, pts.shape))
    c = point_distances(rng.normal(size=(15, 2)))
    m = mantel(a, b, n_permutations=999)
    assert m.r > 0.8 and m.p_value < 0.01
    for method in ("spearman", "pearson"):
        ind = mantel(a, c, method=method, n_permutations=999)
        assert abs(ind.r) < 0.3 and ind.p_value > 0.05


def test_partial_mantel_removes_a_confound():
    """x and y share only z (x = z + own noise, y = z + own noise)."""
    rng = np.random.default_rng(0)
    z = point_distances(rng.normal(size=(20, 2)))
    x = z + point_distances(rng.normal(size=(20, 2)))
    y = z + point_distances(rng.normal(size=(20, 2)))
    assert mantel(x, y, method="pearson", n_permutations=500).p_value < 0.01
    part = partial_mantel(x, y, z, method="pearson", n_permutations=500)
    assert abs(part.r) < 0.15 and part.p_value > 0.05
    assert partial_mantel(x, z, y, method="pearson", n_permutations=500).p_value < 0.01
    table = mantel_table(x, {"y": y, "z": z}, partials=[("y", "z")],
                                   n_permutations=200)
    assert list(table.predictor) == ["z", "y", "y"] and table.controlling_for.iloc[-1] == "z"


def test_uriel_distances_offline():
    d = linguistic_distances(["en", "de", "fr", "hi", "ur", "zh-Hans", "sr-Cyrl",
                                        "sr-Latn"])
    assert d.dropped == ()
    g = d.matrices["genetic"]
    i = {lang: k for k, lang in enumerate(d.langs)}
    assert g[i["hi"], i["ur"]] == 0 and g[i["sr-Cyrl"], i["sr-Latn"]] == 0
    assert g[i["en"], i["de"]] < g[i["en"], i["fr"]] < g[i["en"], i["zh-Hans"]] == 1
    geo = d.matrices["geographic"]
    assert geo[i["en"], i["fr"]] < geo[i["en"], i["zh-Hans"]]
    pos = uriel_positions(["eng"]).iloc[0]
    assert 48 < pos.lat < 58 and -8 < pos.lon < 4 and pos.rmse < 0.01
    for k in ("syntactic", "phonological", "inventory"):
        m = d.matrices[k]
        assert np.allclose(m, m.T) and np.all(np.diag(m) == 0) and m.max() <= 1
    s = d.matrices["script"]
    assert s[i["hi"], i["ur"]] == 1 and s[i["en"], i["fr"]] == 0
    with pytest.raises(KeyError, match="URIEL has no"):
        uriel_distance("syntactic", ["eng", "xxx"])


def test_lape_finds_a_planted_specific_neuron():
    rng = np.random.default_rng(0)
    p = rng.uniform(0.2, 0.4, (4, 3, 100))
    p[2, 1, 7] = 0.95  # neuron 7 of layer 1: only language 2
    p[:, 0, 3] = 0.97  # always on in every language: not specific (high entropy)
    res = lape(p, ["a", "b", "c", "d"], rate=0.005)
    assert res.selected.sum() == round(0.005 * 300)
    assert res.specific[2, 1, 7] and res.specific[:, 1, 7].sum() == 1
    assert not res.selected[0, 3] and res.candidates[0, 3]
    assert res.counts().set_index("language").neurons["c"] >= 1
    assert res.layer_counts().shape == (3, 4)
    cand = lape(p, ["a", "b", "c", "d"], rate=0.5, rate_of="candidates")
    assert cand.selected.sum() == round(0.5 * cand.candidates.sum())


def test_expert_neurons_and_overlap():
    labels = np.array([[0, 1, 0, 1], [1, 1, 0, 0]])
    specific = np.zeros((2, 2, 2), dtype=bool)
    specific[0, 0, 1] = True  # lang 0, layer 0, expert 1 -> neurons 1, 3
    neurons = expert_neurons(specific, labels)
    assert neurons[0, 0].tolist() == [False, True, False, True] and not neurons[1].any()
    lape_flags = np.zeros_like(neurons)
    lape_flags[0, 0, 3] = lape_flags[0, 1, 0] = True
    t = overlap_table(lape_flags, neurons, ["x", "y"]).set_index("language")
    assert t.at["x", "both"] == 1 and t.at["x", "jaccard"] == pytest.approx(1 / 3)
    assert t.at["x", "expected_both"] == pytest.approx(2 * 2 / 8)
    assert math.isnan(t.at["y", "jaccard"])
