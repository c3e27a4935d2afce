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
# its GGUF, cached as safetensors), it continues text in several languages (measured: in the
# prompt's language? repeating itself?), every FFN layer is visible through babel's uniform
# view, and the built-in parallel corpus is what we think it is. It ends with a first
# activation statistic per layer and language: the share of FFN neurons whose gate fires
# (`gate·x > 0`) on a token.

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
continuation_languages = ["en", "fr", "es", "de", "ru", "zh-Hans", "ja", "ar", "hi", "sw"]
max_new_tokens = 12
prompt_words = 6

# %%
import time

import torch

from babel.core import paths
from babel.core.notebook import record
from babel.core.params import check_number
from babel.data.corpus import corpus_stats
from babel.experiment import ExperimentConfig
from babel.figures.checks import gate_activity_figure
from babel.models.checks import continuation_checks, continuations, ffn_table, gate_activity

exp = ExperimentConfig.from_namespace(globals())
cont_langs = exp.subset(continuation_languages, name="continuation_languages", fallback=2)
max_new_tokens = check_number("max_new_tokens", max_new_tokens, kind=int, low=1, high=200)
prompt_words = check_number("prompt_words", prompt_words, kind=int, low=1, high=40)
torch.manual_seed(0)

# %% [markdown]
# ## The model
# The first load dequantizes the GGUF and writes a verified safetensors cache under
# `data/models/`; later loads read that cache. The table lists every FFN layer as babel sees
# it: its kind (gated or plain), neuron count, activation and the hook point where the
# intermediate activation `h` is read.

# %%
t0 = time.perf_counter()
lm, tok = exp.load_model()
load_seconds = time.perf_counter() - t0
ffn = ffn_table(lm)
print(f"{exp.model}: loaded in {load_seconds:.1f} s, "
      f"{sum(p.numel() for p in lm.parameters()) / 1e6:.0f}M parameters")
record("n_layers", len(ffn))
record("n_neurons", int(ffn.neurons[0]))
ffn.head()

# %% [markdown]
# ## Greedy continuations
# The prompt is the opening words of the same evaluation item in each language (for Chinese
# and Japanese, which have no spaces, the opening characters). Two numbers per continuation
# replace a judgement by eye: `langid_share` is py3langid's probability that the continuation
# is in the prompt's language (the closed-set classifier of the corpus checks; short texts
# make it noisy), and `repetition` is the share of its word bigrams (character bigrams for
# Chinese and Japanese) that occur more than once: 0 for fresh text, near 1 for a loop such
# as "kiasi, kiasi, kiasi".

# %%
rows = continuations(lm, tok, cont_langs, max_new_tokens=max_new_tokens,
                     prompt_words=prompt_words)
record("continuations", rows)
checks = continuation_checks(rows)
record("continuation_checks", checks.reset_index().to_dict("records"))
checks.assign(prompt=[r["prompt"] for r in rows],
              continuation=[r["continuation"] for r in rows]).round(3)

# %% [markdown]
# ## The corpus
# Items, characters and tokens per language. Tokenizer fertility differs a lot between
# scripts, and it decides how many tokens each language contributes to a profile.

# %%
stats = corpus_stats(tokenizer=tok)
record("corpus_languages", len(stats))
stats

# %% [markdown]
# ## Gate activity per layer
# Share of neurons with `gate·x > 0` per token, averaged over the first four evaluation items
# of each continuation language. It is read by a hook on each gate projection of the
# transformer body (no output head).

# %%
table = gate_activity(lm, tok, cont_langs, n_items=4)
fig = gate_activity_figure(table, model=exp.model)
fig_path = paths.figure_file("ffn-gate-activity-by-layer", exp.model)
fig.savefig(fig_path, dpi=120)
record("figure", fig_path.name)
record("mean_share_active", float(table.values.mean()))
table.round(3)
