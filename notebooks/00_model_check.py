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
# # 00 · Model check: the real model, the corpus, and a first look at the FFNs
#
# This notebook checks the chain everything else stands on: the embedded model loads (from
# its GGUF, cached as safetensors), it continues text sensibly in several languages, every
# FFN layer is visible through babel's uniform view, and the built-in parallel corpus is what
# we think it is. It ends with a first activation statistic per layer and language: the
# share of FFN neurons whose gate fires (`gate·x > 0`) on a token.

# %% tags=["parameters"]
model = "gemma-3-270m"
languages = ["en", "fr", "es", "de", "zh-Hans", "ar"]
max_new_tokens = 12
prompt_words = 6

# %%
import time

import matplotlib.pyplot as plt
import pandas as pd
import torch

from babel.core import paths
from babel.data.corpus import corpus_stats, load_items
from babel.models.ffn import body, ffn_layers
from babel.models.loading import load_model
from babel.core.notebook import record
from babel.data.languages import check_languages
from babel.core.params import check_number, check_str

model = check_str("model", model)
languages = check_languages(languages)
max_new_tokens = check_number("max_new_tokens", max_new_tokens, kind=int, low=1, high=200)
prompt_words = check_number("prompt_words", prompt_words, kind=int, low=1, high=40)
torch.manual_seed(0)

# %% [markdown]
# ## The model
# The first load dequantizes the GGUF and writes a verified safetensors cache under
# `data/models/`; later loads read that cache.

# %%
t0 = time.perf_counter()
lm, tok = load_model(model)
load_seconds = time.perf_counter() - t0
views = ffn_layers(lm)
ffn_table = pd.DataFrame([{"layer": v.index, "kind": v.kind, "neurons": v.n_neurons,
                           "activation": type(v.act).__name__, "hook point": v.name}
                          for v in views])
print(f"{model}: loaded in {load_seconds:.1f} s, {sum(p.numel() for p in lm.parameters())/1e6:.0f}M parameters")
record("n_layers", len(views))
record("n_neurons", views[0].n_neurons)
ffn_table.head()

# %% [markdown]
# ## Greedy continuations
# The prompt is the opening words of the same corpus item in each language (for Chinese and
# Japanese, which have no spaces, the opening characters).

# %%
def opening(text: str, n: int) -> str:
    words = text.split()
    return " ".join(words[:n]) if len(words) > 3 else text[: 2 * n]


rows = []
for lang in languages:
    item = load_items(lang, split="evaluation")[0]
    prompt = opening(item.text, prompt_words)
    ids = tok(prompt, return_tensors="pt")
    with torch.no_grad():
        out = lm.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False)
    rows.append({"language": lang, "prompt": prompt,
                 "continuation": tok.decode(out[0, ids["input_ids"].shape[1]:],
                                            skip_special_tokens=True)})
continuations = pd.DataFrame(rows)
record("continuations", rows)
continuations

# %% [markdown]
# ## The corpus
# Items, characters and Gemma-3 tokens per language. Tokenizer fertility differs a lot
# between scripts, and it decides how many tokens each language contributes to a profile.

# %%
stats = corpus_stats(tokenizer=tok)
record("corpus_languages", len(stats))
stats

# %% [markdown]
# ## Gate activity per layer
# Share of neurons with `gate·x > 0` per token, averaged over a few evaluation items per
# language. It is read by a hook on each gate projection of the transformer body (no output head).

# %%
rows = []
current: dict[str, str] = {}


def count_active(_module, _args, out, layer):
    rows.append({"layer": layer, "language": current["lang"],
                 "share_active": float((out > 0).float().mean())})


handles = [(v.gate if v.kind == "gated" else v.up).register_forward_hook(
    lambda m, a, o, i=v.index: count_active(m, a, o, i)) for v in views]
try:
    for lang in languages:
        current["lang"] = lang
        for item in load_items(lang, split="evaluation")[:4]:
            with torch.no_grad():
                body(lm)(**tok(item.text, return_tensors="pt"))
finally:
    for h in handles:
        h.remove()
activity = pd.DataFrame(rows)
table = activity.groupby(["layer", "language"]).share_active.mean().unstack()
fig, ax = plt.subplots(figsize=(7, 4))
table.plot(ax=ax, marker="o", ms=3)
ax.set(xlabel="layer", ylabel="share of neurons with gate·x > 0",
       title=f"FFN gate activity by layer — {model}")
ax.legend(ncol=3, fontsize=8)
fig.tight_layout()
fig_path = paths.figure_file("ffn-gate-activity-by-layer", model)
fig.savefig(fig_path, dpi=120)
record("figure", fig_path.name)
record("mean_share_active", float(table.values.mean()))
table.round(3)
