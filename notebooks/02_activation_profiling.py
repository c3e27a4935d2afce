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
# Every language's *profiling* split of the built-in parallel corpus (the same content in
# every language) streams through the transformer body. For each token, each expert's score
# is Σ|h| over its neurons; scores are z-normalized within each layer and the top share `r`
# of all layers' experts is "highly activated" (the paper's cross-layer rule). The
# **activation frequency** of an expert in a language is the share of that language's tokens
# for which it is selected: a layers × experts matrix per language. Only counts are cached
# (per chunk, so notebook 03 can bootstrap); adding a language profiles only that language.
#
# Definitions used for the paper's findings (thresholds are parameters):
#
# * **co-activated**: frequency ≥ `high` in *every* language;
# * **rare**: frequency < `low` in every language;
# * **specific to language a**: frequency ≥ `high` in a, and a z-score of a's frequency
#   against the other languages ≥ `specific_z`.
#
# `high` defaults to `r` (an expert selected at least as often as under uniform selection)
# and `low` to `r/4`.

# %% tags=["parameters"]
model = "gemma-3-270m"
languages = "all"
corpus = "builtin"
n_experts = 256
method = "kmeans"
projection = "gate"
seed = 0
rule = "cross_layer"
share = 0.2
z = 1.0
max_tokens = 3000
seq_len = 128
batch_size = 8
high_factor = 1.0
low_factor = 0.25
specific_z = 3.0

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from babel.core import paths
from babel.core.config import METHODS, PROJECTIONS, RULES, PartitionConfig, SelectionRule
from babel.construct.partition import get_partition
from babel.data.languages import get_language
from babel.models.loading import load_model
from babel.core.notebook import record
from babel.core.params import check_choice, check_number, check_str
from babel.data.languages import check_languages
from babel.core.config import ProfileConfig
from babel.profile.classes import class_counts, classify_experts
from babel.profile.cache import frequency_tensor, load_meta, profile_file_for, profile_languages, write_frequency_table

model = check_str("model", model)
languages = check_languages(languages)
corpus = check_choice("corpus", corpus, ["builtin", "files", "flores_plus", "wikipedia"])
n_experts = check_number("n_experts", n_experts, kind=int, low=1)
method = check_choice("method", method, METHODS)
projection = check_choice("projection", projection, PROJECTIONS)
rule = check_choice("rule", rule, RULES)
share = check_number("share", share, low=0.0, high=1.0)
max_tokens = check_number("max_tokens", max_tokens, kind=int, low=1, allow_none=True)
high, low = share * high_factor, share * low_factor

# %%
lm, tok = load_model(model)
part = get_partition(lm, PartitionConfig(n_experts=n_experts, method=method, projection=projection, seed=seed))
cfg = ProfileConfig(rule=SelectionRule(rule, share=share, z=z), source=corpus, seq_len=seq_len,
                    batch_size=batch_size, max_tokens=max_tokens)
profiles = profile_languages(lm, tok, part, languages, cfg)
langs, F = frequency_tensor(profiles)  # [n_lang, L, E]
summary = pd.DataFrame([{**{k: load_meta(profile_file_for(model, part, cfg, lang)).get(k) for k in ("tokens", "seconds", "tokens_per_second")},
                         "language": lang, "family": get_language(lang).family, "script": get_language(lang).script}
                        for lang in langs]).set_index("language")
table_path = write_frequency_table(profiles, model=model, path=paths.results_file(f"expert-frequency_{paths.slug(model)}_{part.config.key}_{cfg.key}.parquet"))
record("tokens_per_language", summary["tokens"].astype(int).to_dict())
record("frequency_table", table_path.name)
summary

# %% [markdown]
# ## Heatmaps: layers × experts, one panel per language
# Within each layer, experts are sorted by their mean frequency over all languages (one
# shared order, so panels can be compared by eye). Bright = selected for many tokens.

# %%
order = np.argsort(-F.mean(0), axis=1)  # [L, E] shared expert order per layer


def sorted_freq(mat: np.ndarray) -> np.ndarray:
    return np.take_along_axis(mat, order, axis=1)


