"""Notebooks 00–02 run headlessly under papermill with smoke parameters; their records obey
invariants that hold by construction (not ranges any output would meet)."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from babel.core import paths
from babel.core.notebook import load_params, read_records, run_notebook
from babel.data.languages import available_languages
from babel.models.checks import repetition_rate

SMOKE = load_params("smoke", "02_activation_profiling")
N_LAYERS, N_NEURONS = 18, 2048  # gemma-3-270m


def _run(name, tmp_path, **overrides):
    out = run_notebook(name, params="smoke", overrides=overrides, output=tmp_path / f"{name}.ipynb")
    return read_records(out)


def test_00_model_check(tmp_path):
    # sw is not among the smoke languages (en, fr, zh-Hans, ar): the subset rule drops it
    rec = _run("00_model_check", tmp_path, continuation_languages=["en", "sw", "fr"])
    assert rec["n_layers"] == N_LAYERS and rec["n_neurons"] == N_NEURONS
    assert [r["language"] for r in rec["continuations"]] == ["en", "fr"]
    checks = rec["continuation_checks"]
    assert [c["language"] for c in checks] == ["en", "fr"]
    for row, check in zip(rec["continuations"], checks):
        assert check["repetition"] == repetition_rate(row["continuation"])
    assert (paths.figures_dir() / rec["figure"]).exists()
    assert rec["corpus_languages"] == len(available_languages())


def test_01_expert_construction(tmp_path):
    rec = _run("01_expert_construction", tmp_path)
    assert rec["balanced"] is True  # every expert has exactly N/E neurons
    ex = rec["exactness"]
    assert ex["moe_all_experts_max_abs_diff"] == 0.0  # all experts selected: the dense model
    assert ex["reordered_max_abs_diff"] <= 1e-4 and ex["reordered_moe_max_abs_diff"] <= 1e-4
    assert ex["same_greedy_continuation"] is True
    # score_tokens (256) content tokens per language, plus one BOS per 63-token chunk
    per_lang = rec["score_tokens_per_language"]
    assert per_lang == {lang: 256 + math.ceil(256 / 63) for lang in SMOKE["languages"]}
    # cross-layer rule: every token selects round(r * L * E) experts in all
    sel = rec["selected_per_layer"]
    k = round(SMOKE["share"] * N_LAYERS * SMOKE["n_experts"])
    assert len(sel) == N_LAYERS and abs(sum(sel) - k) <= N_LAYERS * 0.005 + 1e-6


def test_02_activation_profiling(smoke_chain):
    rec = smoke_chain.records["02_activation_profiling"]
    langs = SMOKE["languages"]
    # content-parallel: one item set (one hash) for every language, token counts differ
    assert len(rec["items_sha256"]) == 1 and len(rec["items_sha256"][0]) == 12
    assert set(rec["tokens_per_language"]) == set(langs)
    assert len(set(rec["tokens_per_language"].values())) > 1
    table = pd.read_parquet(smoke_chain.results_file(rec["frequency_table"]))
    k = round(SMOKE["share"] * N_LAYERS * SMOKE["n_experts"])
    per_lang = table.groupby("language").agg(count=("count", "sum"), tokens=("tokens", "first"))
    assert (per_lang["count"] == k * per_lang["tokens"]).all()  # k selections per token
    cls, layers = rec["expert_classes"], rec["class_counts_per_layer"]
    assert cls["experts"] == N_LAYERS * SMOKE["n_experts"]
    for name in ("co_activated", "rare", "specific_any"):
        assert len(layers[name]) == N_LAYERS and sum(layers[name]) == cls[name]
    assert cls["co_activated_share"] == cls["co_activated"] / cls["experts"]
    assert cls["high"] == SMOKE["share"] * SMOKE["high_factor"]
    assert cls["low"] == SMOKE["share"] * SMOKE["low_factor"]
    spec = rec["specific_per_language"]
    assert set(spec) == set(langs) == set(rec["mean_abs_deviation"])
    assert max(spec.values()) <= cls["specific_any"] <= sum(spec.values())
    # the sensitivity curves pass through this run's counts at this run's cut-offs
    sens = pd.read_csv(smoke_chain.results_file("expert_classes_sensitivity_gemma-3-270m.csv"))
    at = sens.set_index(["class", "value"]).experts
    assert at[("co_activated", SMOKE["high_factor"])] == cls["co_activated"]
    assert at[("rare", SMOKE["low_factor"])] == cls["rare"]
    assert at[("specific_any", SMOKE["specific_z"])] == cls["specific_any"]
    assert set(rec["paper_cutoffs"]) == {"co_activated_high_factor", "rare_low_factor"}


def test_string_codes_survive_and_bad_codes_fail(tmp_path):
    from papermill.exceptions import PapermillExecutionError

    with pytest.raises(PapermillExecutionError, match="not a string"):
        _run("00_model_check", tmp_path, languages=["en", float("nan")])
    with pytest.raises(PapermillExecutionError, match="did you mean"):
        _run("00_model_check", tmp_path, languages=["frr"])
