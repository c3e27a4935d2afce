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
# For the experiment's model and each of `compare_models` (by default multilingual
# Gemma-3-270M and English-centric SmolLM2-135M):
#
# 1. **Similarity** of two languages = similarity of their expert-frequency vectors (all
#    layers). Main metric: cosine after centring each expert across languages (without it the
#    experts every language uses dominate and every pair looks alike; the raw cosine is shown
#    for contrast, with Pearson and top-k Jaccard).
# 2. **Clusters** (average linkage on 1 − similarity) against family, branch and script
#    labels: adjusted Rand index and NMI, with label-shuffle p-values.
# 3. **Permutation test**: mean same-family pair similarity minus mean different-family pair
#    similarity (same for script), and the *controlled* versions: family effect among
#    same-script pairs only, script effect among same-family pairs only.
# 4. **Per layer** separation curves, **controls** (Hindi/Urdu, Serbian Cyrillic/Latin,
#    Arabic/Persian/Urdu), **Mantel tests** against URIEL linguistic distances, genealogy at
#    branch resolution and script identity (with partial Mantel tests), **LAPE**
#    language-specific neurons against our language-specific experts, and **robustness** over
#    E, the selection share, a random partition and raw neurons.
#
# Every number below is computed by `babel.families`; the conclusion at the end is generated
# from them by a stated rule (`babel.families.conclusion`).

# %% tags=["parameters"]
model = "gemma-3-270m"
languages = "all"
corpus = "builtin"
corpus_path = None  # a folder of <code>.txt / <code>.jsonl files: your own text
languages_csv = None  # your language table, merged over data/languages.csv
n_experts = 256
method = "kmeans"
projection = "gate"
seed = 0
rule = "cross_layer"
share = 0.2
z = 1.0
max_tokens = None
max_items = 100
seq_len = 128
batch_size = 8
high_factor = 1.0
low_factor = 0.25
specific_z = 3.0
compare_models = ["smollm2-135m"]
robustness_experts = [32, 64, 128, 256]
robustness_shares = [0.1, 0.2, 0.4]
robustness_languages = ["en", "fr", "de", "fi", "tr", "id", "ru", "hi", "ur", "fa", "ar", "he"]
robustness_max_items = 12
ablation_max_tokens = 3000
n_permutations = 1000
n_bootstrap = 200

# %%
import time

import matplotlib.pyplot as plt
from IPython.display import Markdown, display

from babel.core.notebook import record
from babel.experiment import ExperimentConfig
from babel.families import analysis as fa
from babel.families.ablation import budget_comparison
from babel.families.conclusion import answer, conclusion_text, confounded_labellings
from babel.families.robustness import robustness_settings
from babel.figures.families import clustermap, lape_layers_plot, layer_separation_plot, save_figure

# %%
t_start = time.perf_counter()
exp = ExperimentConfig.from_namespace(globals())
opt = fa.FamilyOptions(compare_models, robustness_experts, robustness_shares,
                       robustness_languages, robustness_max_items, n_permutations, n_bootstrap)
loaded, runs = {}, []
for name in opt.models(exp.model):
    lm, tok = loaded[name] = exp.load_model(name)
    part = exp.build_partition(lm, model_name=name)
    profiles = fa.with_genealogy(exp.profiles(lm, tok, part, model_name=name, progress=False))
    runs.append(fa.FamilyRun(name, part, profiles, exp.classify(exp.frequencies(profiles)[1])))
tested = runs if len(runs[0].langs) >= fa.MIN_LANGUAGES else []
if not tested:
    print(f"only {len(runs[0].langs)} languages with a family: the tests need >= 3, skipped")
stat = {"n_permutations": opt.n_permutations, "seed": exp.partition.seed}
fa.language_table(runs)

# %% [markdown]
# ## Which similarity? Raw cosine versus centred
# Mean, min and max similarity over all language pairs, per metric. If raw cosine is close to 1
# for every pair, the shared always-on experts dominate it and it cannot separate languages;
# the table also shows how each metric separates family and script.

