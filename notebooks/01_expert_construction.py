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
# 1. that the partition is balanced, and how much more *cohesive* k-means experts are than a
#    random partition (mean within-expert cosine similarity of the clustered weight rows);
# 2. the exactness check: a mixture of experts that selects every expert reproduces the dense
#    model (also after reordering neurons so that each expert is a contiguous block);
# 3. the distribution of expert scores per layer, and where in depth the paper's
#    cross-layer rule puts its selections.
#
# **Design choices the paper leaves open, and ours** (all are parameters):
#
# | question | our default | alternatives |
# |---|---|---|
# | which weight rows are clustered | gate projection (it decides whether a neuron fires) | `up`, `gate+up`; `in` for non-gated FFNs |
# | balanced clustering | `k-means-constrained` (min-cost-flow assignment, exact N/E per expert) | random partition; co-activation clustering |
# | expert score | Σ\|h\| over the expert's neurons, h = input of `down_proj` | — |
# | z-normalization | per token, over the E experts of each layer | — |
# | "highly activated" | top share r of all L·E experts per token (cross-layer) | per-layer top-k; z > threshold |
# | r | 0.2 (MoEfication kept ~20 of 96 experts) | ablated in notebook 03 |

# %% tags=["parameters"]
model = "gemma-3-270m"
n_experts = 256
method = "kmeans"
projection = "gate"
seed = 0
rule = "cross_layer"
share = 0.2
languages = ["en", "fr", "zh-Hans", "ar"]
layers_to_plot = [0, 5, 11, 17]
score_tokens = 256

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from babel.core import paths
from babel.data.chunking import chunk_texts
from babel.data.corpus import load_items
from babel.core.config import METHODS, PROJECTIONS, RULES, PartitionConfig, SelectionRule
from babel.construct.partition import cohesion, get_partition
from babel.construct.routing import contiguous_partition, permuted_copy, routed_forward
from babel.construct.selection import expert_scores, select
from babel.models.hooks import trace_ffn
from babel.models.loading import load_model
from babel.core.notebook import record
from babel.core.params import check_choice, check_number, check_str
from babel.data.languages import check_languages

model = check_str("model", model)
n_experts = check_number("n_experts", n_experts, kind=int, low=1)
method = check_choice("method", method, METHODS)
projection = check_choice("projection", projection, PROJECTIONS)
seed = check_number("seed", seed, kind=int)
rule = check_choice("rule", rule, RULES)
share = check_number("share", share, low=0.0, high=1.0)
languages = check_languages(languages)
score_tokens = check_number("score_tokens", score_tokens, kind=int, low=8)
torch.manual_seed(seed)

# %%
lm, tok = load_model(model)
cfg = PartitionConfig(n_experts=n_experts, method=method, projection=projection, seed=seed)
t0 = time.perf_counter()
part = get_partition(lm, cfg)
print(f"partition {cfg.key}: {part.n_layers} layers x {part.n_experts} experts of "
      f"{part.expert_size} neurons (built in {part.seconds:.0f} s; this call {time.perf_counter()-t0:.1f} s)")
record("partition_build_seconds", part.seconds)

# %% [markdown]
# ## Balance and cohesion
# Every expert has exactly N/E neurons. Cohesion compares the chosen partition with a random
# one (same E) and, for reference, with k-means when the chosen method is not k-means.

# %%
sizes = np.stack([np.bincount(layer, minlength=n_experts) for layer in part.labels])
record("balanced", bool((sizes == part.expert_size).all()))
rows = {"chosen": cohesion(lm, part, projection=projection)}
rand = get_partition(lm, PartitionConfig(n_experts=n_experts, method="random", seed=seed))
rows["random"] = cohesion(lm, rand, projection=projection)
coh = pd.DataFrame(rows)
coh.index.name = "layer"
record("cohesion_chosen_mean", float(coh["chosen"].mean()))
record("cohesion_random_mean", float(coh["random"].mean()))
fig, ax = plt.subplots(figsize=(7, 3.5))
coh.plot(ax=ax, marker="o", ms=3)
ax.set(ylabel="mean within-expert cosine", title=f"Expert cohesion ({method} vs random, E={n_experts}) — {model}")
fig.tight_layout()
fig.savefig(paths.figure_file(f"expert-cohesion-{method}-vs-random", model), dpi=120)
coh.describe().loc[["mean", "min", "max"]].round(4)

