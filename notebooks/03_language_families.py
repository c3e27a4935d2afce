# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3 (babel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 · Language families or scripts? The paper's headline claim, measured
#
# The paper reports that expert-activation patterns "align with language families". Here that
# claim is made measurable and falsifiable, and family is separated from script (the two are
# confounded: most Indo-European languages of a corpus are written in Latin script).
#
# For each model (multilingual Gemma-3-270M and English-centric SmolLM2-135M):
#
# 1. **Similarity** of two languages = similarity of their expert-frequency vectors (all
#    layers). Main metric: cosine after centring each expert across languages (without it the
#    experts every language uses dominate and every pair looks alike; the raw cosine is shown
#    for contrast, with Pearson and top-k Jaccard).
# 2. **Clusters** (average linkage on 1 − similarity) against family and script labels:
#    adjusted Rand index and NMI, with label-shuffle p-values.
# 3. **Permutation test**: mean same-family pair similarity minus mean different-family pair
#    similarity (same for script), and the *controlled* versions: family effect among
#    same-script pairs only, script effect among same-family pairs only.
# 4. **Per layer** separation curves, **controls** (Hindi/Urdu, Serbian Cyrillic/Latin,
#    Arabic/Persian/Urdu), **Mantel tests** against URIEL linguistic distances and script
#    identity (with partial Mantel tests), **LAPE** language-specific neurons against our
#    language-specific experts, and **robustness** over E, the selection share, a random
#    partition and raw neurons.
#
# Every number below is computed; the conclusion at the end is generated from them.

# %% tags=["parameters"]
models = ["gemma-3-270m", "smollm2-135m"]
languages = "all"
n_experts = 256
method = "kmeans"
projection = "gate"
seed = 0
rule = "cross_layer"
share = 0.2
max_tokens = 3000
robustness_experts = [32, 64, 128, 256]
robustness_shares = [0.1, 0.2, 0.4]
robustness_languages = ["en", "fr", "de", "fi", "tr", "id", "ru", "hi", "ur", "fa", "ar", "he"]
robustness_max_tokens = 300
n_permutations = 1000
n_bootstrap = 200

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown, display

from babel.core import paths
from babel.families.distances import linguistic_distances, mantel, mantel_table, select_languages_matrix
from babel.core.config import METHODS, PROJECTIONS, RULES, PartitionConfig, SelectionRule
from babel.construct.partition import get_partition
from babel.families.bootstrap import bootstrap_profiles
from babel.families.stats import cluster_tree, control_table, group_means, label_table, layer_separation
from babel.figures.families import clustermap
from babel.families.similarity import language_labels, metric_summary, similarity
from babel.families.robustness import robustness_table, setting_frequencies
from babel.families.lape import expert_neurons, lape, overlap_table
from babel.models.loading import EMBEDDED, load_model
from babel.core.notebook import record
from babel.core.params import ParameterError, check_choice, check_number
from babel.data.languages import check_languages
from babel.core.config import ProfileConfig
from babel.profile.classes import classify_experts
from babel.profile.cache import frequency_tensor, profile_languages

if isinstance(models, str):
    models = [models]
if not models or any(m not in EMBEDDED for m in models):
    raise ParameterError(f"models must be a list of {sorted(EMBEDDED)}, got {models!r}")
languages = check_languages(languages)
if len(languages) < 3:
    raise ParameterError(f"languages needs at least 3 languages for the tests, got {languages}")
n_experts = check_number("n_experts", n_experts, kind=int, low=1)
method = check_choice("method", method, METHODS)
projection = check_choice("projection", projection, PROJECTIONS)
seed = check_number("seed", seed, kind=int, low=0)
rule = check_choice("rule", rule, RULES)
share = check_number("share", share, kind=float, low=1e-6, high=1.0)
max_tokens = check_number("max_tokens", max_tokens, kind=int, low=1, allow_none=True)
robustness_experts = [check_number("robustness_experts", e, kind=int, low=1)
                      for e in robustness_experts]
robustness_shares = [check_number("robustness_shares", r, kind=float, low=1e-6, high=1.0)
                     for r in robustness_shares]
robustness_languages = check_languages(robustness_languages, name="robustness_languages")
robustness_max_tokens = check_number("robustness_max_tokens", robustness_max_tokens, kind=int,
                                     low=1, allow_none=True)
