"""Notebooks 00–02 run headlessly under papermill with smoke parameters and record sane values."""
from __future__ import annotations

import math

import pytest

from babel.core import paths
from babel.core.notebook import read_records, run_notebook


def _run(name, tmp_path, **overrides):
    out = run_notebook(name, params="smoke", overrides=overrides, output=tmp_path / f"{name}.ipynb")
    return read_records(out)



def test_00_model_check(tmp_path):
    rec = _run("00_model_check", tmp_path)
    assert rec["n_layers"] == 18 and rec["n_neurons"] == 2048
    fr = next(r for r in rec["continuations"] if r["language"] == "fr")
    assert fr["continuation"].strip()
    assert (paths.figures_dir() / rec["figure"]).exists()
    assert rec["corpus_languages"] >= 23
    assert 0.0 < rec["mean_share_active"] < 1.0


def test_01_expert_construction(tmp_path):
    rec = _run("01_expert_construction", tmp_path)
    assert rec["balanced"] is True
    ex = rec["exactness"]
    assert ex["moe_all_experts_max_abs_diff"] <= 1e-4 and ex["reordered_max_abs_diff"] <= 1e-4
    assert ex["same_greedy_continuation"] is True
    sel = rec["selected_per_layer"]
    assert len(sel) == 18 and math.isclose(sum(sel), 0.2 * 18 * 64, rel_tol=0.01)


def test_02_activation_profiling(tmp_path):
    rec = _run("02_activation_profiling", tmp_path)
    tokens = rec["tokens_per_language"]
    assert set(tokens) == {"en", "fr", "zh-Hans", "ar"} and all(t > 100 for t in tokens.values())
    cls = rec["expert_classes"]
    assert 0 <= cls["co_activated"] <= cls["experts"] and 0 <= cls["rare"] <= cls["experts"]
    assert paths.results_file(rec["frequency_table"]).exists()


def test_string_codes_survive_and_bad_codes_fail(tmp_path):
    from papermill.exceptions import PapermillExecutionError

    with pytest.raises(PapermillExecutionError, match="not a string"):
        _run("00_model_check", tmp_path, languages=["en", float("nan")])
    with pytest.raises(PapermillExecutionError, match="did you mean"):
        _run("00_model_check", tmp_path, languages=["frr"])