# %% [markdown]
# ## Exactness
# Selecting every expert must reproduce the dense model's logits (only summation order may
# differ) and its greedy continuation; so must the model whose neurons are reordered into
# contiguous experts.

# %%
prompt = "La capitale de la France est"
ids = tok(prompt, return_tensors="pt")["input_ids"]
with torch.no_grad():
    dense = lm(input_ids=ids).logits
full = routed_forward(lm, part, SelectionRule(rule, share=1.0), ids).logits
reordered = permuted_copy(lm, part)
with torch.no_grad():
    dense_reordered = reordered(input_ids=ids).logits
full_reordered = routed_forward(reordered, contiguous_partition(part), SelectionRule(rule, share=1.0), ids).logits
exact = {
    "moe_all_experts_max_abs_diff": float((dense - full).abs().max()),
    "reordered_max_abs_diff": float((dense - dense_reordered).abs().max()),
    "reordered_moe_max_abs_diff": float((dense - full_reordered).abs().max()),
}
gen_dense = lm.generate(ids, max_new_tokens=8, do_sample=False)
gen_reordered = reordered.generate(ids, max_new_tokens=8, do_sample=False)
exact["same_greedy_continuation"] = bool(torch.equal(gen_dense, gen_reordered))
record("exactness", exact)
print(tok.decode(gen_dense[0]))
del reordered
pd.Series(exact)

# %% [markdown]
# ## Expert scores and the cross-layer selection
# Scores of a few hundred tokens per language, per layer. Raw scores differ a lot between
# layers; z-normalizing within each layer before ranking across layers is what keeps one
# loud layer from taking every selection. The right panel counts how many experts per layer
# the cross-layer rule selects, on average per token.

# %%
scores = {}


def grab(i, h):
    scores.setdefault(i, []).append(expert_scores(h, part.order_tensor()[i], n_experts).reshape(-1, n_experts))


texts = [it.text for lang in languages for it in load_items(lang, split="profiling")[:6]]
chunks = chunk_texts(texts, tok, seq_len=64, max_tokens=score_tokens)
with trace_ffn(lm, grab), torch.no_grad():
    lm.model(input_ids=chunks.input_ids, attention_mask=chunks.attention_mask)
valid = chunks.attention_mask.reshape(-1).bool()
S = torch.stack([torch.cat(scores[i])[valid] for i in sorted(scores)], dim=1)  # [T, L, E]
sel = select(S, SelectionRule(rule, share=share))
per_layer = pd.DataFrame({
    "mean raw score": S.mean((0, 2)).numpy(),
    "selected experts / token": sel.float().sum(-1).mean(0).numpy(),
})
per_layer.index.name = "layer"
record("selected_per_layer", per_layer["selected experts / token"].round(2).tolist())
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
for layer in [x for x in layers_to_plot if x < part.n_layers]:
    axes[0].hist(S[:, layer].flatten().numpy(), bins=60, histtype="step", density=True, label=f"layer {layer}")
axes[0].set(xlabel="expert score Σ|h|", ylabel="density", yscale="log", title="score distribution")
axes[0].legend(fontsize=8)
per_layer["selected experts / token"].plot.bar(ax=axes[1], color="tab:blue")
axes[1].axhline(share * n_experts, color="k", ls="--", lw=1, label="uniform share")
axes[1].set(ylabel="experts selected per token", title=f"{rule} r={share}")
axes[1].legend(fontsize=8)
fig.tight_layout()
fig.savefig(paths.figure_file("expert-scores-and-selection-by-layer", model), dpi=120)
conc = per_layer["selected experts / token"]
print(f"selection per layer ranges from {conc.min():.1f} to {conc.max():.1f} experts per token "
      f"(uniform would be {share * n_experts:.1f})")
per_layer.round(2).T
