"""Notebook 03's sections, one function each: a table (DataFrame) and the values it records.

Every section takes the analysed models as :class:`FamilyRun` objects (a model's partition,
per-language profiles, stacked frequencies, expert classes and centred-cosine similarity)
and returns its table plus ``{record name: JSON value}`` (:func:`babel.core.artifacts.jsonable`
already applied), so the notebook only displays and records. The statistics themselves live in
:mod:`babel.families.stats`, :mod:`babel.families.distances`, :mod:`babel.families.lape` and
:mod:`babel.families.robustness`; this module only assembles them per model.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from babel.construct.partition import Partition
from babel.core.artifacts import jsonable
from babel.core.config import ProfileConfig
from babel.core.params import ParameterError, check_number, check_str
from babel.data.languages import get_language
from babel.families.bootstrap import BootstrapResult, bootstrap_profiles
from babel.families.distances import (
    LinguisticDistances,
    MantelResult,
    linguistic_distances,
    mantel,
    mantel_table,
    select_languages_matrix,
)
from babel.families.lape import expert_neurons, lape, overlap_table
from babel.families.robustness import robustness_table, setting_frequencies
from babel.families.similarity import METRICS, language_labels, metric_summary, similarity
from babel.families.stats import (
    cluster_tree,
    control_table,
    cut_tree,
    group_means,
    label_table,
    layer_separation,
)
from babel.profile.classes import ExpertClasses
from babel.profile.profiler import Profile

#: The main similarity metric (module docstring of :mod:`babel.families.similarity`).
METRIC = "centered"

Records = dict[str, Any]
#: Fewest languages the family tests need (clusters, permutation and Mantel tests).
MIN_LANGUAGES = 3


@dataclasses.dataclass(frozen=True)
class FamilyOptions:
    """Notebook 03's own parameters, validated (one-line errors naming the parameter).

    Attributes:
        compare_models: Models analysed beside the experiment's model.
        robustness_experts: Numbers of experts E of the robustness settings.
        robustness_shares: Selection shares r of the robustness settings.
        robustness_languages: Requested robustness languages (``exp.subset`` picks them).
        robustness_max_items: Items per language of the robustness profiles (the first N of
            the profiling split: the same content in every language).
        n_permutations: Label shuffles / Mantel permutations (>= 10).
        n_bootstrap: Bootstrap resamples of token chunks (>= 10).
    """

    compare_models: tuple[str, ...] = ()
    robustness_experts: tuple[int, ...] = ()
    robustness_shares: tuple[float, ...] = ()
    robustness_languages: Any = "all"
    robustness_max_items: int | None = 12
    n_permutations: int = 1000
    n_bootstrap: int = 200

    def __post_init__(self) -> None:
        def listed(value: Any) -> tuple:
            if isinstance(value, (str, int, float)):
                return (value,)
            return tuple(value or ())

        fix = object.__setattr__
        fix(self, "compare_models", tuple(check_str("compare_models", m)
                                          for m in listed(self.compare_models)))
        fix(self, "robustness_experts", tuple(
            check_number("robustness_experts", e, kind=int, low=1)
            for e in listed(self.robustness_experts)))
        fix(self, "robustness_shares", tuple(
            check_number("robustness_shares", r, low=1e-6, high=1.0)
            for r in listed(self.robustness_shares)))
        fix(self, "robustness_max_items", check_number(
            "robustness_max_items", self.robustness_max_items, kind=int, low=1,
            allow_none=True))
        fix(self, "n_permutations", check_number("n_permutations", self.n_permutations,
                                                 kind=int, low=10))
        fix(self, "n_bootstrap", check_number("n_bootstrap", self.n_bootstrap, kind=int,
                                              low=10))
        if self.robustness_languages is None:
            raise ParameterError("robustness_languages must be a list of codes or 'all'")

    def models(self, model: str) -> list[str]:
        """``[model] + compare_models`` without duplicates, in that order."""
        return list(dict.fromkeys([model, *self.compare_models]))


@dataclasses.dataclass
class FamilyRun:
    """One model's inputs to the family analysis.

    Attributes:
        name: Model name (record prefix).
        partition: Its expert partition.
        profiles: ``{language: Profile}`` in the analysed order.
        classes: Expert classes of the experiment's one definition (``exp.classify(freq)``).
        langs: Languages (order of every axis below).
        freq: ``[n_lang, L, E]`` frequencies.
        sim: ``[n, n]`` similarity under :data:`METRIC`.
        tree: Average-linkage tree of ``sim``.
        boot: Bootstrap of ``sim`` (set by :func:`agreement_section`).
    """

    name: str
    partition: Partition
    profiles: dict[str, Profile]
    classes: ExpertClasses
    langs: list[str] = dataclasses.field(init=False)
    freq: np.ndarray = dataclasses.field(init=False)
    sim: np.ndarray = dataclasses.field(init=False)
    tree: np.ndarray = dataclasses.field(init=False)
    boot: BootstrapResult | None = None

    def __post_init__(self) -> None:
        self.langs = list(self.profiles)
        self.freq = np.stack([self.profiles[lg].frequency for lg in self.langs])
        self.sim = similarity(self.freq, metric=METRIC)
        self.tree = cluster_tree(self.sim)

    @property
    def n_layers(self) -> int:
        return int(self.freq.shape[1])


def with_genealogy(profiles: Mapping[str, Profile]) -> dict[str, Profile]:
    """The profiles of the languages that have a family and branch in the language table.

    A language of the user's text that is in no table (or a row without family) has no
    genealogy: every statistic of this notebook compares families, so it is left out, with a
    one-line note that says how to add it (a ``languages_csv`` row with family and branch).
    """
    kept = {lg: p for lg, p in profiles.items() if get_language(lg).has_genealogy}
    left = [lg for lg in profiles if lg not in kept]
    if left:
        print(f"note: the family statistics leave out {left}: no family/branch in the language "
              "table (add a row with them through languages_csv)")
    return kept


def language_table(runs: Sequence[FamilyRun]) -> pd.DataFrame:
    """Languages with family, branch, script and each model's profiled tokens."""
    langs = runs[0].langs
    labels = {f: language_labels(langs, f) for f in ("family", "branch", "script")}
    tokens = {f"tokens {r.name}": [r.profiles[lg].tokens for lg in langs] for r in runs}
    return pd.DataFrame({"language": langs, **labels, **tokens})


