"""Robustness of the family statistics over E, the selection share, a random partition and raw neurons."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from babel.construct.partition import get_partition
from babel.core.config import PartitionConfig, ProfileConfig, SelectionRule
from babel.families.similarity import Metric, similarity
from babel.families.stats import label_table
from babel.profile.cache import frequency_tensor, profile_languages


def robustness_table(settings: Mapping[str, np.ndarray], langs: Sequence[str], *,
                     metric: Metric = "centered", n_permutations: int = 1000,
                     seed: int = 0) -> pd.DataFrame:
    """The main statistics for each setting ``{name: frequency [n_lang, ...]}``.

    Columns: family and script separation with permutation p-values, ARI against family and
    script, and the controlled effect sizes and p-values (family among same-script pairs,
    script among same-family pairs) with the smallest p each controlled test can reach on
    these languages. Where a p-value sits at its floor the settings differ only in the effect
    size, so compare the ``*_separation_controlled`` columns.
    """
    rows = []
    for name, freq in settings.items():
        if freq.shape[0] != len(langs):
            raise ValueError(f"setting {name!r} has {freq.shape[0]} languages, expected "
                             f"{len(langs)}: stack the same languages in every setting")
        table = label_table(similarity(freq, metric=metric), langs, fields=("family", "script"),
                            n_permutations=n_permutations, seed=seed).set_index("labelling")
        row: dict = {"setting": name, "features": int(np.prod(freq.shape[1:]))}
        for f in ("family", "script"):
            row |= {f"{f}_separation": table.at[f, "separation"], f"{f}_p": table.at[f, "p"],
                    f"ari_{f}": table.at[f, "ari"],
                    f"{f}_separation_controlled": table.at[f, "separation_controlled"],
                    f"{f}_p_controlled": table.at[f, "p_controlled"],
                    f"{f}_p_controlled_floor": table.at[f, "p_controlled_floor"]}
        rows.append(row)
    return pd.DataFrame(rows)


def robustness_settings(partition: PartitionConfig, rule: SelectionRule, *,
                        experts: Sequence[int] = (), shares: Sequence[float] = (),
                        random_partition: bool = True
                        ) -> dict[str, tuple[PartitionConfig, SelectionRule]]:
    """The robustness settings: vary E, then the share r, then a random partition.

    Args:
        partition: The experiment's partition (its method, projection and seed are kept).
        rule: The experiment's selection rule (its kind is kept).
        experts: Numbers of experts E, each with the experiment's share.
        shares: Selection shares r, each with the experiment's E.
        random_partition: Add a random partition of the experiment's E (unless the
            experiment's partition is already random).

    Returns:
        ``{"<method> E=<E> r=<r>": (PartitionConfig, SelectionRule)}`` in that order (a
        setting named twice is the same setting, kept once).
    """
    method, n, share = partition.method, partition.n_experts, rule.share
    main_rule = SelectionRule(kind=rule.kind, share=share, z=rule.z)
    out: dict[str, tuple[PartitionConfig, SelectionRule]] = {}
    for e in experts:
        out[f"{method} E={e} r={share:g}"] = (
            PartitionConfig(n_experts=e, method=method, projection=partition.projection,
                            seed=partition.seed), main_rule)
    for r in shares:
        out[f"{method} E={n} r={r:g}"] = (partition, SelectionRule(kind=rule.kind, share=r, z=rule.z))
    if random_partition and method != "random":
        out[f"random E={n} r={share:g}"] = (
            PartitionConfig(n_experts=n, method="random", seed=partition.seed), main_rule)
    return out


def setting_frequencies(model, tokenizer, langs: Sequence[str],
                        settings: Mapping[str, tuple], *, max_tokens: int | None,
                        max_items: int | None = None, model_name: str | None = None,
                        profile: ProfileConfig | None = None) -> dict[str, np.ndarray]:
    """Frequencies ``[n_lang, L, E]`` of several (partition, rule) settings, through the cache.

    Args:
        model, tokenizer: The model (see :func:`babel.models.load_model`).
        langs: Languages (same order in every setting).
        settings: ``{name: (PartitionConfig, SelectionRule)}``.
        max_tokens: Token budget per language (None: no token budget).
        max_items: Item budget per language (the same items everywhere; None: all).
        model_name: Name for the cache (default: the model's).
        profile: Base profiling config (corpus, chunking); its rule and token budget are
            replaced by each setting's and the budgets (default: ``ProfileConfig()``).

    Returns:
        ``{name: frequency}``, plus ``"neurons"``: the ``[n_lang, L, N]`` gate-activation
        frequencies (``Profile.neuron_frequency``, independent of partition and rule).
    """

    out: dict[str, np.ndarray] = {}
    profiles = {}
    base = profile or ProfileConfig()
    for name, (pcfg, rule) in settings.items():
        part = get_partition(model, pcfg, model_name=model_name)
        profiles = profile_languages(model, tokenizer, part, langs,
                                     dataclasses.replace(base, rule=rule, max_tokens=max_tokens,
                                                         max_items=max_items),
                                     model_name=model_name, progress=False)
        out[name] = frequency_tensor(profiles)[1]
    if profiles:
        out["neurons"] = np.stack([profiles[lang].neuron_frequency for lang in langs])
    return out
