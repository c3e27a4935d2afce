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
# # 04 · Language-specific pruning: remove rarely used experts, measure quality and speed
#
# The paper's application: for one language, keep only the experts it selects often and
# remove the rest from the weights; inference gets faster (~30% claimed) at comparable
# quality, better than removing random experts, and better still with per-layer rates (v2).
# This notebook
#
# 1. sweeps the kept share *k* of experts per language: frequency-based masks (global
#    ranking and per-layer adaptive allocation) against random masks (several seeds), with
#    perplexity on the **evaluation** split (masks come from the **profiling** split);
# 2. checks once that slicing the weights (a really smaller model) gives the same
#    perplexity as zeroing the neurons, and saves/reloads one pruned model;
# 3. crosses languages at one *k* (masks from language A, perplexity on language B);
# 4. runs a causal test: removing only the experts specific to one language;
# 5. measures speed (body and end to end) of structurally pruned models against their
#    FLOP counts, for Gemma 3 270M and SmolLM2 135M;
# 6. asks whether the expert construction matters (k-means, random partition, single
#    neurons) at equal kept shares.
#
# **Choices (the paper leaves them open):**
#
# | question | our choice |
# |---|---|
# | quality metric | perplexity on held-out text (evaluation split), chunks of fixed length with BOS first; BOS and padding targets never count |
# | budget | kept share *k* of all L·E experts (= of FFN neurons, experts are equal-sized); every layer keeps ≥ 1 expert |
# | global allocation | rank all L·E experts by the language's frequency together (the cross-layer rule makes frequencies comparable across layers) |
# | adaptive allocation | per-layer count ∝ the layer's effective number of experts exp(H) of its frequency distribution, scaled to the same budget: concentrated layers lose more |
# | random baseline | same per-layer counts as the global frequency mask, random experts (seeds) |
# | sweeps | zeroing neurons (`mask_neurons`), verified once to equal the sliced model |
# | single-neuron construction | profiled with the single-neuron partition (E = N) under the same rule, so every construction uses the same statistic (selection frequency) |

# %% tags=["parameters"]
model = "gemma-3-270m"
languages = ["en", "fr", "es", "zh-Hans", "ar", "hi"]
kept_shares = [1.0, 0.8, 0.6]
seeds = [0, 1, 2]
n_experts = 256
method = "kmeans"
projection = "gate"
seed = 0
rule = "cross_layer"
share = 0.2
max_tokens = 3000
eval_max_tokens = 300
eval_seq_len = 128
cross_language_share = 0.8
causal_language = "fr"
specific_z = 2.0
construction_compare = True
construction_languages = ["en", "zh-Hans", "ar"]
max_rise = 0.1
speed_models = ["gemma-3-270m", "smollm2-135m"]
speed_shares = [0.9, 0.8, 0.7]
speed_batch = 4
speed_seq_len = 128
speed_repeats = 5

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown, display

from babel.core import paths
from babel.data.chunking import chunk_texts
from babel.data.corpus import load_items
from babel.prune.evaluation import Evaluator, evaluation_chunks, perplexity, speedups, throughput
from babel.core.config import METHODS, PROJECTIONS, RULES, PartitionConfig, SelectionRule
from babel.construct.partition import get_partition, single_neuron_partition
from babel.models.ffn import ffn_layers
from babel.data.languages import get_language
from babel.models.loading import load_model
from babel.core.notebook import record
from babel.core.params import check_choice, check_number, check_str
from babel.data.languages import check_languages
from babel.core.config import ProfileConfig
from babel.profile.classes import classify_experts
from babel.profile.cache import frequency_tensor, profile_languages
from babel.prune.flops import flops_per_token, theoretical_speedup
from babel.prune.masks import group_keep_mask, keep_mask, neuron_keep_mask, random_keep_mask, random_like, removal_mask, uniform_random_mask
from babel.models.surgery import load_pruned, prune_model, save_pruned

model = check_str("model", model)
languages = check_languages(languages)
if not isinstance(kept_shares, (list, tuple)) or not kept_shares:
    raise ValueError(f"kept_shares must be a non-empty list of shares in (0, 1], got "
                     f"{kept_shares!r}")
kept_shares = sorted({check_number("kept_shares", k, low=1e-3, high=1.0) for k in kept_shares},
                     reverse=True)