def metric_section(runs: Sequence[FamilyRun], *, n_permutations: int = 1000,
                   seed: int = 0) -> tuple[pd.DataFrame, Records]:
    """Raw versus centred similarity: spread of each metric and how it separates the labels.

    Returns:
        One row per (model, metric): ``mean, min, max`` pair similarity, family and script
        separation with permutation p-values and ARIs; records ``{name}/mean_similarity``
        (``{metric: mean}``).
    """
    rows, rec = [], {}
    for run in runs:
        ms = metric_summary(run.freq).set_index("metric")
        rec[f"{run.name}/mean_similarity"] = jsonable(ms["mean"].to_dict())
        for metric in METRICS:
            t = label_table(similarity(run.freq, metric=metric), run.langs,
                            fields=("family", "script"), n_permutations=n_permutations,
                            seed=seed).set_index("labelling")
            rows.append({"model": run.name, "metric": metric, "mean": ms.at[metric, "mean"],
                         "min": ms.at[metric, "min"], "max": ms.at[metric, "max"],
                         "family sep": t.at["family", "separation"],
                         "family p": t.at["family", "p"],
                         "script sep": t.at["script", "separation"],
                         "script p": t.at["script", "p"], "ARI family": t.at["family", "ari"],
                         "ARI script": t.at["script", "ari"]})
    return pd.DataFrame(rows), rec


_AGREEMENT_KEYS = ("ari", "nmi", "ari_p", "separation", "p", "z", "p_controlled",
                   "separation_low", "separation_high")


def clusters(run: FamilyRun, labelling: str) -> list[int] | None:
    """Cluster ids of the tree cut at the labelling's group count (None when undefined)."""
    k = len(set(language_labels(run.langs, labelling)))
    if k < 2 or k >= len(run.langs):
        return None
    return [int(c) for c in cut_tree(run.tree, k)]


def agreement_section(runs: Sequence[FamilyRun], *, n_permutations: int = 1000,
                      n_bootstrap: int = 200, seed: int = 0
                      ) -> tuple[pd.DataFrame, pd.DataFrame, Records]:
    """Clusters and separation against family, branch and script, per model.

    Bootstraps each model's similarity over token chunks (stored in ``run.boot``).

    Returns:
        ``(agreement, means, records)``: :func:`babel.families.stats.label_table` rows with a
        ``model`` column; the 2 x 2 mean similarity by (same family?, same script?) per model;
        records ``{name}/agreement`` (``{key_labelling: value}``),
        ``{name}/bootstrap_max_abs_bias`` and ``{name}/clusters`` (``{labelling: cluster
        ids}``, the cut tree the ARI/NMI compare with the labels).
    """
    if not runs:
        return pd.DataFrame(), pd.DataFrame(), {}
    tables, means, rec = [], [], {}
    for run in runs:
        run.boot = bootstrap_profiles(run.profiles, metric=METRIC, n_bootstrap=n_bootstrap,
                                      seed=seed)
        t = label_table(run.sim, run.langs, n_permutations=n_permutations, seed=seed,
                        boot=run.boot)
        t.insert(0, "model", run.name)
        tables.append(t)
        means.append(group_means(run.sim, run.langs).assign(model=run.name))
        ti = t.set_index("labelling")
        rec[f"{run.name}/agreement"] = jsonable(
            {f"{k}_{f}": ti.at[f, k] for f in ti.index for k in _AGREEMENT_KEYS})
        rec[f"{run.name}/bootstrap_max_abs_bias"] = float(np.abs(run.boot.bias).max())
        rec[f"{run.name}/clusters"] = {f: clusters(run, f) for f in ti.index}
    table = pd.concat(tables, ignore_index=True)
    pivot = pd.concat(means).pivot_table(index=["same_family", "same_script"],
                                         columns="model", values="mean")
    return table, pivot, rec