def heatmap_grid(mats, titles, *, cmap, vmin, vmax, suptitle, label):
    n = len(mats)
    cols = min(6, n)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 1.9 * rows + 0.8), squeeze=False,
                             constrained_layout=True)
    for ax, mat, title in zip(axes.flat, mats, titles):
        im = ax.imshow(mat, aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([0, mat.shape[0] - 1])
        ax.set_ylabel("layer", fontsize=8, labelpad=-4)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.colorbar(im, ax=axes, shrink=0.6, label=label)
    fig.suptitle(suptitle)
    return fig


fig = heatmap_grid([sorted_freq(F[i]) for i in range(len(langs))], langs, cmap="viridis", vmin=0,
                   vmax=float(np.quantile(F, 0.99)), label="activation frequency",
                   suptitle=f"Expert activation frequency (rows: layers; experts sorted by mean) — {model}")
fig.savefig(paths.figure_file("expert-frequency-heatmaps", model), dpi=110, bbox_inches="tight")

# %% [markdown]
# ## Difference from the all-language mean
# Red: the expert fires more often for this language than on average; blue: less often.

# %%
D = F - F.mean(0, keepdims=True)
lim = float(np.quantile(np.abs(D), 0.995))
fig = heatmap_grid([sorted_freq(D[i]) for i in range(len(langs))], langs, cmap="RdBu_r", vmin=-lim,
                   vmax=lim, label="frequency − mean over languages",
                   suptitle=f"Language-specific deviations (same expert order) — {model}")
fig.savefig(paths.figure_file("expert-frequency-difference-heatmaps", model), dpi=110, bbox_inches="tight")
dev = pd.Series(np.abs(D).mean((1, 2)), index=langs, name="mean |deviation|").sort_values(ascending=False)
record("mean_abs_deviation", dev.round(5).to_dict())
dev.to_frame().T.round(4)

# %% [markdown]
# ## Co-activated, language-specific and rare experts

# %%
classes = classify_experts(F, high=high, low=low, z=specific_z)
counts = class_counts(classes, langs)
n_total = F.shape[1] * F.shape[2]
findings = {
    "experts": int(n_total),
    "co_activated": int(classes.co_activated.sum()),
    "co_activated_share": float(classes.co_activated.mean()),
    "rare": int(classes.rare.sum()),
    "rare_share": float(classes.rare.mean()),
    "specific_any": int(classes.specific_any.sum()),
    "high": high, "low": low, "specific_z": specific_z,
}
record("expert_classes", findings)
record("specific_per_language", {lang: int(classes.specific[i].sum()) for i, lang in enumerate(langs)})
fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
counts.set_index("layer")[["co_activated", "specific_any", "rare"]].plot(ax=axes[0], marker="o", ms=3)
axes[0].set(ylabel=f"experts (of {F.shape[2]})", title="expert classes by layer")
spec = pd.DataFrame(classes.specific.sum(2).T, columns=langs)
spec.plot.area(ax=axes[1], cmap="tab20", linewidth=0)
axes[1].legend(ncol=2, fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
axes[1].set(xlabel="layer", ylabel="specific experts", title="where the language-specific experts sit (stacked by language)")
fig.tight_layout()
fig.savefig(paths.figure_file("expert-classes-by-layer", model), dpi=120)
pd.Series(findings)

# %% [markdown]
# **Against the paper.** For Llama-2-7B (32 × 256 = 8192 experts) the paper reports about
# half of the experts highly activated across all languages, and over 1000 experts with low
# frequency in all languages. The cell below states what this model shows under our
# definitions, computed from the numbers above.

# %%
verdict_co = "about half, as in the paper" if 0.35 <= findings["co_activated_share"] <= 0.65 else (
    "far fewer than the paper's ~half" if findings["co_activated_share"] < 0.35 else "more than the paper's ~half")
print(f"{model}: {findings['co_activated']} of {n_total} experts ({findings['co_activated_share']:.1%}) are "
      f"co-activated (frequency ≥ {high:.3f} in all {len(langs)} languages): {verdict_co}.")
print(f"{findings['rare']} experts ({findings['rare_share']:.1%}) are rare (frequency < {low:.3f} in every language); "
      f"the paper's >1000 of 8192 is {1000/8192:.1%}.")
print(f"{findings['specific_any']} experts are specific to at least one language (z ≥ {specific_z}).")

# %% [markdown]
# ## Explore interactively
# In JupyterLab, pick languages, a layer range and the expert order, and the heatmap redraws.
# Run headless (papermill), the static figures above are the output.

# %%
import ipywidgets as widgets
from IPython.display import display

lang_pick = widgets.SelectMultiple(options=langs, value=tuple(langs[:4]), description="languages", rows=8)
layer_pick = widgets.IntRangeSlider(value=(0, F.shape[1] - 1), min=0, max=F.shape[1] - 1, description="layers")
order_pick = widgets.Dropdown(options=["mean frequency", "specificity of first language", "expert id"], description="order")
mode_pick = widgets.ToggleButtons(options=["frequency", "difference"], description="show")
out = widgets.Output()


def redraw(*_):
    chosen = [langs.index(x) for x in lang_pick.value] or [0]
    lo, hi = layer_pick.value
    mats = F if mode_pick.value == "frequency" else D
    if order_pick.value == "mean frequency":
        idx = order
    elif order_pick.value == "specificity of first language":
        idx = np.argsort(-D[chosen[0]], axis=1)
    else:
        idx = np.tile(np.arange(F.shape[2]), (F.shape[1], 1))
    with out:
        out.clear_output(wait=True)
        sel = [np.take_along_axis(mats[i], idx, axis=1)[lo:hi + 1] for i in chosen]
        v = float(np.quantile(np.abs(mats), 0.99))
        heatmap_grid(sel, [langs[i] for i in chosen], cmap="viridis" if mode_pick.value == "frequency" else "RdBu_r",
                           vmin=0 if mode_pick.value == "frequency" else -v, vmax=v, label=mode_pick.value,
                           suptitle=f"layers {lo}–{hi}")
        plt.show()


for w in (lang_pick, layer_pick, order_pick, mode_pick):
    w.observe(redraw, names="value")
display(widgets.VBox([widgets.HBox([lang_pick, widgets.VBox([layer_pick, order_pick, mode_pick])]), out]))
redraw()