if not isinstance(seeds, (list, tuple)) or not seeds:
    raise ValueError(f"seeds must be a non-empty list of ints, got {seeds!r}")
seeds = [check_number("seeds", s, kind=int, low=0) for s in seeds]
n_experts = check_number("n_experts", n_experts, kind=int, low=1)
method = check_choice("method", method, METHODS)
projection = check_choice("projection", projection, PROJECTIONS)
seed = check_number("seed", seed, kind=int, low=0)
rule = check_choice("rule", rule, RULES)
share = check_number("share", share, low=1e-6, high=1.0)
max_tokens = check_number("max_tokens", max_tokens, kind=int, low=1, allow_none=True)
eval_max_tokens = check_number("eval_max_tokens", eval_max_tokens, kind=int, low=1,
                               allow_none=True)
eval_seq_len = check_number("eval_seq_len", eval_seq_len, kind=int, low=2)
cross_language_share = check_number("cross_language_share", cross_language_share, low=1e-3,
                                    high=1.0)
causal_language = check_languages([causal_language], name="causal_language")[0]
if causal_language not in languages:
    raise ValueError(f"causal_language {causal_language!r} must be one of languages "
                     f"{languages}")
specific_z = check_number("specific_z", specific_z, low=0.0)
construction_compare = check_choice("construction_compare", construction_compare, [True, False])
construction_languages = check_languages(construction_languages, name="construction_languages")
if construction_compare and not set(construction_languages) <= set(languages):
    raise ValueError(f"construction_languages {construction_languages} must be among languages")
max_rise = check_number("max_rise", max_rise, low=0.0)
speed_models = [check_str("speed_models", m) for m in speed_models]
if not isinstance(speed_shares, (list, tuple)) or not speed_shares:
    raise ValueError(f"speed_shares must be a non-empty list of shares in (0, 1), got "
                     f"{speed_shares!r}")
speed_shares = sorted({check_number("speed_shares", k, low=1e-3, high=0.999)
                       for k in speed_shares}, reverse=True)
speed_batch = check_number("speed_batch", speed_batch, kind=int, low=1)
speed_seq_len = check_number("speed_seq_len", speed_seq_len, kind=int, low=2)
speed_repeats = check_number("speed_repeats", speed_repeats, kind=int, low=1)
pruned_shares = [k for k in kept_shares if k < 1.0]
if not pruned_shares:
    raise ValueError("kept_shares needs at least one share below 1.0 (something to prune)")
torch.manual_seed(0)
t_start = time.perf_counter()

# %% [markdown]
# ## Model, partition, profiles and held-out text
# Profiles come from the **profiling** split (cached by `02_activation_profiling`, which runs
# with the same common settings); perplexity uses the **evaluation** split only.

# %%
lm, tok = load_model(model)
part_cfg = PartitionConfig(n_experts=n_experts, method=method, projection=projection, seed=seed)
partition = get_partition(lm, part_cfg, model_name=model)
prof_cfg = ProfileConfig(rule=SelectionRule(rule, share=share), max_tokens=max_tokens)
profiles = profile_languages(lm, tok, partition, languages, prof_cfg, model_name=model,
                             progress=False)
freqs = {lang: p.frequency for lang, p in profiles.items()}
chunks = {lang: evaluation_chunks(tok, lang, seq_len=eval_seq_len, max_tokens=eval_max_tokens)
          for lang in languages}
ev = Evaluator(lm, chunks, batch_size=8, bos_id=tok.bos_token_id)
data_table = pd.DataFrame([{"language": lang, "family": get_language(lang).family,
                            "profiled tokens": profiles[lang].tokens,
                            "evaluation tokens": chunks[lang].n_content_tokens}
                           for lang in languages])
record("profiled_tokens", {lang: profiles[lang].tokens for lang in languages})
display(data_table)

# %% [markdown]
# ## Where the masks keep experts
# Share of each layer's experts kept at the smallest *k*, for the first language: global
# ranking vs adaptive allocation (and the layer's effective number of experts, which
# drives the adaptive counts).

# %%
k_min = min(pruned_shares)
lang0 = languages[0]
g_mask = keep_mask(freqs[lang0], k_min, allocation="global")
a_mask = keep_mask(freqs[lang0], k_min, allocation="adaptive")
alloc = pd.DataFrame({"layer": np.arange(partition.n_layers),
                      "global": g_mask.mean(1), "adaptive": a_mask.mean(1)})