def layer_section(runs: Sequence[FamilyRun], *, n_permutations: int = 1000, seed: int = 0
                  ) -> tuple[dict[str, pd.DataFrame], pd.DataFrame, Records]:
    """Per-layer separation z of family and of script, per model.

    Returns:
        ``(tables, wide, records)``: ``{name: layer_separation table}``; the z-scores side by
        side (layers x (model, labelling)); records ``{name}/layer_z`` (``{labelling: [z per
        layer]}``) and ``{name}/layers_script_above_family`` (None if a z is undefined).
    """
    if not runs:
        return {}, pd.DataFrame(), {}
    tables, rec = {}, {}
    for run in runs:
        labels = {f: language_labels(run.langs, f) for f in ("family", "script")}
        ls = layer_separation(run.freq, labels, metric=METRIC, n_permutations=n_permutations,
                              seed=seed)
        tables[run.name] = ls
        piv = ls.pivot(index="layer", columns="labelling", values="z")
        rec[f"{run.name}/layer_z"] = jsonable({lab: list(piv[lab]) for lab in piv.columns})
        rec[f"{run.name}/layers_script_above_family"] = (
            int((piv["script"] > piv["family"]).sum()) if piv.notna().all().all() else None)
    wide = pd.concat({m: t.pivot(index="layer", columns="labelling", values="z")
                      for m, t in tables.items()}, axis=1)
    return tables, wide, rec


def controls_section(runs: Sequence[FamilyRun]) -> tuple[pd.DataFrame, Records]:
    """The control pairs present (Hindi/Urdu, Serbian Cyrillic/Latin, Arabic/Persian/Urdu).

    Returns:
        :func:`babel.families.stats.control_table` rows with a ``model`` column (empty when no
        pair is present) and records ``{name}/controls`` (list of row dicts).
    """
    if not runs:
        return pd.DataFrame(), {}
    tables, rec = [], {}
    for run in runs:
        c = control_table(run.sim, run.langs, boot=run.boot)
        c.insert(0, "model", run.name)
        tables.append(c)
        rec[f"{run.name}/controls"] = jsonable(c.to_dict("records"))
    return pd.concat(tables, ignore_index=True), rec


def mantel_section(runs: Sequence[FamilyRun], *, n_permutations: int = 1000, seed: int = 0
                   ) -> tuple[pd.DataFrame, LinguisticDistances, Records]:
    """Mantel tests of activation distance (1 - similarity) against linguistic distances.

    Predictors: URIEL's five distances, script, family and the branch-resolution genealogy
    (:func:`babel.families.distances.branch_distance`), then the partial tests of
    :data:`babel.families.distances.PARTIALS`. Languages URIEL lacks are dropped.

    Returns:
        ``(table, distances, records)``: rows of :func:`mantel_table` with a ``model`` column
        (empty when fewer than 3 languages remain); records ``{name}/mantel`` and
        ``mantel_dropped``.
    """
    if not runs:
        return pd.DataFrame(), LinguisticDistances((), (), {}), {}
    ling = linguistic_distances(runs[0].langs)
    rec: Records = {}
    tables = []
    for run in runs:
        if len(ling.langs) < 3:
            break
        act = 1 - select_languages_matrix(run.sim, run.langs, ling.langs)
        mt = mantel_table(act, ling.matrices, n_permutations=n_permutations, seed=seed)
        mt.insert(0, "model", run.name)
        tables.append(mt)
        rec[f"{run.name}/mantel"] = jsonable(mt.to_dict("records"))
    rec["mantel_dropped"] = list(ling.dropped)
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    return table, ling, rec