# %%
metric_table, rec = fa.metric_section(tested, **stat)
for key, value in rec.items():
    record(key, value)
metric_table.round(3)

# %% [markdown]
# ## Clustermaps
# Centred-cosine similarity, ordered by the average-linkage tree; the colour bars give family
# (left) and script (right).

# %%
figures = {}
for run in tested:
    g = clustermap(run.sim, run.langs, tree=run.tree,
                   title=f"Language similarity (centred cosine of expert frequencies) — {run.name}")
    figures[f"{run.name}/clustermap"] = save_figure(g.figure, "lang-clustermap", run.name)
    plt.show()
    plt.close(g.figure)
record("figures_clustermap", figures)

# %% [markdown]
# ## Agreement with family, branch and script
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
agreement, means, rec = fa.agreement_section(tested, n_bootstrap=opt.n_bootstrap, **stat)
for key, value in rec.items():
    record(key, value)
display(means.round(3))
agreement.round(4)

# %% [markdown]
# ## Separation over depth
# Per layer, the separation of family and of script as a z-score against label shuffles
# (z > 2 roughly: more than chance). Depth is relative (layer / last layer) so the models
# share an axis.

# %%
layer_tables, layer_z, rec = fa.layer_section(tested, **stat)
for key, value in rec.items():
    record(key, value)
fig = layer_separation_plot(layer_tables, {r.name: r.n_layers for r in tested})
record("figure_layers", save_figure(fig, "family-script-separation-by-layer",
                                    "_vs_".join(r.name for r in runs)))
plt.show()
layer_z.round(2)

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
controls, rec = fa.controls_section(tested)
for key, value in rec.items():
    record(key, value)
controls.round(3) if len(controls) else "no control pair among the selected languages"

# %% [markdown]
# ## Linguistic distances (URIEL), genealogy by branch, and Mantel tests
# Activation distance = 1 − centred-cosine similarity. Predictors: URIEL genetic, geographic,
# syntactic, phonological and inventory distances (computed from the URIEL data shipped in
# the lang2vec wheel; see `babel.families.distances`), script identity and family identity
# (0 same / 1 different), and **genealogical (branch)**: 0 same branch, 0.5 same family but
# another branch, 1 different family. Spearman Mantel tests, one-sided; partial tests: genetic
# and genealogical (branch) distance controlling for script, and script controlling for each.

# %%
mantel_all, ling, rec = fa.mantel_section(tested, **stat)
for key, value in rec.items():
    record(key, value)
if ling.dropped:
    print(f"URIEL lacks {list(ling.dropped)}: dropped from the Mantel tests")
mantel_all.round(4)

# %% [markdown]
# ## LAPE language-specific neurons versus our language-specific experts
# LAPE (Tang et al. 2024) on each neuron's gate-activation probability per language: τ = 95th
# percentile of all probabilities, candidates = neurons above τ in some language, keep the
# lowest-entropy 1% of all neurons among them; a kept neuron belongs to each language above τ.
# Our side: the experiment's language-specific experts (`exp.classify`: the one class
# definition of notebook 02, frequency ≥ high and z ≥ `specific_z` against the other
# languages), expanded to their neurons. `enrichment` = overlap / overlap of two random neuron
# sets of the same sizes.

# %%
overlap, lape_layers, rec = fa.lape_section(tested)
for key, value in rec.items():
    record(key, value)
fig = lape_layers_plot(lape_layers)
record("figure_lape", save_figure(fig, "lape-neurons-by-layer", "_vs_".join(r.name for r in runs)))
plt.show()
overlap.round(3)

