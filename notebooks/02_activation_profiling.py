# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3 (babel)
#     language: python
#     name: babel
# ---

# %% [markdown]
# # 02 · Activation profiling: how often each expert is highly activated, per language
#
# The first `max_items` items of every language's *profiling* split of the built-in parallel
# corpus stream through the transformer body: the same item ids, so the same content, in
# every language (each profile's metadata holds the hash of its item ids, `items_sha256`, and
# profiles of different items are refused). A token budget (`max_tokens`) instead covers
# fewer items where the tokenizer splits words finely: it is kept as an ablation (notebook 03). For each token, each expert's score
# is Σ|h| over its neurons; scores are z-normalized within each layer and the top share `r`
# of all layers' experts is "highly activated" (the paper's cross-layer rule). The
# **activation frequency** of an expert in a language is the share of that language's tokens
# for which it is selected: a layers × experts matrix per language. Only counts are cached
# (per chunk, so notebook 03 can bootstrap); adding a language profiles only that language.
#
# Definitions used for the paper's findings (the experiment's one class definition; the
# thresholds are parameters):
#
# * **co-activated**: frequency ≥ `high` in *every* language;
# * **rare**: frequency < `low` in every language;
# * **specific to language a**: frequency ≥ `high` in a, and a z-score of a's frequency
#   against the other languages ≥ `specific_z`.
#
# `high` = `high_factor`·`r` (by default `r`: an expert selected at least as often as under
# uniform selection) and `low` = `low_factor`·`r` (by default `r/4`).

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

# %%
import pandas as pd

from babel.core import paths
from babel.core.notebook import record
from babel.experiment import ExperimentConfig
from babel.figures import heatmaps
from babel.figures.classes import class_sensitivity_figure
from babel.profile import summary
from babel.profile.cache import write_frequency_table
from babel.profile.classes import class_counts, class_sensitivity, paper_cutoffs

exp = ExperimentConfig.from_namespace(globals())
lm, tok = exp.load_model()
part = exp.build_partition(lm)
profiles = exp.profiles(lm, tok, part)
langs, F = exp.frequencies(profiles)  # [n_lang, L, E]

# %% [markdown]
# ## The profiles
# Items and tokens counted per language (BOS and padding excluded; token counts differ with
# the tokenizer's fertility), the hash of the item ids (one value: the same items
# everywhere), the time profiling took, and each language's family and script.

# %%
table = summary.language_summary(exp.model, part, exp.profile, langs)
name = f"expert-frequency_{paths.slug(exp.model)}_{part.config.key}_{exp.profile.key}.parquet"
table_path = write_frequency_table(profiles, model=exp.model, path=paths.results_file(name))
record("tokens_per_language", table["tokens"].astype(int).to_dict())
record("items_sha256", sorted(set(table["items_sha256"])))
record("frequency_table", table_path.name)
table

# %% [markdown]
# ## Heatmaps: layers × experts, one panel per language
# Within each layer, experts are sorted by their mean frequency over all languages (one
# shared order, so panels can be compared by eye). Bright = selected for many tokens.

# %%
fig = heatmaps.frequency_heatmaps(F, langs, model=exp.model)
fig.savefig(paths.figure_file("expert-frequency-heatmaps", exp.model), dpi=110,
            bbox_inches="tight")

# %% [markdown]
# ## Difference from the all-language mean
# Red: the expert fires more often for this language than on average; blue: less often. The
# table ranks languages by their mean |deviation|: the most unusual profiles first.

# %%
fig = heatmaps.difference_heatmaps(F, langs, model=exp.model)
fig.savefig(paths.figure_file("expert-frequency-difference-heatmaps", exp.model), dpi=110,
            bbox_inches="tight")
dev = summary.mean_abs_deviation(F, langs)
record("mean_abs_deviation", dev.round(5).to_dict())
dev.to_frame().T.round(4)

# %% [markdown]
# ## Co-activated, language-specific and rare experts
# Left: the three classes per layer; right: the language-specific experts per layer, stacked
# by language. The table gives the totals over all layers and the thresholds used.

# %%
classes = exp.classify(F)
counts = class_counts(classes, langs)
findings = summary.class_findings(classes)
record("expert_classes", findings)
record("specific_per_language", summary.specific_per_language(classes, langs))
fig = heatmaps.classes_figure(classes, counts, langs)
fig.savefig(paths.figure_file("expert-classes-by-layer", exp.model), dpi=120)
record("class_counts_per_layer",
       {c: counts[c].astype(int).tolist() for c in ("co_activated", "rare", "specific_any")})
pd.Series(findings)

# %% [markdown]
# **Against the paper.** For Llama-2-7B (32 × 256 = 8192 experts) the paper reports about
# half of the experts highly activated across all languages, and over 1000 experts with low
# frequency in all languages. The cell below states what this model shows under our
# definitions, computed from the numbers above.

# %%
print(summary.paper_comparison(findings, model=exp.model, n_languages=len(langs)))

# %% [markdown]
# ## The thresholds as curves
# Each class's count depends on a cut-off nobody sees in the totals above. Here each cut-off
# sweeps its range (the other two stay at this run's values): the share of experts that are
# co-activated against the "high" factor, rare against the "rare" factor, and specific
# against z. The dashed line is this run's setting. The definition closest to the paper's
# text is this run's: "highly activated" for a token means selected by the cross-layer rule
# with share r, so an expert "highly activated in all languages" is one selected at least as
# often as the average expert (f ≥ r) in every language, and "low frequency" is far below
# that average (f < r/4). The dotted red line marks the cut-off at which this model *would*
# show the paper's counts (about half co-activated; 1000 of 8192 rare). The table is written
# to `build/results/expert_classes_sensitivity_<model>.csv`.

# %%
sens = class_sensitivity(F, exp.share, exp.classes)
sens.to_csv(paths.results_file(f"expert_classes_sensitivity_{paths.slug(exp.model)}.csv"),
            index=False)
cut = paper_cutoffs(F, exp.share)
record("paper_cutoffs", {k: round(v, 4) for k, v in cut.items()})
fig = class_sensitivity_figure(sens, exp.classes, paper=cut, title=exp.model)
fig.savefig(paths.figure_file("expert-classes-sensitivity", exp.model), dpi=120)
print(summary.cutoff_text(cut, exp.classes))

# %% [markdown]
# ## Explore interactively
# In JupyterLab, pick languages, a layer range (the axes show the real layer numbers) and the
# expert order, and the heatmap redraws; with no language picked it says so. Run headless
# (papermill), the static figures above are the output.

# %%
heatmaps.explorer(langs, F)
