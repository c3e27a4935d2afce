"""Known answers for the robustness settings and table: every setting's configuration spelled
out, and each row of the table equal to the label statistics of that setting's similarity."""
from __future__ import annotations

import numpy as np
import pytest

from babel.core.config import PartitionConfig, SelectionRule
from babel.families.robustness import robustness_settings, robustness_table
from babel.families.similarity import similarity
from babel.families.stats import label_table

# families: IE x4, Afro-Asiatic x2, Sino-Tibetan; scripts: Latn x2, Cyrl, Deva, Arab x2, Hani
LANGS = ["en", "fr", "ru", "hi", "ar", "he", "zh-Hans"]
SCRIPT = np.array([0, 0, 1, 2, 3, 4, 5])


def _script_planted(seed: int = 0) -> np.ndarray:
    """``[7, 2, 12]``: languages of one script share a pattern; families play no part."""
    rng = np.random.default_rng(seed)
    patterns = rng.normal(0, 0.05, (6, 2, 12))
    return 0.3 + patterns[SCRIPT] + rng.normal(0, 0.01, (7, 2, 12))


COLUMNS = ["separation", "p", "ari", "separation_controlled", "p_controlled",
           "p_controlled_floor"]


def _expected_row(freq, metric, n_permutations, seed):
    t = label_table(similarity(freq, metric=metric), LANGS, fields=("family", "script"),
                    n_permutations=n_permutations, seed=seed).set_index("labelling")
    out = {}
    for f in ("family", "script"):
        names = [f"{f}_separation", f"{f}_p", f"ari_{f}", f"{f}_separation_controlled",
                 f"{f}_p_controlled", f"{f}_p_controlled_floor"]
        out |= {n: t.at[f, c] for n, c in zip(names, COLUMNS)}
    return out


def test_each_row_is_the_label_statistics_of_its_setting():
    freq = _script_planted()
    table = robustness_table({"all": freq, "layer 1": freq[:, 1:]}, LANGS, metric="pearson",
                             n_permutations=50, seed=3)
    assert list(table.setting) == ["all", "layer 1"]
    assert table.features.tolist() == [24, 12]
    for row, f in zip(table.itertuples(), (freq, freq[:, 1:])):
        expected = _expected_row(f, "pearson", 50, 3)
        got = {k: getattr(row, k) for k in expected}
        assert got == pytest.approx(expected, nan_ok=True)
    # the planted script pattern: script separates (also among same-family pairs), family not
    assert (table.script_separation > 0.3).all() and (table.ari_script == 1.0).all()
    assert (table.script_separation_controlled > 0.3).all()
    assert (table.family_separation.abs() < 0.1).all()


def test_defaults_centered_metric_1000_shuffles_seed_0():
    freq = _script_planted(1)
    row = robustness_table({"x": freq}, LANGS).iloc[0]
    expected = _expected_row(freq, "centered", 1000, 0)
    assert {k: row[k] for k in expected} == pytest.approx(expected, nan_ok=True)


def test_a_setting_with_other_languages_is_refused():
    freq = _script_planted()
    with pytest.raises(ValueError, match=r"setting 'short' has 6 languages, expected 7"):
        robustness_table({"ok": freq, "short": freq[:6]}, LANGS)


def test_settings_keep_the_experiment_and_vary_one_thing():
    part = PartitionConfig(n_experts=64, method="coactivation", projection="up", seed=5)
    rule = SelectionRule(kind="per_layer_topk", share=0.3, z=2.5)
    s = robustness_settings(part, rule, experts=[16, 128], shares=[0.05, 0.5])
    same_rule = SelectionRule(kind="per_layer_topk", share=0.3, z=2.5)
    assert s == {
        "coactivation E=16 r=0.3": (
            PartitionConfig(n_experts=16, method="coactivation", projection="up", seed=5),
            same_rule),
        "coactivation E=128 r=0.3": (
            PartitionConfig(n_experts=128, method="coactivation", projection="up", seed=5),
            same_rule),
        "coactivation E=64 r=0.05": (part, SelectionRule(kind="per_layer_topk", share=0.05,
                                                         z=2.5)),
        "coactivation E=64 r=0.5": (part, SelectionRule(kind="per_layer_topk", share=0.5,
                                                        z=2.5)),
        "random E=64 r=0.3": (PartitionConfig(n_experts=64, method="random", seed=5), same_rule),
    }
    assert list(s)[-1] == "random E=64 r=0.3"  # in that order: E, then r, then random
    assert list(s)[:2] == ["coactivation E=16 r=0.3", "coactivation E=128 r=0.3"]


def test_settings_without_a_random_partition():
    part = PartitionConfig(n_experts=8, method="kmeans", seed=1)
    rule = SelectionRule(kind="z_threshold", share=0.2, z=1.5)
    assert robustness_settings(part, rule) == {
        "random E=8 r=0.2": (PartitionConfig(n_experts=8, method="random", seed=1),
                             SelectionRule(kind="z_threshold", share=0.2, z=1.5))}
    assert robustness_settings(part, rule, random_partition=False) == {}
    # the experiment's own setting, named twice, is kept once
    twice = robustness_settings(part, rule, experts=[8], shares=[0.2], random_partition=False)
    assert twice == {"kmeans E=8 r=0.2": (part, rule)}