fig, ax = plt.subplots(figsize=(7, 3.2))
alloc.plot(x="layer", y=["global", "adaptive"], marker="o", ms=3, ax=ax)
ax.axhline(k_min, color="grey", lw=0.8, ls="--")
ax.set(ylabel="share of experts kept",
       title=f"kept experts per layer, k={k_min}, {lang0} — {model}")
fig.tight_layout()
fig_path = paths.figure_file("pruning-kept-per-layer", model)
fig.savefig(fig_path, dpi=120)
display(alloc.round(3).T)

# %% [markdown]
# ## Perplexity vs kept share
# Per language and *k*: frequency-based masks (global ranking, adaptive per-layer
# allocation) and two random baselines over seeds: **matched** (the global mask's per-layer
# counts, random experts: isolates *which* experts are kept) and **uniform** (the same
# number of random experts in every layer: the naive baseline). The rise is
# `ppl / ppl_dense − 1`; random rises are averaged over seeds (the figure's bars show their
# range over seeds).

# %%
METHODS_ORDER = ["frequency (global)", "frequency (adaptive)", "random (matched)",
                 "random (uniform)"]


def expert_masks(freq: np.ndarray, k: float) -> list[tuple[str, int | None, np.ndarray]]:
    g = keep_mask(freq, k, allocation="global")
    out = [("frequency (global)", None, g),
           ("frequency (adaptive)", None, keep_mask(freq, k, allocation="adaptive"))]
    for s in seeds:
        out.append(("random (matched)", s, random_like(g, seed=s)))
        out.append(("random (uniform)", s, uniform_random_mask(*g.shape, k, seed=s)))
    return out


t0 = time.perf_counter()
rows = []
for lang in languages:
    dense = ev(None, lang)
    for k in kept_shares:
        masks = ([("dense", None, None)] if k == 1.0 else
                 [(n, s, neuron_keep_mask(m, partition))
                  for n, s, m in expert_masks(freqs[lang], k)])
        for name, s, nm in masks:
            p = ev(nm, lang)
            rows.append({"language": lang, "k": k, "method": name, "seed": s, "ppl": p.ppl,
                         "rise": p.ppl / dense.ppl - 1, "tokens": p.tokens})
sweep = pd.DataFrame(rows)
sweep_seconds = time.perf_counter() - t0
per_lang = sweep.groupby(["k", "method", "language"]).rise.mean()
summary = per_lang.groupby(["k", "method"]).median().unstack("method")
record("sweep", sweep.round(6).astype(object).where(sweep.notna(), None).to_dict("records"))
record("median_rise", {f"{k:g}": {m: float(v) for m, v in r.items() if pd.notna(v)}
                       for k, r in summary.iterrows()})
print(f"{ev.runs} evaluations in {sweep_seconds:.0f} s")
table = (sweep[sweep.k < 1].groupby(["language", "k", "method"])
         .agg(rise=("rise", "mean"), rise_sd=("rise", "std")).unstack("method"))
display((100 * table).round(1))

# %%
fig, axes = plt.subplots(1, len(languages), figsize=(2.6 * len(languages), 3.2), sharey=True,
                         squeeze=False)
for ax, lang in zip(axes[0], languages, strict=True):
    d = sweep[sweep.language == lang]
    for m, style in zip(METHODS_ORDER, ["o-", "s--", "^:", "v:"], strict=True):
        g = (d[(d.method == m) | (d.k == 1.0)].assign(ratio=lambda x: 1 + x.rise)
             .groupby("k").ratio)
        mean, lo, hi = g.mean(), g.min(), g.max()  # bars: range over seeds
        ax.errorbar(mean.index, mean, yerr=[mean - lo, hi - mean], fmt=style, ms=3,
                    capsize=2, label=m)
    ax.set(title=lang, xlabel="kept share k", yscale="log")
    ax.invert_xaxis()
axes[0, 0].set_ylabel("perplexity / dense (log)")
axes[0, -1].legend(fontsize=7)
fig.suptitle(f"held-out perplexity vs kept experts — {model}")
fig.tight_layout()
fig_path = paths.figure_file("pruning-perplexity-vs-k", model)
fig.savefig(fig_path, dpi=120)
record("figure_sweep", fig_path.name)
display((100 * summary).round(2))

