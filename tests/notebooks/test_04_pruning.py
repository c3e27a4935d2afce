"""Keep-masks, structural pruning (= masking), save/load and FLOP accounting."""
from __future__ import annotations

import numpy as np
import pytest


@pytest.mark.notebook
def test_notebook_04_smoke(tmp_path):
    from babel.core.notebook import read_records, run_notebook

    out = run_notebook("04_pruning", params="smoke", output=tmp_path / "04.ipynb")
    rec = read_records(out)
    sweep = rec["sweep"]
    langs = {r["language"] for r in sweep}
    assert len(langs) == 2
    assert all(r["rise"] == 0.0 for r in sweep if r["method"] == "dense")
    assert all(r["tokens"] > 0 and np.isfinite(r["ppl"]) for r in sweep)
    med = rec["median_rise"]["0.6"]
    assert set(med) == {"frequency (global)", "frequency (adaptive)", "random (matched)",
                        "random (uniform)"}
    check = rec["prune_equals_mask"]
    assert check["abs_diff"] <= 1e-4 * check["ppl_masked"]
    assert check["reload_max_logit_diff"] <= 1e-4
    assert check["params_pruned"] < check["params_dense"]
    assert set(rec["cross_matrix"]) == langs | {"all (summed)"}
    speed = rec["speed"]
    assert speed and all(r["theoretical_body"] > r["theoretical_end_to_end"] > 1 for r in speed)
    assert all(r["measured_body"] > 0 for r in speed)
    assert rec["conclusion"].startswith("- k = 0.6")
