"""Notebook 00's checks: repetition and language identity of continuations, gate activity."""
from __future__ import annotations

import math

import pytest
import torch

from babel.data.corpus import load_items
from babel.models.checks import (
    continuation_checks,
    continuations,
    ffn_table,
    gate_activity,
    opening,
    repetition_rate,
)
from babel.models.ffn import ffn_layers


class _ByteTokenizer:
    """Bytes mod 90 + 3 as token ids, with the calls generation needs."""

    bos_token_id = 1
    pad_token_id = 0

    def __call__(self, text, return_tensors=None):
        ids = torch.tensor([[1] + [3 + b % 90 for b in text.encode("utf-8")]])
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}

    def decode(self, ids, skip_special_tokens=True):
        return "".join(chr(97 + int(i) % 26) for i in ids)


def test_repetition_rate_on_fixed_strings():
    assert repetition_rate("kiasi, kiasi, kiasi") == 1.0  # a loop: every bigram repeats
    assert repetition_rate("kiasi, kiasi, kiasi, kiasi", n=1) == 1.0
    assert repetition_rate("The cat sat on the mat.") == 0.0  # fresh text
    assert repetition_rate("a b a b") == pytest.approx(2 / 3)  # ab, ba, ab: two of three
    assert repetition_rate("哈哈哈", unit="char") == 1.0
    assert repetition_rate("我们的世界", unit="char") == 0.0
    assert repetition_rate("word") == 0.0  # no bigram at all
    with pytest.raises(ValueError, match="unit"):
        repetition_rate("x", unit="byte")


def test_opening_words_or_characters():
    assert opening("one two three four five", 2) == "one two"
    assert opening("我们的世界很大", 2) == "我们的世"  # no spaces: 2 * n characters


def test_continuation_checks_language_and_loops():
    rows = [
        {"language": "fr", "prompt": "p",
         "continuation": "Le chat dort sur la table de la cuisine depuis ce matin."},
        {"language": "fr", "prompt": "p",
         "continuation": "The dog is sleeping in the garden since this morning."},
        {"language": "sw", "prompt": "p", "continuation": "kiasi, kiasi, kiasi"},
    ]
    df = continuation_checks(rows)
    assert list(df.index) == ["fr", "fr", "sw"]
    assert df.langid.iloc[0] == "fr" and df.langid_share.iloc[0] > 0.9
    assert df.langid.iloc[1] == "en" and df.langid_share.iloc[1] < 0.1  # English, not French
    assert df.repetition.tolist() == [0.0, 0.0, 1.0]


def test_continuations_prompt_is_the_items_opening(tiny_llama):
    rows = continuations(tiny_llama, _ByteTokenizer(), ["en", "fr"], max_new_tokens=5,
                         prompt_words=3)
    assert [r["language"] for r in rows] == ["en", "fr"]
    for r in rows:
        assert r["prompt"] == opening(load_items(r["language"], split="evaluation")[0].text, 3)
        assert len(r["continuation"]) <= 5  # one character per generated token


def test_ffn_table_names_every_layer(tiny_model):
    df = ffn_table(tiny_model)
    assert df.layer.tolist() == [0, 1, 2] and (df.neurons == 64).all()
    assert set(df.kind) == {"plain" if ffn_layers(tiny_model)[0].gate is None else "gated"}


def test_gate_activity_on_planted_gates(tiny_llama):
    views = ffn_layers(tiny_llama)
    with torch.no_grad():
        views[0].gate.weight.zero_()  # gate·x = 0: never > 0
        w = torch.randn(1, views[1].gate.weight.shape[1])
        views[1].gate.weight.copy_(torch.cat([w.repeat(32, 1), -w.repeat(32, 1)]))  # half
    table = gate_activity(tiny_llama, _ByteTokenizer(), ["en", "fr"], n_items=2)
    assert list(table.columns) == ["en", "fr"] and list(table.index) == [0, 1, 2]
    assert (table.loc[0] == 0.0).all()
    assert all(math.isclose(v, 0.5) for v in table.loc[1])