# %% [markdown]
# ## Pruning equals masking
# The sweeps zero neurons. Here the weights of one mask are really sliced (`prune_model`):
# the smaller model must give the same perplexity. It is also saved (safetensors + keep
# mask + config) and reloaded.

# %%
nm = neuron_keep_mask(g_mask, partition)
pruned = prune_model(lm, nm)
p_sliced = perplexity(pruned, chunks[lang0], bos_id=tok.bos_token_id)
p_masked = ev(nm, lang0)
key = f"{part_cfg.key}_{prof_cfg.key}_{lang0}_global_k{k_min:g}"
folder = save_pruned(pruned, paths.pruned_model_dir(model, key),
                     meta={"language": lang0, "kept_share": k_min, "allocation": "global",
                           "partition": part_cfg.key, "profile": prof_cfg.key})
reloaded = load_pruned(folder)
ids = chunks[lang0].input_ids[:1, :32]
with torch.no_grad():
    reload_diff = float((reloaded(input_ids=ids).logits
                         - pruned(input_ids=ids).logits).abs().max())
n_dense = sum(p.numel() for p in lm.parameters())
n_pruned = sum(p.numel() for p in pruned.parameters())
check = {"ppl_masked": p_masked.ppl, "ppl_sliced": p_sliced.ppl,
         "abs_diff": abs(p_masked.ppl - p_sliced.ppl), "reload_max_logit_diff": reload_diff,
         "params_dense": n_dense, "params_pruned": n_pruned,
         "saved_mb": round(sum(f.stat().st_size for f in folder.iterdir()) / 2**20, 1)}
record("prune_equals_mask", check)
del pruned, reloaded
display(pd.Series(check))

# %% [markdown]
# ## Cross-language matrix at one *k*
# Rows: the language whose frequencies built the mask (global allocation); columns: the
# language evaluated. Cells: perplexity rise. The last row is a multilingual mask from the
# summed frequencies of all languages at the same budget. Pairs are grouped by the language
# table's family and branch (e.g. Indo-European / Romance).

# %%
kc = cross_language_share
cross = pd.DataFrame(index=languages + ["all (summed)"], columns=languages, dtype=float)
for a in languages + ["all (summed)"]:
    m = (group_keep_mask(np.stack([freqs[x] for x in languages]), kc, combine="sum")
         if a == "all (summed)" else keep_mask(freqs[a], kc))
    nm_a = neuron_keep_mask(m, partition)
    for b in languages:
        cross.loc[a, b] = ev.rise(nm_a, b)
own = cross.loc[languages, languages]
diag_best = {b: bool(own[b].idxmin() == b) for b in languages}
fam = {x: get_language(x).family for x in languages}
branch = {x: get_language(x).branch for x in languages}
pairs = [(a, b) for a in languages for b in languages if a != b]
same_branch = [own.loc[a, b] for a, b in pairs if branch[a] == branch[b]]
same_fam = [own.loc[a, b] for a, b in pairs if fam[a] == fam[b] and branch[a] != branch[b]]
other_fam = [own.loc[a, b] for a, b in pairs if fam[a] != fam[b]]
cross_summary = {"k": kc, "diagonal_best": diag_best,
                 "n_diagonal_best": sum(diag_best.values()),
                 "mean_rise_own": float(np.diag(own.values).mean()),
                 "mean_rise_same_branch": float(np.mean(same_branch)) if same_branch else None,
                 "mean_rise_same_family_other_branch": float(np.mean(same_fam)) if same_fam
                 else None,
                 "mean_rise_other_family": float(np.mean(other_fam)) if other_fam else None,
                 "mean_rise_summed_mask": float(cross.loc["all (summed)"].mean())}
record("cross_matrix", {a: {b: float(v) for b, v in r.items()} for a, r in cross.iterrows()})
record("cross_summary", cross_summary)
fig, ax = plt.subplots(figsize=(1 + 0.8 * len(languages), 1 + 0.7 * len(languages)))
im = ax.imshow(100 * cross.values.astype(float), cmap="magma_r")
ax.set_xticks(range(len(languages)), languages)
ax.set_yticks(range(len(cross.index)), cross.index)
for i in range(cross.shape[0]):
    for j in range(cross.shape[1]):
        ax.text(j, i, f"{100 * cross.iloc[i, j]:.1f}", ha="center", va="center", fontsize=7,
                color="white" if cross.iloc[i, j] > cross.values.mean() else "black")
