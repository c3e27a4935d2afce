"""Known answers for the language similarities: the four metrics against sklearn and numpy
references, top-k sets and pair ranks counted by hand, the language table's labels."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics.pairwise import cosine_similarity

from babel.families.similarity import (
    METRICS,
    _codes,
    language_labels,
    layer_similarity,
    metric_summary,
    pair_table,
    similarity,
)


def _freq(seed: int = 0, shape=(5, 3, 8)) -> np.ndarray:
    # frequencies below 0.3: every vector has a norm below 1 (normalisation is exercised)
    return np.random.default_rng(seed).uniform(0.0, 0.3, shape)


def _jaccard_reference(x: np.ndarray, k: int) -> np.ndarray:
    top = [set(np.argsort(-row, kind="stable")[:k]) for row in x]
    return np.array([[len(a & b) / len(a | b) for b in top] for a in top])


def test_each_metric_equals_its_reference():
    freq = _freq()
    x = freq.reshape(5, -1)
    ref = {
        "cosine": cosine_similarity(x),
        # each expert's mean over the languages removed first
        "centered": cosine_similarity(x - x.mean(0)),
        # each language's mean over its experts removed: the Pearson correlation
        "pearson": np.corrcoef(x),
        # top 10% of 24 experts: k = round(2.4) = 2 (distinct values: no ties)
        "jaccard": _jaccard_reference(x, 2),
    }
    for metric in METRICS:
        np.testing.assert_allclose(similarity(freq, metric=metric), ref[metric], atol=1e-12,
                                   err_msg=metric)
    # the default metric is "centered"
    np.testing.assert_allclose(similarity(freq), ref["centered"], atol=1e-12)


def test_jaccard_top_share_by_hand():
    freq = np.array([[5.0, 4, 3, 2, 1, 0], [0, 1, 2, 3, 4, 5], [5, 0, 4, 1, 3, 2]])
    # top_share 0.5 -> k = 3: {0,1,2}, {3,4,5}, {0,2,4}
    s = similarity(freq, metric="jaccard", top_share=0.5)
    assert s[0, 1] == 0.0 and s[0, 2] == pytest.approx(2 / 4) and s[1, 2] == pytest.approx(1 / 5)
    # k = round(0.34 * 6) = 2: {0,1}, {4,5}, {0,2}
    s2 = similarity(freq, metric="jaccard", top_share=0.34)
    assert s2[0, 2] == pytest.approx(1 / 3) and s2[1, 2] == 0.0
    # k is at least one expert: {0}, {5}, {0}
    s0 = similarity(freq, metric="jaccard", top_share=0.0)
    assert s0.tolist() == [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 1.0]]


def test_a_silent_language_has_zero_cosine():
    freq = np.array([[0.0, 0.0, 0.0], [0.1, 0.2, 0.0], [0.0, 0.1, 0.1]])
    s = similarity(freq, metric="cosine")
    assert s[0].tolist() == [0.0, 0.0, 0.0]  # no division by zero: 0, not nan
    assert s[1, 2] == pytest.approx(0.02 / (np.sqrt(0.05) * np.sqrt(0.02)))  # 0.2 * 0.1


def test_layer_similarity_is_the_similarity_of_each_layer():
    freq = _freq(1)
    for metric in METRICS:
        per_layer = layer_similarity(freq, metric=metric, top_share=0.25)
        assert per_layer.shape == (3, 5, 5)
        for layer in range(3):
            np.testing.assert_allclose(
                per_layer[layer], similarity(freq[:, layer], metric=metric, top_share=0.25),
                atol=1e-12, err_msg=f"{metric} layer {layer}")
    # default metric: centred cosine, per layer
    x = freq[:, 1]
    np.testing.assert_allclose(layer_similarity(freq)[1], cosine_similarity(x - x.mean(0)),
                               atol=1e-12)
    # default top_share 0.1 of E = 8 experts: k = round(0.8) = 1
    top1 = layer_similarity(freq, metric="jaccard")[2]
    np.testing.assert_allclose(top1, _jaccard_reference(freq[:, 2], 1))


def test_shapes_and_metric_are_checked():
    with pytest.raises(ValueError, match=r"need frequencies \[n_lang >= 2, \.\.\.\], got "
                                         r"shape \(1, 4\)"):
        similarity(np.ones((1, 4)))
    with pytest.raises(ValueError, match="need frequencies"):
        similarity(np.ones(4))
    similarity(np.eye(2))  # two languages, one feature axis: the smallest valid input
    with pytest.raises(ValueError, match=r"layer_similarity needs \[n_lang, L, E\], got shape"):
        layer_similarity(np.ones((3, 4)))
    with pytest.raises(ValueError, match="metric must be one of"):
        layer_similarity(_freq(), metric="euclid")


def test_metric_summary_by_reference():
    freq = _freq(2)
    table = metric_summary(freq, top_share=0.25).set_index("metric")
    assert list(table.index) == list(METRICS)
    iu = np.triu_indices(5, 1)
    for metric in METRICS:
        s = similarity(freq, metric=metric, top_share=0.25)[iu]  # the 10 pairs
        row = table.loc[metric]
        assert (row["mean"], row["min"], row["max"], row["std"]) == pytest.approx(
            (np.mean(s), np.min(s), np.max(s), np.std(s)))
    # default top_share 0.1 (k = round(2.4) = 2 of 24)
    jac = metric_summary(freq).set_index("metric").loc["jaccard", "mean"]
    assert jac == pytest.approx(_jaccard_reference(freq.reshape(5, -1), 2)[iu].mean())


def test_language_labels_from_the_table():
    langs = ["en", "hi", "ur", "ar"]
    assert language_labels(langs, "family") == ["Indo-European"] * 3 + ["Afro-Asiatic"]
    assert language_labels(langs, "branch") == ["Germanic", "Indo-Aryan", "Indo-Aryan",
                                                "Semitic"]
    assert language_labels(langs, "script") == ["Latn", "Deva", "Arab", "Arab"]
    with pytest.raises(ValueError, match=r"field must be one of \('family', 'branch', "
                                         r"'script'\), got 'name'"):
        language_labels(langs, "name")


def test_codes_number_the_sorted_labels():
    assert _codes(["b", "a", "c", "a"]).tolist() == [1, 0, 2, 0]
    assert _codes([3, 1, 3]).tolist() == [1, 0, 1]


def test_pair_table_ranks_and_percentiles_by_hand():
    sim = np.array([[1.0, 0.2, 0.5, 0.2],
                    [0.2, 1.0, 0.9, 0.1],
                    [0.5, 0.9, 1.0, 0.3],
                    [0.2, 0.1, 0.3, 1.0]])
    t = pair_table(sim, ["w", "x", "y", "z"])
    assert list(zip(t.a, t.b)) == [("w", "x"), ("w", "y"), ("w", "z"), ("x", "y"), ("x", "z"),
                                   ("y", "z")]
    assert t.similarity.tolist() == [0.2, 0.5, 0.2, 0.9, 0.1, 0.3]
    # 1 = most similar; the tie (w-x, w-z at 0.2) keeps the table order
    assert t["rank"].tolist() == [4, 2, 5, 1, 6, 3]
    # share of the 6 pairs at most as similar (ties count): 0.2 -> 3/6, 0.1 -> 1/6
    np.testing.assert_allclose(t.percentile, [50.0, 500 / 6, 50.0, 100.0, 100 / 6, 400 / 6])


def test_boolean_and_integer_frequencies_are_numbers():
    active = np.array([[True, False, True, False], [True, True, False, False],
                       [False, True, True, True]])
    for metric in METRICS:
        np.testing.assert_allclose(similarity(active, metric=metric, top_share=0.5),
                                   similarity(active.astype(float), metric=metric,
                                              top_share=0.5), err_msg=metric)
    per_layer = active.reshape(3, 2, 2)
    np.testing.assert_allclose(layer_similarity(per_layer, metric="jaccard", top_share=0.5),
                               layer_similarity(per_layer.astype(float), metric="jaccard",
                                                top_share=0.5))


def test_jaccard_top_sets_of_many_experts():
    """600 experts in shuffled orders: the top-k sets are the k largest (a full sort), for a
    single expert, a few, and most of them."""
    x0 = 1.0 - np.random.default_rng(0).permutation(600) / 600
    x1 = 1.0 - np.random.default_rng(100).permutation(600) / 600
    top0, top1 = int(np.argmax(x0)), int(np.argmax(x1))
    x1[[top0, top1]] = x1[[top1, top0]]  # both languages share their largest expert
    freq = np.stack([x0, x1])
    for k in (1, 7, 482):
        s = similarity(freq, metric="jaccard", top_share=k / 600)
        np.testing.assert_allclose(s, _jaccard_reference(freq, k), err_msg=str(k))
    assert similarity(freq, metric="jaccard", top_share=1 / 600)[0, 1] == 1.0


def test_pair_ranks_break_ties_in_table_order():
    rng = np.random.default_rng(0)
    sim = np.eye(7)
    iu = np.triu_indices(7, 1)
    levels = rng.integers(0, 3, len(iu[0])) / 10  # 21 pairs on 3 levels: many ties
    sim[iu] = levels
    sim.T[iu] = levels
    t = pair_table(sim, list("abcdefg"))
    order = sorted(range(21), key=lambda i: -levels[i])  # Python's sort is stable
    expected = np.empty(21, dtype=int)
    expected[order] = np.arange(1, 22)
    assert t["rank"].tolist() == expected.tolist()
    assert t["rank"].dtype.kind == "i"  # ranks are integers


def test_labels_are_compared_as_text():
    # True and 1 are different labels (a number array would make both 1)
    assert _codes([True, 1, True]).tolist() == [1, 0, 1]
