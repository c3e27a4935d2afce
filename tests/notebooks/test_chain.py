"""Settings flow: an override reaches 02, 03 and 04 alike, and 03/04 reuse 02's profiles."""

from __future__ import annotations

from babel.core import paths


def test_02_03_04_share_the_experiment_and_its_profiles(smoke_chain):
    exp = smoke_chain.exp
    key = f"{exp.partition.key}_{exp.profile.key}"
    assert "_L64_" in key  # the override is part of the experiment every notebook built
    first, *later = smoke_chain.snapshots.values()
    assert sorted(first) == sorted(f"{lang}{ext}" for lang in exp.languages
                                   for ext in (".json", ".npz"))
    for name, snap in zip(list(smoke_chain.snapshots)[1:], later, strict=True):
        assert snap == first, f"{name} profiled {exp.model} again"
    # nothing was profiled under settings that ignore the override: the only other profiles
    # of this partition are 03's budget ablation, under the same override
    ablation = exp.other_budget(smoke_chain.params["03_language_families"]["ablation_max_tokens"])
    others = {d.name for d in smoke_chain.profiles.parent.iterdir()
              if d.name.startswith(exp.partition.key) and d != smoke_chain.profiles}
    assert others <= {paths.slug(f"{exp.partition.key}_{ablation.profile.key}")}, others
    assert all("_L64_" in d for d in others)