ax.set(xlabel="evaluated on", ylabel="mask from", title=f"perplexity rise (%), k={kc:g}")
fig.colorbar(im, ax=ax, shrink=0.8)
fig.tight_layout()
fig_path = paths.figure_file("pruning-cross-language", model)
fig.savefig(fig_path, dpi=120)
print(cross_summary)
display((100 * cross).round(2))

# %% [markdown]
# ## Causal test: remove only the experts specific to one language
# Specific experts (`classify_experts` over this notebook's languages: frequency ≥ r in the
# language and z ≥ `specific_z` against the others) are removed for `causal_language`; every
# language is evaluated. The control removes the same number of random experts per layer.

# %%
langs_f, ftensor = frequency_tensor(profiles)
classes = classify_experts(ftensor, high=share, low=share / 10, z=specific_z)
spec = classes.specific[langs_f.index(causal_language)]
n_spec = int(spec.sum())
causal_rows = []
if n_spec:
    keep_spec = removal_mask(spec, freqs[causal_language])
    nm_spec = neuron_keep_mask(keep_spec, partition)
    for b in languages:
        rnd = [ev.rise(neuron_keep_mask(random_like(keep_spec, seed=s), partition), b)
               for s in seeds]
        causal_rows.append({"language": b, "is_target": b == causal_language,
                            "rise_specific_removed": ev.rise(nm_spec, b),
                            "rise_random_removed": float(np.mean(rnd)),
                            "rise_random_sd": float(np.std(rnd, ddof=1)) if len(rnd) > 1
                            else 0.0})
causal = pd.DataFrame(causal_rows)
if n_spec:
    tgt = causal[causal.is_target].iloc[0]
    others = causal[~causal.is_target]
    causal_summary = {"language": causal_language, "n_specific": n_spec,
                      "specific_per_language": {x: int(classes.specific[i].sum())
                                                for i, x in enumerate(langs_f)},
                      "rise_target": float(tgt.rise_specific_removed),
                      "rise_others_mean": float(others.rise_specific_removed.mean()),
                      "rise_target_random": float(tgt.rise_random_removed),
                      "rise_others_random_mean": float(others.rise_random_removed.mean())}
else:
    causal_summary = {"language": causal_language, "n_specific": 0}
    print(f"no expert is specific to {causal_language} at z >= {specific_z}: nothing to remove")
record("causal", causal_summary)
print(causal_summary)
display(causal.round(4))

# %% [markdown]
# ## Speed: structurally pruned models, measured against FLOPs
# Each model is timed dense and pruned at every *k* in the same process, interleaved, after
# a warm-up, median over repeats; batch of `speed_batch × speed_seq_len` tokens of held-out
# text. *Body* = transformer without the output head; *end to end* = with logits for every
# position. For `model` the masks are the first language's global frequency masks; for the
# other models (no profiles here) each layer keeps the same share of neurons at random —
# speed depends only on the kept counts, not on which neurons.

# %%
speed_rows = []
for name in speed_models:
    m_dense, m_tok = (lm, tok) if name == model else load_model(name)
    text = " ".join(it.text for it in load_items(lang0, split="evaluation"))
    batch = chunk_texts([text], m_tok, seq_len=speed_seq_len,
                        max_tokens=speed_batch * (speed_seq_len - 1)).input_ids[:speed_batch]
    models = {"dense": m_dense}
    for k in speed_shares:
        if name == model:
            keep = neuron_keep_mask(keep_mask(freqs[lang0], k), partition)
        else:
            sizes = np.array([v.n_neurons for v in ffn_layers(m_dense)])
            keep = [random_keep_mask([round(k * n)], n, seed=i)[0]
                    for i, n in enumerate(sizes)]
        models[f"k={k:g}"] = prune_model(m_dense, keep)
    timing = throughput(models, batch, repeats=speed_repeats, warmup=1)
    sp = speedups(timing)
    f_dense = flops_per_token(m_dense, seq_len=speed_seq_len)
    for label, pm in models.items():
        if label == "dense":
            continue
        th = theoretical_speedup(f_dense, flops_per_token(pm, seq_len=speed_seq_len))
        speed_rows.append({"model": name, "k": float(label[2:]),
                           "ffn_share_body": f_dense.ffn / f_dense.body,
                           "ffn_share_end_to_end": f_dense.ffn / f_dense.total,
                           "theoretical_body": th["body"],
                           "measured_body": float(sp.loc[label, "speedup_body"]),
                           "theoretical_end_to_end": th["end_to_end"],
                           "measured_end_to_end": float(sp.loc[label, "speedup_end_to_end"]),
                           "dense_body_tok_s": float(timing.set_index(["model", "part"])
                                                     .tokens_per_s[("dense", "body")])})
    del models
