"""Model checks of notebook 00: the FFN view, greedy continuations and gate activity per layer.

- :func:`ffn_table`: one row per FFN layer as babel sees it (kind, neurons, activation, hook).
- :func:`continuations`: greedy continuations of the opening words of the same evaluation item
  in several languages, and :func:`continuation_checks`, which replaces an adjective ("continues
  text sensibly") by two numbers per continuation: the py3langid probability of the prompt's
  language (:func:`babel.data.validation.identify`, the same closed-set classifier as the corpus
  checks) and a repetition rate (:func:`repetition_rate`, share of n-grams that occur twice).
- :func:`gate_activity`: share of FFN neurons whose pre-activation is positive (``gate·x > 0``
  for gated FFNs, ``W_in·x + b > 0`` for plain ones) per token, per layer and language.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pandas as pd
import torch
from torch import Tensor, nn

from babel.data.corpus import load_items
from babel.data.languages import get_language
from babel.data.validation import identify, language_probability
from babel.models.ffn import body, ffn_layers
from babel.models.hooks import trace_pre_activations

#: Scripts written without spaces between words: repetition is counted over characters.
UNSPACED = ("Hans", "Jpan")


def ffn_table(model: nn.Module) -> pd.DataFrame:
    """One row per FFN layer: layer, kind, neurons, activation and hook point."""
    return pd.DataFrame([{"layer": v.index, "kind": v.kind, "neurons": v.n_neurons,
                          "activation": type(v.act).__name__, "hook point": v.name}
                         for v in ffn_layers(model)])


def opening(text: str, n_words: int) -> str:
    """The first ``n_words`` words of ``text`` (the first ``2 * n_words`` characters when it
    has at most 3 words, as for Chinese and Japanese, written without spaces)."""
    words = text.split()
    return " ".join(words[:n_words]) if len(words) > 3 else text[: 2 * n_words]


@torch.no_grad()
def continuations(model: nn.Module, tokenizer: Any, langs: Sequence[str], *,
                  max_new_tokens: int, prompt_words: int,
                  split: str = "evaluation") -> list[dict[str, str]]:
    """Greedy continuation of the opening of the first ``split`` item of each language.

    Args:
        model: A causal LM.
        tokenizer: Its tokenizer.
        langs: Language codes.
        max_new_tokens: Tokens generated per prompt.
        prompt_words: Words of the item's text in the prompt (see :func:`opening`).
        split: Corpus split the item comes from.

    Returns:
        One ``{"language", "prompt", "continuation"}`` dict per language.
    """
    rows = []
    for lang in langs:
        prompt = opening(load_items(lang, split=split)[0].text, prompt_words)
        ids = tokenizer(prompt, return_tensors="pt")
        out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False)
        rows.append({"language": lang, "prompt": prompt,
                     "continuation": tokenizer.decode(out[0, ids["input_ids"].shape[1]:],
                                                      skip_special_tokens=True)})
    return rows


def repetition_rate(text: str, *, n: int = 2, unit: str = "word") -> float:
    """Share of the n-grams of ``text`` that occur more than once in it (0: no repetition).

    Words are ``\\w+`` runs, lower-cased (punctuation is ignored); with ``unit="char"`` the
    units are the word characters (for scripts without spaces). A text with fewer than ``n``
    units has no n-gram and scores 0.

    Args:
        text: The text.
        n: n-gram length.
        unit: ``"word"`` or ``"char"``.
    """
    if unit not in ("word", "char"):
        raise ValueError(f"unit must be 'word' or 'char', got {unit!r}")
    words = re.findall(r"\w+", text.lower())
    units = words if unit == "word" else [c for w in words for c in w]
    grams = [tuple(units[i:i + n]) for i in range(len(units) - n + 1)]
    if not grams:
        return 0.0
    counts = Counter(grams)
    return sum(c for c in counts.values() if c > 1) / len(grams)


def continuation_checks(rows: Sequence[dict[str, str]], *, n: int = 2) -> pd.DataFrame:
    """Language identity and repetition of each continuation (rows of :func:`continuations`).

    Returns:
        One row per continuation (index ``language``): ``langid`` (py3langid's label),
        ``langid_share`` (its probability for the prompt's language, normalised over the
        languages of ``data/languages.csv``; NaN where py3langid does not know the language)
        and ``repetition`` (:func:`repetition_rate` over word n-grams, character n-grams for
        Chinese and Japanese).
    """
    texts = [r["continuation"] for r in rows]
    labels = identify(texts)
    out = []
    for r, (label, _prob) in zip(rows, labels):
        lang = get_language(r["language"])
        unit = "char" if lang.script in UNSPACED else "word"
        out.append({"language": r["language"], "langid": label,
                    "langid_share": language_probability(r["continuation"], lang.langid_code),
                    "repetition": repetition_rate(r["continuation"], n=n, unit=unit)})
    return pd.DataFrame(out).set_index("language")


@torch.no_grad()
def gate_activity(model: nn.Module, tokenizer: Any, langs: Sequence[str], *,
                  n_items: int = 4, split: str = "evaluation") -> pd.DataFrame:
    """Share of FFN neurons with a positive pre-activation, per layer and language.

    Each of the first ``n_items`` items of a language runs alone through the transformer body
    (tokenizer defaults, so BOS included); per item the share is the mean over its tokens and
    neurons; the table holds the mean over items.

    Returns:
        ``[layer x language]`` shares in [0, 1] (columns sorted by code).
    """
    rows: list[dict[str, Any]] = []
    current = {"lang": ""}

    def count(layer: int, pre: Tensor) -> None:
        rows.append({"layer": layer, "language": current["lang"],
                     "share_active": float((pre > 0).float().mean())})

    run = body(model)
    with trace_pre_activations(model, count):
        for lang in langs:
            current["lang"] = lang
            for item in load_items(lang, split=split)[:n_items]:
                run(**tokenizer(item.text, return_tensors="pt"))
    return pd.DataFrame(rows).groupby(["layer", "language"]).share_active.mean().unstack()
