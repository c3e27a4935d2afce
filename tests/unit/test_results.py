"""The README's results section is written from recorded values, never typed by hand."""

from __future__ import annotations

import json

import pytest

from babel import results
from babel.core.notebook import RECORD_MIME

RECORDS = {
    "01_expert_construction": {
        "cohesion_chosen_mean": 0.1234, "cohesion_random_mean": 0.0071, "balanced": True,
        "exactness": {"moe_all_experts_max_abs_diff": 0.0, "reordered_max_abs_diff": 2.5e-5,
                      "same_greedy_continuation": True}},
    "02_activation_profiling": {
        "tokens_per_language": {"en": 3111, "sw": 5922},
        "expert_classes": {"co_activated": 556, "co_activated_share": 0.1207, "experts": 4608,
                           "rare": 58, "rare_share": 0.0126, "specific_any": 1186,
                           "high": 0.2, "low": 0.05, "specific_z": 3.0},
        "paper_cutoffs": {"co_activated_high_factor": 0.61, "rare_low_factor": 0.47}},
    "03_language_families": {
        "answers": {"m": {"sentence": "For m, activation patterns follow families."}},
        "m/agreement": {"ari_branch": 0.77, "ari_family": 0.04, "ari_script": 0.3},
        "m/controls": [{"pair": "sr-Cyrl–sr-Latn", "percentile": 99.2}],
        "budget_comparison": [{"budget": "same items", "outcome": "families"},
                              {"budget": "3000 tokens", "outcome": "both"}]},
    "04_pruning": {
        "conclusion": "**No**: keeping 90% raises perplexity by 27%. More text here.",
        "median_rise_ci": {"0.9": {"frequency (global)": {"value": 0.27, "low": 0.2,
                                                          "high": 0.31}}},
        "causal": {"n_specific": 35, "language": "fr", "rise_target": 1.5,
                   "rise_others_mean": 0.1, "rise_target_random": 0.2,
                   "rise_others_random_mean": 0.15},
        "speed": [{"model": "m", "k": 0.9, "measured_body": 1.09, "theoretical_body": 1.07,
                   "measured_end_to_end": 1.01, "theoretical_end_to_end": 1.03}]},
}


def _executed(folder):
    folder.mkdir()
    for name, rec in RECORDS.items():
        cells = [{"cell_type": "code", "outputs": [{"output_type": "display_data",
                                                     "data": {RECORD_MIME: {k: v}}}]}
                 for k, v in rec.items()]
        (folder / f"{name}.ipynb").write_text(json.dumps({"cells": cells}))
    return folder


def test_every_number_comes_from_the_records(tmp_path, monkeypatch):
    monkeypatch.setattr(results.paths, "PROJ_ROOT", tmp_path)
    md = results.results_markdown(_executed(tmp_path / "executed"))
    for needle in ("0.123", "0.0071", "556 of 4608 experts (12.1%)", "half co-activated at high = 0.61·r",
                   "For m, activation patterns follow families.",
                   "ARI branch 0.77", "sr-Cyrl–sr-Latn at the 99th percentile",
                   "both (3000 tokens)", "No: keeping 90% raises perplexity by 27%.",
                   "+27.0% [+20.0%, +31.0%]", "35 experts specific to fr: +150.0%",
                   "body ×1.09 [×1.07]", "3,111–5,922 profiled tokens"):
        assert needle in md, needle
    assert "More text here" not in md  # only the conclusion's first sentence


def test_readme_block_is_rewritten_and_the_rest_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(results.paths, "PROJ_ROOT", tmp_path)
    executed = _executed(tmp_path / "executed")
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{results.BEGIN}\nold numbers\n{results.END}\noutro\n")
    results.update_readme(readme, executed)
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("outro\n") and "old numbers" not in text
    assert "ARI branch 0.77" in text
    readme.write_text("no markers")
    with pytest.raises(ValueError, match="results:begin"):
        results.update_readme(readme, executed)


def test_named_blocks_are_replaced_independently(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("a\n<!-- x:begin -->\nold x\n<!-- x:end -->\nb\n"
                      "<!-- y:begin -->\nold y\n<!-- y:end -->\nc\n")
    results.replace_block(readme, "y", "new y")
    assert readme.read_text() == ("a\n<!-- x:begin -->\nold x\n<!-- x:end -->\nb\n"
                                  "<!-- y:begin -->\nnew y\n<!-- y:end -->\nc\n")
    with pytest.raises(ValueError, match="z:begin .* add the two markers"):
        results.replace_block(readme, "z", "t")
    assert "new y" in readme.read_text() and [p.name for p in tmp_path.iterdir()] == ["README.md"]


def test_pruning_paragraph_leads_with_the_best_method_when_the_frontier_ran():
    rec = dict(RECORDS["04_pruning"])
    rec["conclusion"] = ("**Best pruning method on m: energy · none · uniform** (score) — "
                         "k = 0.9: median rise +12.0%. Goals: not met.\n\n"
                         "**No**: keeping 90% raises perplexity by 27%. More text here.")
    text = results.pruning(rec)
    assert text.startswith("**Pruning (04).** Best pruning method on m: energy · none · uniform")
    assert "k = 0.9: median rise +12.0%. Goals: not met." in text
    assert "The paper's method in detail: No: keeping 90% raises perplexity by 27%." in text
    assert "More text here" not in text