speed = pd.DataFrame(speed_rows)
speed["measured/theoretical body"] = speed.measured_body / speed.theoretical_body
speed["measured/theoretical e2e"] = speed.measured_end_to_end / speed.theoretical_end_to_end
record("speed", speed.round(4).to_dict("records"))
fig, axes = plt.subplots(1, 2, figsize=(9, 3.2), sharey=True)
for ax, part in zip(axes, ["body", "end_to_end"]):
    for name, d in speed.groupby("model"):
        ax.plot(d.k, d[f"theoretical_{part}"], "--", marker="o", ms=3, label=f"{name} (FLOPs)")
        ax.plot(d.k, d[f"measured_{part}"], "-", marker="s", ms=3, label=f"{name} (measured)")
    ax.axhline(1, color="grey", lw=0.8)
    ax.set(title=part.replace("_", " "), xlabel="kept share k")
    ax.invert_xaxis()
axes[0].set_ylabel("speedup over dense")
axes[1].legend(fontsize=7)
fig.tight_layout()
fig_path = paths.figure_file("pruning-speedup", model)
fig.savefig(fig_path, dpi=120)
display(speed.round(3))

# %% [markdown]
# ## Does the expert construction matter?
# The same frequency-based pruning (global allocation) with experts built by k-means, by a
# random equal-size partition, and with single neurons (E = N), each profiled under the
# same rule and token budget, at equal kept shares.

# %%
construction = pd.DataFrame()
if construction_compare:
    other = "random" if method == "kmeans" else "kmeans"
    parts = {method: partition,
             other: get_partition(lm, PartitionConfig(n_experts=n_experts, method=other,
                                                      projection=projection, seed=seed),
                                  model_name=model),
             "single neuron": single_neuron_partition(lm, model_name=model)}
    c_rows = []
    for cname, cpart in parts.items():
        cprof = profiles if cpart is partition else profile_languages(
            lm, tok, cpart, construction_languages, prof_cfg, model_name=model, progress=False)
        for lang in construction_languages:
            for k in pruned_shares:
                nm_c = neuron_keep_mask(keep_mask(cprof[lang].frequency, k), cpart)
                c_rows.append({"construction": cname, "language": lang, "k": k,
                               "rise": ev.rise(nm_c, lang)})
    construction = pd.DataFrame(c_rows)
    c_table = construction.groupby(["k", "construction"]).rise.median().unstack()
    record("construction", {f"{k:g}": {c: float(v) for c, v in r.items()}
                            for k, r in c_table.iterrows()})
    display((100 * c_table).round(2))
else:
    print("construction_compare is off")

# %% [markdown]
# ## Conclusion (generated from the numbers above)

# %%
def pct(x: float | None) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{100 * x:+.1f}%"


def ratio(x: float, y: float) -> str:
    return f"{x / y:.2g}×" if y > 0 else "n/a"


def compare(a: float, b: float, tol: float = 0.05) -> str:
    """'better' / 'worse' / 'about as good' for rises a vs b (relative tolerance)."""
    if abs(a - b) <= tol * max(abs(a), abs(b)):
        return "about as good as"
    return "better than" if a < b else "worse than"


