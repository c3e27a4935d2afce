"""Expert-class counts as curves over their cut-offs, on planted frequencies."""

from __future__ import annotations

import numpy as np

from babel.core.config import ExpertClassSpec
from babel.figures.classes import class_sensitivity_figure
from babel.profile.classes import class_sensitivity, classify, paper_cutoffs
from babel.profile.summary import cutoff_text

R = 0.2


def _planted() -> np.ndarray:
    """3 languages x 1 layer x 10 experts with known minima and maxima."""
    f = np.tile(np.linspace(0.02, 0.4, 10), (3, 1))[:, None, :]  # expert e: 0.02 + 0.042 e
    f[1, 0, 9] = 0.9  # expert 9 is far higher in language 1 only
    return f


def test_curves_count_what_classify_counts_at_each_cutoff():
    f = _planted()
    spec = ExpertClassSpec()
    df = class_sensitivity(f, R, spec, high_factors=[0.5, 1.0, 2.0], low_factors=[0.25, 0.5],
                           zs=[1.0, 3.0])
    for _, row in df.iterrows():
        kw = {"high_factor": spec.high_factor, "low_factor": spec.low_factor,
              "specific_z": spec.specific_z}
        key = {"co_activated": "high_factor", "rare": "low_factor",
               "specific_any": "specific_z"}[row["class"]]
        kw[key] = row.value
        kw["low_factor"] = min(kw["low_factor"], kw["high_factor"])
        got = getattr(classify(f, ExpertClassSpec(**kw), R), row["class"])
        assert row.experts == int(got.sum()), row.to_dict()
    co = df[df["class"] == "co_activated"].set_index("value").experts
    # minima over languages are 0.02 + 0.0422 e: >= 0.1 from e = 2, >= 0.2 from e = 5, and
    # only e = 9 (0.4) reaches 0.4
    assert co.to_dict() == {0.5: 8, 1.0: 5, 2.0: 1}
    rare = df[df["class"] == "rare"].set_index("value").experts
    assert rare.to_dict() == {0.25: 1, 0.5: 2}  # maxima < 0.05: e=0; < 0.1: e=0,1
    spec_counts = df[df["class"] == "specific_any"].set_index("value").experts
    assert spec_counts[1.0] == 1 and spec_counts[3.0] == 1  # only expert 9, in language 1
    assert set(df.columns) == {"class", "cutoff", "value", "experts", "share"}


def test_paper_cutoffs_reach_the_paper_counts():
    rng = np.random.default_rng(0)
    f = rng.uniform(0.0, 0.5, size=(4, 8, 32))
    cut = paper_cutoffs(f, R)
    spec = ExpertClassSpec(high_factor=cut["co_activated_high_factor"],
                           low_factor=min(cut["rare_low_factor"], cut["co_activated_high_factor"]))
    c = classify(f, spec, R)
    assert c.co_activated.mean() >= 0.5
    # a slightly stricter high factor leaves fewer than half
    stricter = classify(f, ExpertClassSpec(high_factor=cut["co_activated_high_factor"] * 1.001,
                                           low_factor=0.0), R)
    assert stricter.co_activated.mean() < 0.5
    rare = classify(f, ExpertClassSpec(high_factor=10.0, low_factor=cut["rare_low_factor"]), R)
    assert rare.rare.mean() >= 1000 / 8192
    fewer = classify(f, ExpertClassSpec(high_factor=10.0,
                                        low_factor=cut["rare_low_factor"] * 0.999), R)
    assert fewer.rare.mean() < 1000 / 8192


def test_cutoff_text_and_figure_name_both_cutoffs():
    f = _planted()
    cut = paper_cutoffs(f, R)
    text = cutoff_text(cut, ExpertClassSpec())
    assert f"{cut['co_activated_high_factor']:.2f}·r" in text and "this run: 0.25·r" in text
    fig = class_sensitivity_figure(class_sensitivity(f, R, ExpertClassSpec()), ExpertClassSpec(),
                                   paper=cut)
    assert [ax.get_xlabel() for ax in fig.axes] == ["high_factor", "low_factor", "specific_z"]
