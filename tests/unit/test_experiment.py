"""The one experiment config: validation, the language rule, budgets, the class definition."""

from __future__ import annotations

import numpy as np
import pytest

from babel.core.params import ParameterError
from babel.experiment import COMMON_PARAMETERS, ExperimentConfig
from babel.profile.cache import MixedItemsError
from babel.profile.profiler import Profile


def test_defaults_are_the_common_parameters():
    exp = ExperimentConfig.from_params()
    assert exp.model == COMMON_PARAMETERS["model"]
    assert exp.partition.key == "kmeans-E256-gate-s0"
    assert exp.profile.key == "cross_layer-r0.2_builtin-profiling_L128_Tall_bos0_I100"
    assert exp.thresholds == (0.2, 0.05) and exp.classes.specific_z == 3.0
    assert len(exp.languages) == 23  # "all": every language with a corpus file


@pytest.mark.parametrize("params, message", [
    ({"seed": "abc"}, r"^seed must be an integer, got 'abc'$"),
    ({"share": 1.5}, r"^share must be in \[1e-06, 1.0\], got 1.5$"),
    ({"method": "kmean"}, r"^method must be one of \['kmeans', 'random', 'coactivation', "),
    ({"languages": "en,xx"}, r"^languages: unknown language code 'xx'; use one of en, fr"),
    ({"low_factor": 2.0}, r"low_factor \(2.0\) must not exceed high_factor"),
    ({"langauges": ["en"]}, r"unknown experiment parameter\(s\) \['langauges'\]"),
])
def test_bad_parameters_get_one_line_errors(params, message):
    with pytest.raises(ParameterError, match=message) as err:
        ExperimentConfig.from_params(**params)
    assert "\n" not in str(err.value)


def test_comma_list_and_namespace():
    ns = {"languages": "en, fr", "share": 0.1, "unrelated": object()}
    exp = ExperimentConfig.from_namespace(ns)
    assert exp.languages == ("en", "fr") and exp.share == 0.1


def test_settings_that_name_languages_follow_the_run(capsys):
    exp = ExperimentConfig.from_params(languages=["en", "de", "hi"])
    assert exp.subset(["fr", "hi", "en"], name="pruning_languages") == ["hi", "en"]
    assert "['fr'] not among this run's languages; using ['hi', 'en']" in capsys.readouterr().out
    assert exp.subset("fr", name="causal_language") == ["en"]  # none left: the first one
    assert exp.subset(["zh-Hans"], name="x", fallback=2) == ["en", "de"]
    capsys.readouterr()
    assert exp.subset(["de", "en"], name="x") == ["de", "en"] and not capsys.readouterr().out
    assert exp.subset(None, name="x") == ["en", "de", "hi"]


def test_the_budget_ablation_switches_modes():
    parallel = ExperimentConfig.from_params(max_tokens=None, max_items=100)
    assert parallel.profile.content_parallel and "in every language" in parallel.budget
    ablation = parallel.other_budget(3000)
    assert ablation.profile.max_tokens == 3000 and not ablation.profile.content_parallel
    assert ablation.profile.max_items is None  # the earlier method: 3000 tokens, no item cap
    assert ablation.profile.key == "cross_layer-r0.2_builtin-profiling_L128_T3000_bos0"
    back = ablation.other_budget(3000).profile
    assert back.max_tokens is None and back.max_items is None and back.content_parallel


def _profile(lang, items):
    z = np.zeros((1, 1, 2), np.int32)
    return Profile(lang, z + 1, np.ones(1, np.int64), np.zeros((1, 2), np.int64),
                   np.zeros((1, 2)), items)


def test_content_parallel_runs_refuse_profiles_of_different_items():
    exp = ExperimentConfig.from_params(languages=["en", "fr"], max_tokens=None)
    same = {"en": _profile("en", "abc"), "fr": _profile("fr", "abc")}
    assert exp.frequencies(same)[1].shape == (2, 1, 2)
    mixed = {"en": _profile("en", "abc"), "fr": _profile("fr", "xyz")}
    with pytest.raises(MixedItemsError):
        exp.frequencies(mixed)
    ablation = exp.other_budget(3000)  # a token budget compares different items knowingly
    assert ablation.frequencies(mixed)[1].shape == (2, 1, 2)


def test_classes_use_the_one_definition():
    exp = ExperimentConfig.from_params(languages=["en", "fr", "de"], share=0.2, specific_z=1.0)
    f = np.full((3, 1, 3), 0.2)
    f[:, 0, 1] = 0.01  # rare
    f[2, 0, 2] = 0.9  # specific to de
    c = exp.classify(f)
    assert c.rare.tolist() == [[False, True, False]]
    assert c.specific[2].tolist() == [[False, False, True]] and c.specific.sum() == 1


def test_subset_of_a_number_names_the_parameter_and_the_raw_fix() -> None:
    exp = ExperimentConfig.from_params(languages=["en", "fr"])
    with pytest.raises(ParameterError, match=r"causal_language must be language codes.*-r "
                                             r"causal_language nan"):
        exp.subset(float("nan"), name="causal_language")
