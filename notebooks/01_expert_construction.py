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
# # 01 · Expert construction: every FFN as a mixture of experts, without changing a weight
#
# Each layer's N FFN neurons are split into E experts of N/E neurons by clustering their
# weight rows (balanced k-means, as in MoEfication). Nothing in the model changes: an expert
# is only a label on a group of neurons. This notebook shows
#
# 1. the design choices the paper leaves open, with this run's values;
# 2. that the partition is balanced, and how much more *cohesive* its experts are than a
#    random partition's (mean within-expert cosine similarity of the clustered weight rows);
# 3. the exactness check: a mixture of experts that selects every expert reproduces the dense
#    model (also after reordering neurons so that each expert is a contiguous block);
# 4. the distribution of expert scores per layer, and where in depth the paper's
#    cross-layer rule puts its selections, on `score_tokens` tokens of **every** language.

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
layers_to_plot = [0, 5, 11, 17]
score_tokens = 256

# %%
import time

import pandas as pd
import torch

from babel.construct import diagnostics as dx
from babel.core import paths
from babel.core.notebook import record
from babel.core.params import check_number
from babel.experiment import ExperimentConfig
from babel.figures.construct import cohesion_figure, scores_and_selection_figure

exp = ExperimentConfig.from_namespace(globals())
score_tokens = check_number("score_tokens", score_tokens, kind=int, low=8)
torch.manual_seed(exp.partition.seed)
lm, tok = exp.load_model()
t0 = time.perf_counter()
part = exp.build_partition(lm)
print(f"partition {exp.partition.key}: {part.n_layers} layers x {part.n_experts} experts of "
      f"{part.expert_size} neurons (built in {part.seconds:.0f} s; this call "
      f"{time.perf_counter() - t0:.1f} s)")
record("partition_build_seconds", part.seconds)

# %% [markdown]
# ## Design choices the paper leaves open, and ours
# Every row is a parameter of the experiment (`projection`, `method`, `n_experts`, `rule`,
# `share`); the alternatives are what babel implements.

# %%
dx.design_choices(exp.partition, exp.rule)

# %% [markdown]
# ## Balance and cohesion
# Every expert has exactly N/E neurons (`balanced`). Cohesion compares the chosen partition
# with a random one (same E and seed), both on the weight rows that were clustered: the
# higher line holds neurons that read more similar directions.

# %%
record("balanced", dx.is_balanced(part))
coh = dx.cohesion_table(lm, part)
record("cohesion_chosen_mean", float(coh["chosen"].mean()))
record("cohesion_random_mean", float(coh["random"].mean()))
fig = cohesion_figure(coh, title=f"Expert cohesion ({exp.partition.method} vs random, "
                                 f"E={exp.partition.n_experts}) — {exp.model}")
fig.savefig(paths.figure_file(f"expert-cohesion-{exp.partition.method}-vs-random", exp.model),
            dpi=120)
coh.describe().loc[["mean", "min", "max"]].round(4)

# %% [markdown]
# ## Exactness
# Selecting every expert must reproduce the dense model's logits exactly (the mask multiplies
# by 1), and so must its greedy continuation; the model whose neurons are reordered into
# contiguous experts may differ only by summation order.

# %%
ids = tok("La capitale de la France est", return_tensors="pt")["input_ids"]
exact = dx.exactness(lm, part, ids, kind=exp.rule.kind)
print(tok.decode(exact.pop("continuation_ids")))
record("exactness", exact)
pd.Series(exact)

# %% [markdown]
# ## Expert scores and the cross-layer selection
# Scores of `score_tokens` tokens **per language** of the experiment (each language's
# profiling items packed into chunks of 64 tokens under that budget), per layer. Raw scores
# differ a lot between layers; z-normalizing within each layer before ranking across layers is
# what keeps one loud layer from taking every selection. The right panel counts how many
# experts per layer the rule selects, on average per token (the dashed line is r·E).

# %%
chunks = dx.scoring_chunks(tok, exp.languages, score_tokens=score_tokens,
                           source=exp.profile.corpus)
S = torch.cat([dx.expert_score_tensor(lm, part, c) for c in chunks.values()])  # [T, L, E]
per_layer = dx.selection_per_layer(S, exp.rule)
record("score_tokens_per_language", {k: c.n_tokens for k, c in chunks.items()})
record("selected_per_layer", per_layer["selected experts / token"].round(2).tolist())
uniform = exp.share * exp.partition.n_experts
fig = scores_and_selection_figure(S, per_layer, layers=layers_to_plot, uniform=uniform,
                                  title=f"{exp.rule.kind} r={exp.share}")
fig.savefig(paths.figure_file("expert-scores-and-selection-by-layer", exp.model), dpi=120)
conc = per_layer["selected experts / token"]
print(f"selection per layer ranges from {conc.min():.1f} to {conc.max():.1f} experts per "
      f"token (uniform would be {uniform:.1f})")
per_layer.round(2).T