n_permutations = check_number("n_permutations", n_permutations, kind=int, low=10)
n_bootstrap = check_number("n_bootstrap", n_bootstrap, kind=int, low=10)
torch.manual_seed(seed)
t_start = time.perf_counter()

# Derived settings (stated, not tuned): the main metric, and the thresholds of "language-specific
# expert" for the LAPE comparison — selected in a language at least as often as the average
# expert (frequency >= r) and z >= 3 against the other languages.
METRIC = "centered"
SPECIFIC_HIGH, SPECIFIC_LOW, SPECIFIC_Z = share, share / 4, 3.0  # as notebook 02
partition_cfg = PartitionConfig(n_experts=n_experts, method=method, projection=projection,
                                seed=seed)
profile_cfg = ProfileConfig(rule=SelectionRule(kind=rule, share=share), max_tokens=max_tokens)


def jsonable(value):
    """Plain JSON for record(): numpy scalars to Python, NaN to None."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def save(fig, content: str, model: str) -> str:
    """Save under paths.figure_file; return the file name (the folder may be redirected)."""
    path = paths.figure_file(content, model)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path.name


# %% [markdown]
# ## Profiles
# Partitions and per-language profiles come from the cache when notebook 02 (same common
# settings) has run; SmolLM2's are computed here on first use.

# %%
loaded, runs = {}, {}
for name in models:
    t0 = time.perf_counter()
    lm, tok = load_model(name)
    loaded[name] = (lm, tok)
    part = get_partition(lm, partition_cfg)
    profiles = profile_languages(lm, tok, part, languages, profile_cfg, progress=False)
    langs, freq = frequency_tensor(profiles)
    runs[name] = {"partition": part, "profiles": profiles, "freq": freq}
    print(f"{name}: {freq.shape[1]} layers x {freq.shape[2]} experts, "
          f"{sum(p.tokens for p in profiles.values())} tokens, {time.perf_counter() - t0:.0f} s")
labels = {f: language_labels(langs, f) for f in ("family", "branch", "script")}
pd.DataFrame({"language": langs, **labels,
              **{f"tokens {m}": [runs[m]["profiles"][lg].tokens for lg in langs]
                 for m in models}})

# %% [markdown]
# ## Which similarity? Raw cosine versus centred
# Mean, min and max similarity over all language pairs, per metric. If raw cosine is close to 1
# for every pair, the shared always-on experts dominate it and it cannot separate languages;
# the table below also shows how each metric separates family and script.

# %%
rows = []
for name in models:
    f = runs[name]["freq"]
    ms = metric_summary(f)
    record(f"{name}/mean_similarity", jsonable(dict(zip(ms.metric, ms["mean"]))))
    for metric in ("centered", "cosine", "pearson", "jaccard"):
        t = label_table(similarity(f, metric=metric), langs, fields=("family", "script"),
                        n_permutations=n_permutations, seed=seed).set_index("labelling")
        m = ms.set_index("metric").loc[metric]
        rows.append({"model": name, "metric": metric, "mean": m["mean"], "min": m["min"],
                     "max": m["max"], "family sep": t.at["family", "separation"],
                     "family p": t.at["family", "p"], "script sep": t.at["script", "separation"],
                     "script p": t.at["script", "p"], "ARI family": t.at["family", "ari"],
                     "ARI script": t.at["script", "ari"]})
metric_table = pd.DataFrame(rows)
metric_table.round(3)

# %% [markdown]
# ## Clustermaps
# Centred-cosine similarity, ordered by the average-linkage tree; the colour bars give family
# (left) and script (right).

# %%
figures = {}
for name in models:
    sim = similarity(runs[name]["freq"], metric=METRIC)
    runs[name]["sim"] = sim
    runs[name]["tree"] = cluster_tree(sim)
    g = clustermap(sim, langs, tree=runs[name]["tree"],
                   title=f"Language similarity (centred cosine of expert frequencies) — {name}")
    figures[f"{name}/clustermap"] = save(g.figure, "lang-clustermap", name)
    plt.show()
    plt.close(g.figure)
record("figures_clustermap", figures)

# %% [markdown]
# ## Agreement with family and with script
# ARI / NMI: the tree cut at as many clusters as the labelling has groups (`ari_p`: label
# shuffles). `separation` = mean same-label minus mean different-label pair similarity, with
# its permutation p-value (`p_floor`: the smallest p these languages allow) and z-score
# against the shuffles, and a bootstrap interval over token chunks (`separation_low/high`; it
# measures token-sampling noise only — the languages themselves are fixed, which is what the
# permutation test is about). `separation_controlled` / `p_controlled`: the same test
# counting only pairs that share the other attribute (family among same-script pairs; script
# among same-family pairs), labels shuffled within those strata. The 2 x 2 table gives the
# mean similarity by (same family?, same script?).

# %%
agreement_tables, means = [], []
for name in models:
    boot = bootstrap_profiles(runs[name]["profiles"], metric=METRIC, n_bootstrap=n_bootstrap,
                              seed=seed)
    runs[name]["boot"] = boot
    t = label_table(runs[name]["sim"], langs, n_permutations=n_permutations, seed=seed,
                    boot=boot)
    t.insert(0, "model", name)
    agreement_tables.append(t)
    means.append(group_means(runs[name]["sim"], langs).assign(model=name))
    ti = t.set_index("labelling")
    record(f"{name}/agreement", jsonable({
        f"{k}_{f}": ti.at[f, c]
        for f in ti.index for k, c in [("ari", "ari"), ("nmi", "nmi"), ("ari_p", "ari_p"),
                                       ("separation", "separation"), ("p", "p"), ("z", "z"),
                                       ("p_controlled", "p_controlled"),
                                       ("separation_low", "separation_low"),
                                       ("separation_high", "separation_high")]}))
    record(f"{name}/bootstrap_max_abs_bias", float(np.abs(boot.bias).max()))
agreement = pd.concat(agreement_tables, ignore_index=True)
display(pd.concat(means).pivot_table(index=["same_family", "same_script"], columns="model",
                                     values="mean").round(3))
agreement.round(4)

# %% [markdown]
# ## Separation over depth
# Per layer, the separation of family and of script as a z-score against label shuffles
# (z > 2 roughly: more than chance). Depth is relative (layer / last layer) so both models
# share an axis.

# %%
fig, axes = plt.subplots(1, len(models), figsize=(5.5 * len(models), 3.8), sharey=True,
                         squeeze=False)
axes = axes[0]
layer_tables = {}
for ax, name in zip(axes, models):
    ls = layer_separation(runs[name]["freq"], {"family": labels["family"],
                                               "script": labels["script"]},
                          metric=METRIC, n_permutations=n_permutations, seed=seed)
    layer_tables[name] = ls
    n_layers = runs[name]["freq"].shape[1]
    for lab, grp in ls.groupby("labelling"):
        ax.plot(grp.layer / max(n_layers - 1, 1), grp.z, marker="o", ms=3, label=lab)
    ax.axhline(2, color="grey", lw=0.8, ls="--")
    ax.set(title=name, xlabel="relative depth (layer / last layer)")
    piv = ls.pivot(index="layer", columns="labelling", values="z")
    record(f"{name}/layer_z", jsonable({lab: list(piv[lab]) for lab in piv.columns}))
    record(f"{name}/layers_script_above_family",
           int((piv["script"] > piv["family"]).sum()) if piv.notna().all().all() else None)
axes[0].set_ylabel("separation z (vs label shuffles)")
axes[0].legend()
fig.tight_layout()
record("figure_layers", save(fig, "family-script-separation-by-layer", "_vs_".join(models)))
plt.show()
pd.concat({m: t.pivot(index="layer", columns="labelling", values="z")
           for m, t in layer_tables.items()}, axis=1).round(2)

# %% [markdown]
# ## Controls
# - **Hindi–Urdu**: one spoken language, two scripts. If activation followed language, this
#   pair would be among the most similar; if it followed script, it would not.
# - **Serbian Cyrillic–Latin**: the *same text* transliterated — the purest script test.
# - **Arabic / Persian / Urdu**: one script, different families or branches. High similarity
#   here means script (or shared vocabulary) drives the pattern.
#
# `rank` 1 = the most similar of all pairs; `percentile` = share of pairs at most as similar;
# `low`/`high`: bootstrap interval.

# %%
control_tables = []
for name in models:
    c = control_table(runs[name]["sim"], langs, boot=runs[name]["boot"])
    c.insert(0, "model", name)
    control_tables.append(c)
    record(f"{name}/controls", jsonable(c.to_dict("records")))
controls = pd.concat(control_tables, ignore_index=True)
controls.round(3) if len(controls) else "no control pair among the selected languages"

# %% [markdown]
# ## Linguistic distances (URIEL) and Mantel tests
# Activation distance = 1 − centred-cosine similarity. Predictors: URIEL genetic, geographic,
# syntactic, phonological and inventory distances (computed from the URIEL data shipped in
# the lang2vec wheel — lang2vec 1.1.2 itself has no `distance()` and does not import under
# current setuptools; see `babel.distances`), plus script identity and family identity
# (0 same / 1 different). Spearman Mantel tests, one-sided; partial tests: genetic
# controlling for script, and script controlling for genetic.

# %%
ling = linguistic_distances(langs)
if ling.dropped:
    print(f"URIEL lacks {list(ling.dropped)}: dropped from the Mantel tests")
mantel_tables = []
for name in models:
    if len(ling.langs) < 3:
        break
    act = 1 - select_languages_matrix(runs[name]["sim"], langs, ling.langs)
    mt = mantel_table(act, ling.matrices, n_permutations=n_permutations, seed=seed)
    mt.insert(0, "model", name)
    mantel_tables.append(mt)
    record(f"{name}/mantel", jsonable(mt.to_dict("records")))
record("mantel_dropped", list(ling.dropped))
mantel_all = pd.concat(mantel_tables, ignore_index=True) if mantel_tables else pd.DataFrame()
mantel_all.round(4)

# %% [markdown]
# ## LAPE language-specific neurons versus our language-specific experts
# LAPE (Tang et al. 2024) on each neuron's gate-activation probability per language: τ = 95th
# percentile of all probabilities, candidates = neurons above τ in some language, keep the
# lowest-entropy 1% of all neurons among them; a kept neuron belongs to each language above τ.
# Our side: experts classified language-specific (`classify_experts`, frequency ≥ r and z ≥ 3
# against the other languages), expanded to their neurons. `enrichment` = overlap / overlap of
# two random neuron sets of the same sizes.

# %%
overlaps, lape_layers = [], {}
for name in models:
    prof = runs[name]["profiles"]
    prob = np.stack([prof[lg].neuron_frequency for lg in langs])
    res = lape(prob, langs)
    classes = classify_experts(runs[name]["freq"], high=SPECIFIC_HIGH, low=SPECIFIC_LOW,
                               z=SPECIFIC_Z)
    ours = expert_neurons(classes.specific, runs[name]["partition"].labels)
    ov = overlap_table(res.specific, ours, langs)
    ov.insert(0, "model", name)
    overlaps.append(ov)
    lape_layers[name] = res.layer_counts().sum(1)
    both, na, nb = int(ov.both.sum()), int(ov.lape.sum()), int(ov.experts.sum())
    expected = float(ov.expected_both.sum())
    record(f"{name}/lape_neurons", int(res.selected.sum()))
    record(f"{name}/lape_overlap", jsonable({
        "lape": na, "experts": nb, "both": both, "expected_both": expected,
        "enrichment": both / expected if expected > 0 else None,
        "jaccard": both / max(na + nb - both, 1), "threshold": res.threshold}))
overlap = pd.concat(overlaps, ignore_index=True)
fig, ax = plt.subplots(figsize=(7, 3.2))
for name, counts in lape_layers.items():
    ax.plot(counts.index / max(len(counts) - 1, 1), counts.values, marker="o", ms=3, label=name)
ax.set(xlabel="relative depth", ylabel="LAPE language-specific neurons",
       title="LAPE neurons per layer (all languages)")
ax.legend()
fig.tight_layout()
record("figure_lape", save(fig, "lape-neurons-by-layer", "_vs_".join(models)))
plt.show()
overlap.round(3)

# %% [markdown]
# ## Robustness
# The main statistics on a cheaper profile (a subset of languages, fewer tokens) of the first
# model, over the number of experts E, the selection share r, a random partition, and raw
# neurons (gate-activation frequencies, no experts). The last row is the main profile
# restricted to the same languages: it separates the effect of the language subset from that
# of the smaller token budget. `*_p_controlled_floor` is the smallest p-value the controlled
# test can reach on these languages (few same-script pairs allow few label arrangements).

# %%
t0 = time.perf_counter()
rob_model = models[0]
rule_main = SelectionRule(kind=rule, share=share)
settings = {}
for e in robustness_experts:
    settings[f"{method} E={e} r={share:g}"] = (
        PartitionConfig(n_experts=e, method=method, projection=projection, seed=seed), rule_main)
for r in robustness_shares:
    settings[f"{method} E={n_experts} r={r:g}"] = (partition_cfg, SelectionRule(kind=rule, share=r))
if method != "random":
    settings[f"random E={n_experts} r={share:g}"] = (
        PartitionConfig(n_experts=n_experts, method="random", seed=seed), rule_main)
rob_freqs = setting_frequencies(*loaded[rob_model], robustness_languages, settings,
                                max_tokens=robustness_max_tokens)
rob_freqs["neurons (gate > 0)"] = rob_freqs.pop("neurons")
if set(robustness_languages) <= set(langs):  # the main profiles on the same languages
    idx = [langs.index(lg) for lg in robustness_languages]
    rob_freqs[f"main profiles ({max_tokens} tokens)"] = runs[rob_model]["freq"][idx]
robustness = robustness_table(rob_freqs, robustness_languages, metric=METRIC,
                              n_permutations=n_permutations, seed=seed)
robustness.insert(0, "model", rob_model)
record("robustness", jsonable(robustness.to_dict("records")))
record("robustness_seconds", round(time.perf_counter() - t0, 1))
robustness.round(4)

# %% [markdown]
# ## The two models side by side
# Does English-centric SmolLM2 separate languages differently from multilingual Gemma? The
# Mantel test between the two models' activation distances says whether they order language
# pairs alike.

# %%
side = agreement.pivot_table(index="labelling", columns="model",
                             values=["ari", "nmi", "separation", "p", "p_controlled"])
if len(models) >= 2:
    a, b = models[:2]
    mm = mantel(1 - runs[a]["sim"], 1 - runs[b]["sim"], n_permutations=n_permutations, seed=seed)
    record("models_mantel", jsonable({"r": mm.r, "p": mm.p_value}))
    print(f"Mantel between {a} and {b} activation distances: r = {mm.r:.3f}, p = {mm.p_value:.4f}")
side.round(4)

# %% [markdown]
# ## Conclusion
# Generated from the numbers above (α = 0.05); rerunning with other parameters rewrites it.

# %%
ALPHA = 0.05


def sig(p) -> bool:
    return p is not None and bool(np.isfinite(p)) and p < ALPHA


def fmt_p(p) -> str:
    return "n/a" if p is None or not np.isfinite(p) else f"{p:.3g}"


def ordinal(x: float) -> str:
    n = round(x)
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def verdict(p, floor) -> str:
    if p is None or not np.isfinite(p):
        return "not testable: no such pair"
    if p < ALPHA:
        return "significant"
    return "not significant" if floor < ALPHA else "not testable with these languages"


def effect(row, what: str, control: str) -> str:
    if not np.isfinite(row.separation):
        return f"no two languages share a {what} here"
    text = (f"same-{what} pairs are {row.separation:+.3f} more similar than the rest "
            f"(p = {fmt_p(row.p)}, {verdict(row.p, row.p_floor)}; ARI {fmt_p(row.ari)})")
    if not np.isfinite(row.separation_controlled):
        return text + f"; no same-{control} pairs differ in {what}"
    return (text + f"; among same-{control} pairs {row.separation_controlled:+.3f} "
            f"(p = {fmt_p(row.p_controlled)}, "
            f"{verdict(row.p_controlled, row.p_controlled_floor)})")


ag_all = agreement.set_index(["model", "labelling"])
lines, partial_verdicts, best_predictor = [], {}, {}
for name in models:
    ag = ag_all.loc[name]
    text = (f"**{name}.** Family: {effect(ag.loc['family'], 'family', 'script')}. "
            f"Branch: {effect(ag.loc['branch'], 'branch', 'script')}. "
            f"Script: {effect(ag.loc['script'], 'script', 'family')}.")
    mt = pd.concat(mantel_tables).query("model == @name") if mantel_tables else pd.DataFrame()
    if len(mt):
        simple = mt[mt.controlling_for == ""].dropna(subset=["r"])
        best = simple.iloc[0]
        best_predictor[name] = f"{best.predictor} (r = {best.r:.2f})"
        text += (f" Of the linguistic distances, **{best.predictor}** matches activation "
                 f"distance best (Mantel r = {best.r:.2f}, p = {fmt_p(best.p)}).")
        part = mt[mt.controlling_for != ""].set_index("predictor")
        if {"genetic", "script"} <= set(part.index):
            g, s = part.loc["genetic"], part.loc["script"]
            if sig(s.p) and (not sig(g.p) or s.r > g.r):
                partial_verdicts[name] = "script"
            elif sig(g.p) and (not sig(s.p) or g.r > s.r):
                partial_verdicts[name] = "genealogy"
            else:
                partial_verdicts[name] = "neither"
            text += (f" Partial Mantel: genetic distance controlling for script "
                     f"r = {fmt_p(g.r)} (p = {fmt_p(g.p)}); script controlling for genetic "
                     f"distance r = {fmt_p(s.r)} (p = {fmt_p(s.p)}).")
    ctrl = controls.query("model == @name").set_index("pair") if len(controls) else []
    if len(ctrl):
        text += " Controls (percentile among all pairs): " + "; ".join(
            f"{p} {ordinal(r.percentile)}" for p, r in ctrl.iterrows()) + "."
        if "sr-Cyrl–sr-Latn" in ctrl.index:
            pct = ctrl.loc["sr-Cyrl–sr-Latn", "percentile"]
            text += (" Identical Serbian text in two scripts is "
                     + ("among the most similar pairs, so a change of script alone does not "
                        "change the pattern much." if pct >= 90 else
                        "*not* among the most similar pairs: the script changes the "
                        "activation pattern even when the content is identical."))
    ov = overlap.query("model == @name")
    expected = ov.expected_both.sum()
    text += (f" LAPE assigns {int(ov.lape.sum())} (neuron, language) pairs; "
             f"{int(ov.both.sum())} lie inside our language-specific experts"
             + (f" ({ov.both.sum() / expected:.1f}x chance)." if expected > 0 else "."))
    lines.append(text)


def models_where(label: str, col: str) -> list[str]:
    return [m for m in models if sig(ag_all.loc[(m, label), col])]


fam, fam_c = models_where("family", "p"), models_where("family", "p_controlled")
br, br_c = models_where("branch", "p"), models_where("branch", "p_controlled")
scr = models_where("script", "p")


def on(ms: list[str]) -> str:
    return ", ".join(ms) if ms else "no model"


summary = (
    f"**Do activation patterns follow language families?** Top-level family: significant on "
    f"{on(fam)}; among same-script pairs on {on(fam_c)}. Branch (genus): significant on "
    f"{on(br)}; among same-script pairs on {on(br_c)}. Script: significant on {on(scr)}."
)
if partial_verdicts:
    summary += " **Family or script?** By partial Mantel tests, " + "; ".join(
        f"{m}: " + {"script": "script explains activation distance better than genealogy",
                    "genealogy": "genealogy explains activation distance better than script",
                    "neither": "neither clearly dominates"}[v]
        for m, v in partial_verdicts.items()) + "."
if best_predictor:
    summary += (" The single distance that best matches activation distance: "
                + "; ".join(f"{m}: {v}" for m, v in best_predictor.items()) + ".")
n_rob = len(robustness)
summary += (f" Robustness ({rob_model}, {n_rob} settings on {len(robustness_languages)} "
            f"languages): family significant in {int((robustness.family_p < ALPHA).sum())}, "
            f"family among same-script pairs in "
            f"{int((robustness.family_p_controlled < ALPHA).sum())}, script in "
            f"{int((robustness.script_p < ALPHA).sum())}, script among same-family pairs in "
            f"{int((robustness.script_p_controlled < ALPHA).sum())}.")
if len(models) >= 2:
    summary += (f" The two models order language pairs alike to Mantel r = {mm.r:.2f} "
                f"(p = {fmt_p(mm.p_value)}).")
conclusion = "\n\n".join([summary, *lines])
record("conclusion", conclusion)
record("seconds", round(time.perf_counter() - t_start, 1))
Markdown(conclusion)
