"""Settings flow: an override reaches 02, 03 and 04 alike, and 03/04 reuse 02's profiles."""

from __future__ import annotations

from babel.core import paths
from babel.core.notebook import load_params, read_records, run_notebook
from babel.experiment import COMMON_PARAMETERS, ExperimentConfig

OVERRIDES = {"seq_len": 64, "max_tokens": 150}


def _snapshot(folder):
    return {f.name: (f.stat().st_mtime_ns, f.read_bytes()) for f in sorted(folder.iterdir())}


def test_02_03_04_share_the_experiment_and_its_profiles(tmp_path):
    smoke = load_params("smoke", "02_activation_profiling")
    exp = ExperimentConfig.from_params(
        **{**{k: v for k, v in smoke.items() if k in COMMON_PARAMETERS}, **OVERRIDES})
    run_notebook("02_activation_profiling", params="smoke", overrides=OVERRIDES,
                 output=tmp_path / "02.ipynb")
    key = f"{exp.partition.key}_{exp.profile.key}"
    assert "_L64_T150_" in key
    profiles = paths.profile_dir(exp.model, key)
    before = _snapshot(profiles)
    assert sorted(before) == sorted(f"{lang}{ext}" for lang in exp.languages
                                    for ext in (".json", ".npz"))
    for name, extra in (("03_language_families", {"compare_models": [],
                                                   "robustness_experts": []}),
                        ("04_pruning", {})):
        out = run_notebook(name, params="smoke", overrides={**OVERRIDES, **extra},
                           output=tmp_path / f"{name}.ipynb")
        assert read_records(out), f"{name} recorded nothing"
        assert _snapshot(profiles) == before, f"{name} profiled {exp.model} again"
    # nothing was profiled under the parameter set's own (non-overridden) settings
    others = [d.name for d in profiles.parent.iterdir()
              if d.name.startswith(exp.partition.key) and d != profiles]
    assert not others, f"profiles under settings that ignore the override: {others}"