lines = []
for k in pruned_shares:
    r = summary.loc[k]
    g, a = r["frequency (global)"], r["frequency (adaptive)"]
    rm, ru = r["random (matched)"], r["random (uniform)"]
    lines.append(
        f"- k = {k:g}: median perplexity rise {pct(g)} (frequency, global), {pct(a)} "
        f"(frequency, adaptive), {pct(rm)} (random, matched counts), {pct(ru)} (random, "
        f"uniform; random = mean of {len(seeds)} seeds). Frequency-based (global) "
        + ("beats" if g < min(rm, ru) else "does not beat both")
        + f" random: its rise is {ratio(g, ru)} the uniform-random one and {ratio(g, rm)} "
        f"the matched-random one. Adaptive per-layer rates are {compare(a, g)} the global "
        f"ranking (within 5% counts as equal).")
freq_g = per_lang.xs("frequency (global)", level="method")
wins = {m: int((freq_g < per_lang.xs(m, level="method")).sum())
        for m in ("random (matched)", "random (uniform)")}
adaptive_wins = int((per_lang.xs("frequency (adaptive)", level="method") < freq_g).sum())
n_pairs = len(freq_g)
lines.append(f"- Per (language, k): frequency (global) has a smaller rise than uniform random in "
             f"{wins['random (uniform)']} of {n_pairs} and than matched random in "
             f"{wins['random (matched)']} of {n_pairs}; adaptive beats global in "
             f"{adaptive_wins} of {n_pairs}.")
cs = cross_summary
lines.append(f"- Cross-language (k = {kc:g}): a language's own mask is the best for "
             f"{cs['n_diagonal_best']} of {len(languages)} evaluated languages; mean rise own "
             f"{pct(cs['mean_rise_own'])}, same branch {pct(cs['mean_rise_same_branch'])}, "
             f"same family but other branch {pct(cs['mean_rise_same_family_other_branch'])}, "
             f"other family {pct(cs['mean_rise_other_family'])}, summed multilingual mask "
             f"{pct(cs['mean_rise_summed_mask'])}.")
if causal_summary["n_specific"]:
    cs = causal_summary
    lines.append(f"- Causal test: removing the {cs['n_specific']} experts specific to "
                 f"{causal_language} raises its perplexity by {pct(cs['rise_target'])} vs "
                 f"{pct(cs['rise_others_mean'])} on the other languages (random removal of the "
                 f"same number: {pct(cs['rise_target_random'])} vs "
                 f"{pct(cs['rise_others_random_mean'])}).")
else:
    lines.append(f"- Causal test: no expert is specific to {causal_language} at "
                 f"z ≥ {specific_z}.")
ok_k = [k for k in pruned_shares if summary.loc[k, "frequency (global)"] <= max_rise]
if ok_k:
    k_ok = min(ok_k)
    nm_ok = neuron_keep_mask(keep_mask(freqs[lang0], k_ok), partition)
    th_ok = theoretical_speedup(flops_per_token(lm, seq_len=speed_seq_len),
                                flops_per_token(lm, keep_neurons=nm_ok, seq_len=speed_seq_len))
    lines.append(f"- Comparable quality (median rise ≤ {pct(max_rise)}) holds down to k = "
                 f"{k_ok:g} among {pruned_shares}: theoretical body speedup there "
                 f"×{th_ok['body']:.2f}, end to end ×{th_ok['end_to_end']:.2f}.")
else:
    lines.append(f"- No pruned k in {pruned_shares} keeps the median rise within "
                 f"{pct(max_rise)} (frequency, global): no speedup comes at comparable quality "
                 f"here.")
for _, r in speed.iterrows():
    lines.append(f"- Speed, {r.model}, k = {r.k:g}: body ×{r.measured_body:.2f} measured vs "
                 f"×{r.theoretical_body:.2f} from FLOPs; end to end ×{r.measured_end_to_end:.2f}"
                 f" vs ×{r.theoretical_end_to_end:.2f} (the FFN is "
                 f"{100 * r.ffn_share_end_to_end:.0f}% of end-to-end matmul FLOPs).")
if len(construction):
    ct = construction.groupby(["k", "construction"]).rise.median().unstack()
    for k, r in ct.iterrows():
        best = r.idxmin()
        lines.append(f"- Construction at k = {k:g}: median rise "
                     + ", ".join(f"{c} {pct(v)}" for c, v in r.items()) + f"; best: {best}.")
conclusion = "\n".join(lines)
record("conclusion", conclusion)
record("seconds", round(time.perf_counter() - t_start, 1))
display(Markdown(conclusion))
