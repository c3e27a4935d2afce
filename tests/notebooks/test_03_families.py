"""Notebook 03 on smoke parameters: every record present and consistent with its definition."""
from __future__ import annotations

import pytest


@pytest.mark.notebook
@pytest.mark.integration
def test_notebook_smoke(smoke_chain):
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    from babel.experiment import COMMON_PARAMETERS, ExperimentConfig
    from babel.families.conclusion import OUTCOMES
    from babel.families.distances import BRANCH, PARTIALS
    from babel.families.similarity import language_labels
    from babel.families.stats import CONTROL_PAIRS

    params = smoke_chain.params["03_language_families"]
    langs, n_perm = list(params["languages"]), params["n_permutations"]
    models = list(dict.fromkeys([params["model"], *params["compare_models"]]))
    rec = smoke_chain.records["03_language_families"]

    per_model = ("agreement", "bootstrap_max_abs_bias", "clusters", "mean_similarity",
                 "layer_z", "layers_script_above_family", "controls", "mantel",
                 "lape_neurons", "lape_overlap")
    expected = {f"{m}/{k}" for m in models for k in per_model} | {
        "figures_clustermap", "figure_layers", "figure_lape", "mantel_dropped", "robustness",
        "robustness_seconds", "models_mantel", "answer", "answers", "conclusion", "seconds",
        "budget_comparison"}
    assert expected <= set(rec), sorted(expected - set(rec))
    # the budget ablation: one row per budget, each with the rule's outcome
    exp = smoke_chain.exp
    budgets = [b["budget"] for b in rec["budget_comparison"]]
    assert budgets == [exp.budget, exp.other_budget(params["ablation_max_tokens"]).budget]
    assert all(b["outcome"] in OUTCOMES for b in rec["budget_comparison"])
    assert rec["budget_comparison"][0]["outcome"] == rec["answer"]["outcome"]

    for m in models:
        ag, clusters = rec[f"{m}/agreement"], rec[f"{m}/clusters"]
        for f in ("family", "branch", "script"):
            labels = language_labels(langs, f)
            if clusters[f] is None:  # one group or only singletons: no clustering to compare
                assert ag[f"ari_{f}"] is None and len(set(labels)) in (1, len(langs))
                continue
            assert len(set(clusters[f])) <= len(set(labels))
            assert ag[f"ari_{f}"] == pytest.approx(adjusted_rand_score(labels, clusters[f]))
            assert ag[f"nmi_{f}"] == pytest.approx(normalized_mutual_info_score(labels,
                                                                                clusters[f]))
            for key in ("ari_p", "p"):
                assert 1 / (1 + n_perm) - 1e-12 <= ag[f"{key}_{f}"] <= 1
        # Mantel: every URIEL language kept, the branch predictor and its partial tests
        mt = rec[f"{m}/mantel"]
        assert {r["predictor"] for r in mt if r["controlling_for"] == ""} >= {
            BRANCH, "genetic", "script", "family"}
        assert {(r["predictor"], r["controlling_for"]) for r in mt
                if r["controlling_for"]} == set(PARTIALS)
        assert all(r["n_languages"] == len(langs) - len(rec["mantel_dropped"]) for r in mt)
        # controls: exactly the control pairs these languages allow
        pairs = {f"{a}–{b}" for a, b, _ in CONTROL_PAIRS if a in langs and b in langs}
        assert {c["pair"] for c in rec[f"{m}/controls"]} == pairs
        # layer curves: one z per layer and labelling
        assert set(rec[f"{m}/layer_z"]) == {"family", "script"}
        assert len({len(v) for v in rec[f"{m}/layer_z"].values()}) == 1
        ov = rec[f"{m}/lape_overlap"]
        assert ov["both"] <= min(ov["lape"], ov["experts"])

    # robustness: the settings the smoke parameters name, on the experiment's model
    names = [r["setting"] for r in rec["robustness"]]
    assert names == [f"{params['method']} E={e} r={params['share']:g}"
                     for e in params["robustness_experts"]] + [
        "neurons (gate > 0)", f"main profiles ({ExperimentConfig.from_params(**{k: params[k] for k in COMMON_PARAMETERS}).budget})"]
    assert {r["model"] for r in rec["robustness"]} == {params["model"]}

    # the answer: one of the outcomes, for the experiment's model, and the conclusion opens with it
    answer = rec["answer"]
    assert answer["model"] == params["model"] and answer["outcome"] in OUTCOMES
    assert set(rec["answers"]) == set(models)
    assert len(answer["tests"]) == 6
    assert rec["conclusion"].startswith(answer["sentence"] + "\n\n")
    assert -1 <= rec["models_mantel"]["r"] <= 1
