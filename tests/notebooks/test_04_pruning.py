"""Notebook 04 on smoke settings: what it claims holds in its records."""
from __future__ import annotations

import math

import pytest


@pytest.mark.notebook
def test_notebook_04_smoke(smoke_chain):
    params = smoke_chain.params["04_pruning"]
    rec = smoke_chain.records["04_pruning"]
    langs = set(params["pruning_languages"])
    sweep = rec["sweep"]
    assert {r["language"] for r in sweep} == langs
    assert all(r["tokens"] > 0 and math.isfinite(r["ppl"]) for r in sweep)
    assert all(r["rise"] == 0.0 for r in sweep if r["method"] == "dense")  # sanity only
    # the headline direction: frequency masks beat uniform random masks
    k = f"{min(s for s in params['kept_shares'] if s < 1):g}"
    med = rec["median_rise"][k]
    headline = {"frequency (global)", "frequency (adaptive)", "random (uniform)",
                "random (layer counts)"}
    # frequency-matched exists where the global mask removes at most half of the experts
    assert set(med) == headline | ({"random (frequency-matched)"} if float(k) >= 0.5 else set())
    assert med["frequency (global)"] < med["random (uniform)"]
    assert med["frequency (global)"] > 0
    # intervals: every rise has one that brackets it; the median's brackets the median
    ci = rec["median_rise_ci"][k]
    assert set(ci) == set(med)
    for m, iv in ci.items():
        assert iv["low"] <= iv["value"] <= iv["high"]
        assert iv["value"] == pytest.approx(med[m], rel=1e-6, abs=1e-9)
    assert len(rec["rise_ci"]) == len(langs) * len(med)
    assert all(r["low"] <= r["rise"] <= r["high"] for r in rec["rise_ci"])
    assert all(len(r["mask"]) == 40 or r["mask"] == "dense" for r in sweep)
    check = rec["prune_equals_mask"]
    assert check["abs_diff"] <= 1e-4 * check["ppl_masked"]
    assert check["reload_max_logit_diff"] <= 1e-4
    assert check["params_pruned"] < check["params_dense"]
    # cross-language: every mask row (and the summed one) on every language, diagonal present
    cross, cs = rec["cross_matrix"], rec["cross_summary"]
    assert set(cross) == langs | {"all (summed)"}
    assert all(set(row) == langs for row in cross.values())
    assert cs["mean_rise_own"] == pytest.approx(sum(cross[x][x] for x in langs) / len(langs))
    assert cs["n_diagonal_best"] == sum(cs["diagonal_best"].values())
    for a, row in cross.items():
        for b, v in row.items():
            lo, hi = cs["intervals"][a][b]
            assert lo - 1e-9 <= v <= hi + 1e-9
    # causal: the target is a pruning language; specific counts over all the experiment's
    causal = rec["causal"]
    assert causal["language"] == params["causal_language"]
    if causal["n_specific"]:
        assert set(causal["specific_per_language"]) == set(params["languages"])
        assert causal["specific_per_language"][causal["language"]] == causal["n_specific"]
        assert all(math.isfinite(causal[f]) for f in ("rise_target", "rise_target_random"))
        lo, hi = causal["rise_target_ci"]
        assert lo <= causal["rise_target"] <= hi
    speed = rec["speed"]
    assert {r["model"] for r in speed} == set(params["speed"]["models"])
    assert all(r["theoretical_body"] > r["theoretical_end_to_end"] > 1 for r in speed)
    for r in speed:
        for f in ("measured_body", "measured_end_to_end", "measured/theoretical body"):
            assert math.isfinite(r[f]) and r[f] > 0
        assert r["measured_body_low"] <= r["measured_body"] <= r["measured_body_high"]
        assert params["speed"]["repeats"] <= r["rounds"] <= params["speed"]["max_repeats"]
    conclusion = rec["conclusion"]
    first, rest = conclusion.split("\n\n", 1)
    assert first.startswith(f"**Best pruning method on {params['model']}: {rec['methods_best']}**")
    assert rest.split(":")[0] in ("**Yes**", "**Partly**", "**No**")
    assert f"- k = {k}: median perplexity rise" in conclusion
    _check_methods(smoke_chain, params, rec, k)


def _check_methods(chain, params, rec, k):
    """The pruning-methods frontier: the CSV, the best method, the paper's method as in the
    sweep, the random floor, the language and causal tests with the best method."""
    import pandas as pd

    from babel.prune.methods import COLUMNS

    m = params["methods"]
    table = pd.read_csv(chain.results_file(f"pruning_methods_{params['model']}.csv"))
    assert list(table.columns[:len(COLUMNS)]) == list(COLUMNS)
    assert set(table.language) == set(params["pruning_languages"])
    assert (table.rise - (table.ppl_pruned / table.ppl_dense - 1)).abs().max() < 1e-9
    assert set(table.k) == set(m["kept_shares"]) | set(m["screen_shares"])
    timed = table[table.language == params["pruning_languages"][0]]
    assert timed.body_speedup.notna().all() and (timed.body_speedup > 0).all()
    # end to end adds the same head time to both: between 1 and the body speedup
    assert ((timed.e2e_speedup - 1).abs() <= (timed.body_speedup - 1).abs() + 1e-12).all()
    med = {(r["method"], r["compensation"], r["allocation"], r["k"]): r["median_rise"]
           for r in rec["methods_median"]}
    # every screened score × compensation under the first allocation, at the screening share
    k_s = m["screen_shares"][0]
    for score in m["scores"]:
        for comp in m["compensation"]:
            assert (score, comp, m["allocations"][0], k_s) in med
    # the best has the lowest median rise at the screening share among the methods tried
    best = tuple(rec["methods_best"].split(" · "))
    tried = {key: v for key, v in med.items() if key[3] == k_s and key[0] != "random"}
    assert med[(*best, k_s)] == min(tried.values())
    # the paper's method is the sweep's frequency (global) mask: the same rises
    for share in set(m["kept_shares"]) & {float(x) for x in rec["median_rise"]}:
        assert med[("frequency", "none", "global", share)] == pytest.approx(
            rec["median_rise"][f"{share:g}"]["frequency (global)"], rel=1e-6)
    assert all(("random", "none", "uniform", x) in med for x in m["kept_shares"])
    own = rec["methods_own_language"]
    assert own["n_own_best"] == len(own["own_best"]) <= own["n_languages"]
    assert own["method"] == rec["methods_best"]
    assert rec["methods_causal"]["language"] == params["causal_language"]
    if "sensitivity" in m["allocations"]:
        assert all(len(v) == 18 for v in rec["methods_sensitivity"].values())