def lape_section(runs: Sequence[FamilyRun]
                 ) -> tuple[pd.DataFrame, dict[str, pd.Series], Records]:
    """LAPE language-specific neurons against the neurons of our language-specific experts.

    Our side is ``run.classes.specific`` (the experiment's one class definition) expanded
    through the partition's labels.

    Returns:
        ``(overlap, per_layer, records)``: :func:`overlap_table` rows with a ``model`` column;
        ``{name: LAPE neurons per layer, all languages}``; records ``{name}/lape_neurons`` and
        ``{name}/lape_overlap`` (totals, chance overlap, enrichment, Jaccard, τ).
    """
    if not runs:
        return pd.DataFrame(), {}, {}
    tables, per_layer, rec = [], {}, {}
    for run in runs:
        prob = np.stack([run.profiles[lg].neuron_frequency for lg in run.langs])
        res = lape(prob, run.langs)
        ours = expert_neurons(run.classes.specific, run.partition.labels)
        ov = overlap_table(res.specific, ours, run.langs)
        ov.insert(0, "model", run.name)
        tables.append(ov)
        per_layer[run.name] = res.layer_counts().sum(axis=1)
        both, na, nb = int(ov.both.sum()), int(ov.lape.sum()), int(ov.experts.sum())
        expected = float(ov.expected_both.sum())
        rec[f"{run.name}/lape_neurons"] = int(res.selected.sum())
        rec[f"{run.name}/lape_overlap"] = jsonable({
            "lape": na, "experts": nb, "both": both, "expected_both": expected,
            "enrichment": both / expected if expected > 0 else None,
            "jaccard": both / max(na + nb - both, 1), "threshold": res.threshold})
    return pd.concat(tables, ignore_index=True), per_layer, rec


def robustness_section(model: Any, tokenizer: Any, langs: Sequence[str],
                       settings: Mapping[str, tuple], *, max_items: int | None,
                       profile: ProfileConfig, main: FamilyRun | None = None,
                       main_label: str = "main profiles", n_permutations: int = 1000,
                       seed: int = 0, model_name: str | None = None
                       ) -> tuple[pd.DataFrame, Records]:
    """The main statistics over the robustness settings, on a cheaper profile of one model.

    Args:
        model, tokenizer: The model profiled.
        langs: Languages of the robustness profiles.
        settings: :func:`babel.families.robustness.robustness_settings`.
        max_items: Items per language (the same items in every language).
        profile: The experiment's profiling config (corpus, chunking).
        main: The model's main run: when it has every language of ``langs``, its profiles
            restricted to them make the last row (separates subset from budget).
        main_label: Name of that row.
        n_permutations, seed: Of the tests.
        model_name: Cache name of the model.

    Returns:
        :func:`robustness_table` (with ``model``) and records ``robustness``,
        ``robustness_seconds``.
    """
    if not settings or len(langs) < MIN_LANGUAGES:
        return pd.DataFrame(), {}
    t0 = time.perf_counter()
    freqs = setting_frequencies(model, tokenizer, langs, settings, max_tokens=None,
                                max_items=max_items, profile=profile, model_name=model_name)
    if "neurons" in freqs:
        freqs["neurons (gate > 0)"] = freqs.pop("neurons")
    if main is not None and set(langs) <= set(main.langs):
        freqs[main_label] = main.freq[[main.langs.index(lg) for lg in langs]]
    table = robustness_table(freqs, langs, metric=METRIC, n_permutations=n_permutations,
                             seed=seed)
    name = model_name or getattr(model, "babel_name", "model")
    table.insert(0, "model", name)
    return table, {"robustness": jsonable(table.to_dict("records")),
                   "robustness_seconds": round(time.perf_counter() - t0, 1)}


def models_section(runs: Sequence[FamilyRun], agreement: pd.DataFrame, *,
                   n_permutations: int = 1000, seed: int = 0
                   ) -> tuple[pd.DataFrame, MantelResult | None, Records]:
    """The models side by side, and the Mantel test between the first two models' distances.

    Returns:
        ``(side, result, records)``: ARI, NMI, separation and p-values by labelling x model;
        the Mantel result (None with one model); record ``models_mantel`` (``{r, p}``).
    """
    if not len(agreement):
        return pd.DataFrame(), None, {}
    side = agreement.pivot_table(index="labelling", columns="model",
                                 values=["ari", "nmi", "separation", "p", "p_controlled"])
    if len(runs) < 2:
        return side, None, {}
    a, b = runs[:2]
    mm = mantel(1 - a.sim, 1 - b.sim, n_permutations=n_permutations, seed=seed)
    return side, mm, {"models_mantel": jsonable({"r": mm.r, "p": mm.p_value})}
