"""The conclusion follows the numbers: synthetic median rises with a known answer."""

from __future__ import annotations

import pandas as pd
import pytest

from babel.prune.conclusion import answer, comparable_share, compare, conclusion_text, pct

METHODS = ["frequency (global)", "frequency (adaptive)", "random (matched)", "random (uniform)"]


def _summary(rows: dict[float, list[float]]) -> pd.DataFrame:
    """Median-rise table ``k x method`` (the dense row at k = 1 as the notebook has it)."""
    t = pd.DataFrame.from_dict(rows, orient="index", columns=METHODS)
    t.loc[1.0] = [float("nan")] * 4
    t["dense"] = [float("nan")] * (len(t) - 1) + [0.0]
    return t.sort_index()


def _per_lang(summary: pd.DataFrame) -> pd.Series:
    """Two languages with the summary's rises (a: as is, b: + 0.01)."""
    idx, vals = [], []
    for k in summary.index[summary.index < 1]:
        for m in METHODS:
            for lang, d in (("a", 0.0), ("b", 0.01)):
                idx.append((k, m, lang))
                vals.append(summary.loc[k, m] + d)
    return pd.Series(vals, index=pd.MultiIndex.from_tuples(idx, names=["k", "method",
                                                                       "language"]))


def _speed(model: str, k: float, measured: float) -> pd.DataFrame:
    return pd.DataFrame([{"model": model, "k": k, "measured_body": measured,
                          "theoretical_body": 1.4, "measured_end_to_end": 1.1,
                          "theoretical_end_to_end": 1.12, "ffn_share_end_to_end": 0.26}])


GOOD = _summary({0.9: [0.02, 0.03, 0.2, 0.3], 0.8: [0.08, 0.07, 0.5, 0.6],
                 0.7: [0.15, 0.12, 0.9, 1.0]})


def test_comparable_share_is_the_smallest_within_max_rise():
    assert comparable_share(GOOD, max_rise=0.1) == 0.8
    assert comparable_share(GOOD, max_rise=0.2) == 0.7
    assert comparable_share(GOOD, max_rise=0.01) is None


def test_answer_yes_when_comparable_and_measured_faster():
    a = answer(GOOD, max_rise=0.1, model="m", speed=_speed("m", 0.8, 1.25))
    assert a.startswith("**Yes**") and "k = 0.8" in a and "+8.0%" in a
    assert "×1.25 as fast (measured)" in a and "better than random" in a


def test_answer_partly_when_not_faster_and_falls_back_to_flops():
    a = answer(GOOD, max_rise=0.1, model="m", speed=_speed("m", 0.8, 0.95))
    assert a.startswith("**Partly**") and "not faster" in a
    # the speed table has no row at k = 0.8 for this model: the FLOP speedup is used
    a = answer(GOOD, max_rise=0.1, model="m", speed=_speed("other", 0.8, 2.0),
               flops_at_comparable={"body": 1.3, "end_to_end": 1.1})
    assert a.startswith("**Yes**") and "×1.30 as fast (from FLOPs)" in a


def test_answer_no_and_not_better_than_random():
    bad = _summary({0.9: [0.4, 0.3, 0.2, 0.3], 0.8: [0.9, 0.7, 0.5, 0.6]})
    a = answer(bad, max_rise=0.1, model="m")
    assert a.startswith("**No**") and "+40.0%, at k = 0.9" in a
    loose = answer(bad, max_rise=0.5, model="m", speed=_speed("m", 0.9, 1.1))
    assert loose.startswith("**Yes**") and "not better than random" in loose


def test_conclusion_text_lines():
    cross = {"k": 0.9, "diagonal_best": {"a": True, "b": False}, "n_diagonal_best": 1,
             "mean_rise_own": 0.1, "mean_rise_same_branch": None,
             "mean_rise_same_family_other_branch": 0.2, "mean_rise_other_family": 0.3,
             "mean_rise_summed_mask": 0.05}
    causal = {"language": "a", "n_specific": 5, "rise_target": 0.3, "rise_others_mean": 0.01,
              "rise_target_random": 0.02, "rise_others_random_mean": 0.02}
    construction = pd.DataFrame({"kmeans": [0.1], "random": [0.2]}, index=[0.8])
    text = conclusion_text(GOOD, _per_lang(GOOD), n_seeds=3, max_rise=0.1, model="m",
                           cross=cross, causal=causal,
                           flops_at_comparable={"body": 1.3, "end_to_end": 1.1},
                           speed=_speed("m", 0.8, 1.2), construction=construction)
    lines = text.splitlines()
    assert lines[0].startswith("**Yes**") and lines[1] == ""
    assert lines[2].startswith("- k = 0.9") and "beats random" in lines[2]
    assert "smaller rise than uniform random in 6 of 6" in text
    assert "adaptive beats global in 4 of 6" in text  # at k = 0.8 and 0.7, both languages
    assert "best for 1 of 2" in text and "same branch n/a" in text
    assert "removing the 5 experts specific to a" in text
    assert "holds down to k = 0.8" in text and "best: kmeans" in text
    none = conclusion_text(GOOD, _per_lang(GOOD), n_seeds=1, max_rise=0.1, model="m",
                           causal={"language": "a", "n_specific": 0}, specific_z=3.0)
    assert "no expert is specific to a at z ≥ 3.0" in none and "Cross-language" not in none


def test_helpers():
    assert pct(0.123) == "+12.3%" and pct(None) == "n/a" and pct(float("inf")) == "n/a"
    assert compare(0.10, 0.104) == "about as good as"
    assert compare(0.05, 0.10) == "better than" and compare(0.2, 0.1) == "worse than"


@pytest.mark.parametrize("max_rise", [0.0, 0.1])
def test_no_pruned_share_means_no(max_rise):
    bad = _summary({0.5: [1.0, 1.0, 2.0, 2.0]})
    assert answer(bad, max_rise=max_rise, model="m").startswith("**No**")
