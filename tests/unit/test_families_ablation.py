"""The budget comparison reports each budget's answer: planted branch vs planted script runs."""

from __future__ import annotations

from babel.families.ablation import budget_comparison

from .test_families_analysis import planted_runs


def test_budget_comparison_shows_when_the_answer_changes():
    table = budget_comparison({"same items": planted_runs("branch")[0],
                               "token budget": planted_runs("script", seed=1)[0]},
                              n_permutations=200)[0].set_index("budget")
    assert table.at["same items", "outcome"] == "families"
    assert table.at["token budget", "outcome"] == "scripts"
    assert table.at["same items", "ARI branch"] > table.at["token budget", "ARI branch"]
    assert table.at["same items", "sr-Cyrl–sr-Latn percentile"] >= 90
    assert table.at["token budget", "sr-Cyrl–sr-Latn percentile"] < 50
    assert table.at["same items", "tokens min"] == 2400  # 6 chunks x 400 planted tokens


def test_no_runs_no_rows():
    table, rec = budget_comparison({})
    assert table.empty and rec == {"budget_comparison": []}
