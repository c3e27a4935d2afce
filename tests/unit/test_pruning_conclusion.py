"""The conclusion follows the numbers: synthetic median rises with a known answer."""

from __future__ import annotations

import pandas as pd
import pytest

from babel.prune.conclusion import (
    answer,
    comparable_share,
    compare,
    conclusion_text,
    is_noise,
    non_monotonic,
    pct,
    speed_notes,
)

METHODS = ["frequency (global)", "frequency (adaptive)", "random (uniform)",
           "random (frequency-matched)", "random (layer counts)"]


def _summary(rows: dict[float, list[float]]) -> pd.DataFrame:
    """Median-rise table ``k x method`` (the dense row at k = 1 as the notebook has it)."""
    t = pd.DataFrame.from_dict(rows, orient="index", columns=METHODS)
    t.loc[1.0] = [float("nan")] * len(METHODS)
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


GOOD = _summary({0.9: [0.02, 0.03, 0.3, 0.2, 0.01], 0.8: [0.08, 0.07, 0.6, 0.5, 0.05],
                 0.7: [0.15, 0.12, 1.0, 0.9, 0.1]})


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
    bad = _summary({0.9: [0.4, 0.3, 0.3, 0.2, 0.5], 0.8: [0.9, 0.7, 0.6, 0.5, 1.0]})
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
    assert "smaller rise than uniform random in 6 of 6, than frequency-matched random in 6 " \
           "of 6, than layer counts random in 0 of 6" in text
    assert "adaptive beats global in 4 of 6" in text  # at k = 0.8 and 0.7, both languages
    # the layer-counts mask has the smallest rise, yet "beats random" holds: it is a diagnostic
    assert "Diagnostic only: random with the global mask's per-layer counts +1.0%" in lines[2]
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
    bad = _summary({0.5: [1.0, 1.0, 2.0, 2.0, 2.0]})
    assert answer(bad, max_rise=max_rise, model="m").startswith("**No**")


def _speed_rows(rows: list[tuple[float, float, float, float, float]]) -> pd.DataFrame:
    """Speed table of model "m": (k, theoretical body, measured, low, high); e2e = body."""
    return pd.DataFrame([{"model": "m", "k": k, "theoretical_body": th, "measured_body": v,
                          "measured_body_low": lo, "measured_body_high": hi,
                          "theoretical_end_to_end": th, "measured_end_to_end": v,
                          "measured_end_to_end_low": lo, "measured_end_to_end_high": hi,
                          "ffn_share_end_to_end": 0.3, "rounds": 30}
                         for k, th, v, lo, hi in rows])


def test_measured_speedup_above_its_flop_bound_is_noise():
    # k = 0.9: FLOP bound x1.05, measured x1.20 [1.10, 1.30] -> noise; k = 0.8 is fine
    speed = _speed_rows([(0.9, 1.05, 1.20, 1.10, 1.30), (0.8, 1.20, 1.15, 1.10, 1.19)])
    assert [is_noise(r) for _, r in speed.iterrows()] == [True, False]
    notes = speed_notes(speed)
    assert notes[0] == "body: above its FLOP bound (noise); end to end: above its FLOP bound " \
                       "(noise)" and notes[1] == ""
    text = conclusion_text(GOOD, _per_lang(GOOD), n_seeds=3, max_rise=0.1, model="m",
                           speed=speed)
    assert "×1.20 [1.10, 1.30] lies above its FLOP bound ×1.05, so it is timing noise" in text
    assert "body ×1.15 [1.10, 1.19] measured vs ×1.20 from FLOPs" in text
    # the answer at k = 0.9 never uses the noisy measurement: it falls back to FLOPs
    a = answer(_summary({0.9: [0.02, 0.03, 0.3, 0.2, 0.01]}), max_rise=0.1, model="m",
               speed=speed, flops_at_comparable={"body": 1.05, "end_to_end": 1.02})
    assert "×1.05 as fast (from FLOPs)" in a and "1.20" not in a


def test_non_monotonic_k_is_named_only_when_intervals_are_apart():
    # k = 0.7 is slower than k = 0.8 with intervals apart; 0.9 vs 0.8 overlap: not named
    speed = _speed_rows([(0.9, 1.1, 1.08, 1.00, 1.15), (0.8, 1.3, 1.12, 1.10, 1.14),
                         (0.7, 1.5, 1.02, 1.00, 1.05)])
    assert non_monotonic(speed) == [("m", 0.7, 0.8)]
    assert speed_notes(speed)[2] == "body: slower than k=0.8; end to end: slower than k=0.8"
    text = conclusion_text(GOOD, _per_lang(GOOD), n_seeds=3, max_rise=0.1, model="m",
                           speed=speed)
    assert "Speed (body) is not monotonic in k: m at k = 0.7 is slower than at k = 0.8" in text
    ok = _speed_rows([(0.9, 1.1, 1.08, 1.00, 1.15), (0.8, 1.3, 1.06, 1.00, 1.14)])
    assert non_monotonic(ok) == [] and "not monotonic" not in conclusion_text(
        GOOD, _per_lang(GOOD), n_seeds=3, max_rise=0.1, model="m", speed=ok)


def test_sweep_line_with_intervals_and_removed_frequency():
    med = pd.DataFrame([{"k": 0.8, "method": m, "rise": GOOD.loc[0.8, m], "low": lo, "high": hi}
                        for m, lo, hi in zip(METHODS, [0.06, 0.05, 0.5, 0.4, 0.03],
                                             [0.10, 0.09, 0.7, 0.6, 0.07], strict=True)])
    rf = pd.DataFrame({"frequency (global)": [0.012], "random (frequency-matched)": [0.031]},
                      index=[0.8])
    text = conclusion_text(GOOD, _per_lang(GOOD), n_seeds=3, max_rise=0.1, model="m",
                           median_ci=med, removed_freq=rf)
    line = next(x for x in text.splitlines() if x.startswith("- k = 0.8"))
    assert "+8.0% [+6.0%, +10.0%] (frequency, global)" in line
    assert "beats random (intervals apart)" in line
    assert "mean frequency 0.031 (the global mask's: 0.012" in line
    overlap = med.assign(low=lambda d: d.low.where(d.method != "random (frequency-matched)",
                                                   0.09))
    text = conclusion_text(GOOD, _per_lang(GOOD), n_seeds=3, max_rise=0.1, model="m",
                           median_ci=overlap)
    assert "beats random (but the intervals overlap)" in text