# %% [markdown]
# ## Robustness
# The main statistics on a cheaper profile (a subset of languages, the first
# `robustness_max_items` items of each: the same content in every language) of the
# experiment's model, over the number of experts E, the selection share r, a random partition,
# and raw neurons (gate-activation frequencies, no experts). The last row is the main profile
# restricted to the same languages: it separates the effect of the language subset from that
# of the smaller budget. `*_p_controlled_floor` is the smallest p-value the controlled
# test can reach on these languages (few same-script pairs allow few label arrangements).

# %%
rob_langs = [lg for lg in exp.subset(opt.robustness_languages, name="robustness_languages",
                                     fallback=3) if lg in runs[0].langs]
settings = robustness_settings(exp.partition, exp.rule, experts=opt.robustness_experts,
                               shares=opt.robustness_shares)
robustness, rec = fa.robustness_section(
    *loaded[exp.model], rob_langs, settings, max_items=opt.robustness_max_items,
    profile=exp.profile, main=runs[0], main_label=f"main profiles ({exp.budget})", **stat)
for key, value in rec.items():
    record(key, value)
robustness.round(4)

# %% [markdown]
# ## Same items, or the same number of tokens?
# The main profiles' budget decides which text each language contributes. With the same
# items in every language (content-parallel), language differences are not content
# differences; with the same number of tokens, a language whose tokenizer splits words
# finely (Swahili: ~1.8 Gemma tokens per English token) covers fewer items. The same rule
# answers the question under both budgets, on the experiment's model: if the outcome or the
# evidence moves, the budget matters.

# %%
other = exp.other_budget(ablation_max_tokens)
p_other = other.profiles(*loaded[exp.model], runs[0].partition, languages=runs[0].langs,
                         progress=False)
budgets = {exp.budget: runs[0], other.budget: fa.FamilyRun(
    exp.model, runs[0].partition, p_other, other.classify(other.frequencies(p_other)[1]))}
budget_table, rec = budget_comparison(budgets if tested else {}, **stat)
for key, value in rec.items():
    record(key, value)
budget_table.round(3)

# %% [markdown]
# ## The models side by side
# Does English-centric SmolLM2 separate languages differently from multilingual Gemma? The
# Mantel test between the first two models' activation distances says whether they order
# language pairs alike.

# %%
side, models_mantel, rec = fa.models_section(tested, agreement, **stat)
for key, value in rec.items():
    record(key, value)
if models_mantel is not None:
    print(f"Mantel between the first two models' activation distances: r = {models_mantel.r:.3f}"
          f", p = {models_mantel.p_value:.4f}")
side.round(4)

# %% [markdown]
# ## Conclusion
# Generated from the numbers above (α = 0.05) by the rule of `babel.families.conclusion`;
# rerunning with other parameters rewrites it. **The rule**: three tests per side.
# *Families*: (1) the clusters match branches or families (ARI shuffle p < α; a labelling that
# groups these languages exactly as the scripts do does not count); (2) the genealogical
# (branch) distance predicts activation distance controlling for script (partial Mantel
# p < α, r > 0); (3) every same-language pair in two scripts present (Serbian Cyrillic/Latin,
# Hindi/Urdu) is in the top decile of similar pairs. *Scripts*: (1) the clusters match scripts;
# (2) script predicts activation distance controlling for branch distance; (3) a
# same-language pair in two scripts is less similar than the median pair. A side is supported
# when a strict majority of its testable tests pass: the answer is families, scripts, both or
# neither. The conclusion opens with the experiment model's one-sentence answer.

# %%
confounded = confounded_labellings(runs[0].langs)
answers = [answer(agreement, mantel_all, controls, model=r.name, confounded=confounded)
           for r in tested]
conclusion = conclusion_text(answers, agreement=agreement, mantel=mantel_all,
                             controls=controls, overlap=overlap, robustness=robustness,
                             robustness_languages=len(rob_langs), models_mantel=models_mantel)
record("answer", answers[0].to_dict() if answers else None)
record("answers", {a.model: a.to_dict() for a in answers})
record("conclusion", conclusion)
record("seconds", round(time.perf_counter() - t_start, 1))
Markdown(conclusion)
