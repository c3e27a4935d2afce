"""Families vs scripts: similarity, clustering, permutation and Mantel tests, bootstrap, LAPE."""
from __future__ import annotations

import pytest


@pytest.mark.notebook
@pytest.mark.integration
def test_notebook_smoke():
    from babel.core.notebook import read_records, run_notebook

    rec = read_records(run_notebook("03_language_families", params="smoke"))
    for model in ("gemma-3-270m", "smollm2-135m"):
        r = rec[f"{model}/agreement"]
        for f in ("family", "script"):
            assert 0 <= r[f"p_{f}"] <= 1
            assert -1 <= r[f"separation_{f}"] <= 2
        assert rec[f"{model}/mean_similarity"]["cosine"] > 0
        assert rec[f"{model}/lape_neurons"] >= 0
    assert len(rec["robustness"]) >= 2
    assert all(0 <= row["family_p"] <= 1 for row in rec["robustness"])
    assert isinstance(rec["conclusion"], str) and rec["conclusion"]
