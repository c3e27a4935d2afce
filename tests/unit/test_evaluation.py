"""Perplexity equals a direct computation from model(...).logits; throughput table shape."""
from __future__ import annotations

import hashlib
import json
import math
import re

import numpy as np
import pytest
import torch

from babel.core import paths
from babel.data.chunking import TokenChunks
from babel.data.corpus import load_items
from babel.models.surgery import prune_model
from babel.prune.evaluation import (
    Perplexity,
    evaluation_chunks,
    perplexity,
    speedups,
    target_mask,
    throughput,
)


def _chunks(bos=1, c=5, t=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 90, (c, t), generator=g)
    ids[:, 0] = bos
    am = torch.ones_like(ids)
    ids[-1, 6:] = 0  # right padding in the last chunk
    am[-1, 6:] = 0
    return TokenChunks(ids, am, int(am.sum()), int(am.sum()) - c, True)


def _direct(model, ch: TokenChunks) -> tuple[float, int]:
    """Log-softmax of the full logits, loops over chunks and positions (obviously right)."""
    nll, n = 0.0, 0
    with torch.no_grad():
        for c in range(ch.n_chunks):
            logits = model(input_ids=ch.input_ids[c:c + 1],
                           attention_mask=ch.attention_mask[c:c + 1]).logits[0].double()
            logp = torch.log_softmax(logits, -1)
            for t in range(ch.input_ids.shape[1] - 1):
                if ch.attention_mask[c, t + 1]:
                    nll -= float(logp[t, ch.input_ids[c, t + 1]])
                    n += 1
    return nll, n



@pytest.mark.parametrize("batch_size,slice_", [(2, 7), (8, 256)])
def test_perplexity_equals_direct(tiny_model, batch_size, slice_):
    bos = tiny_model.config.bos_token_id
    ch = _chunks(bos=bos)
    got = perplexity(tiny_model, ch, batch_size=batch_size, positions_per_slice=slice_,
                     bos_id=bos)
    nll, n = _direct(tiny_model, ch)
    assert got.tokens == n == 4 * 9 + 5
    assert got.nll == pytest.approx(nll, rel=1e-5)
    assert got.ppl == pytest.approx(math.exp(nll / n), rel=1e-5)


def test_softcapping_is_applied(tiny_gemma):
    tiny_gemma.config.final_logit_softcapping = 0.5  # strong, so a missing cap would show
    ch = _chunks(bos=tiny_gemma.config.bos_token_id)
    got = perplexity(tiny_gemma, ch, positions_per_slice=5)
    nll, n = _direct(tiny_gemma, ch)
    assert got.tokens == n and got.nll == pytest.approx(nll, rel=1e-5)


def test_bos_and_padding_targets_never_count():
    ids = torch.tensor([[1, 5, 1, 6, 0], [1, 7, 8, 9, 4]])
    am = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]])
    m = target_mask(ids, am, bos_id=1)
    assert m.tolist() == [[True, False, True, False], [True, True, True, True]]


def test_perplexity_add():
    p = Perplexity(2.0, 4) + Perplexity(1.0, 4)
    assert p.tokens == 8 and p.ppl == pytest.approx(math.exp(3 / 8))


def test_throughput_table(tiny_llama):
    pruned = prune_model(tiny_llama, np.ones((3, 64), bool) & (np.arange(64) < 16))
    ids = torch.randint(3, 90, (2, 16))
    table = throughput({"dense": tiny_llama, "pruned": pruned}, ids, repeats=3, warmup=1)
    assert set(table.part) == {"body", "end_to_end"}
    assert (table.repeats == 3).all() and (table.tokens_per_s > 0).all()
    sp = speedups(table)
    assert sp.loc["dense"].tolist() == [1.0, 1.0]


def test_evaluator_masked_equals_pruned_and_memoises(tiny_llama):
    from babel.prune.evaluation import Evaluator

    ch = _chunks(bos=1)
    keep = np.random.default_rng(0).random((3, 64)) < 0.5
    ev = Evaluator(tiny_llama, {"xx": ch}, batch_size=2, bos_id=1)
    masked = ev(keep, "xx")
    pruned = perplexity(prune_model(tiny_llama, keep), ch, bos_id=1)
    assert masked.nll == pytest.approx(pruned.nll, rel=1e-5)
    assert ev(keep.copy(), "xx") is masked and ev.runs == 1
    assert ev.rise(None, "xx") == 0.0 and ev.runs == 2
    with pytest.raises(KeyError, match="no evaluation chunks"):
        ev(None, "yy")


def _held_out(item_id: str) -> bool:
    """The split rule written from its documentation: ``(number + sha256(topic)) % 3 == 0``."""
    topic, number = re.fullmatch(r"(.+)-(\d+)", item_id).groups()
    digest = int.from_bytes(hashlib.sha256(topic.encode()).digest(), "big")
    return (int(number) + digest) % 3 == 0


@pytest.mark.parametrize("lang", ["fr", "zh-Hans"])
def test_evaluation_chunks_hold_exactly_the_evaluation_items(lang, byte_tokenizer):
    rows = [json.loads(line) for line in
            paths.corpus_file(lang).read_text(encoding="utf-8").splitlines() if line.strip()]
    held = [r for r in rows if _held_out(r["id"])]
    assert 0 < len(held) < len(rows)
    # independent of the package: raw JSONL + the documented rule + the byte encoding
    stream = []
    for k, r in enumerate(held):
        stream += ([3 + ord("\n")] if k else []) + [3 + b % 90 for b in r["text"].encode()]
    ch = evaluation_chunks(byte_tokenizer, lang, seq_len=64)
    content = ch.input_ids[:, 1:][ch.attention_mask[:, 1:].bool()].tolist()
    assert content == stream
    assert (ch.input_ids[:, 0] == byte_tokenizer.bos_token_id).all()
    assert ch.n_items == len(held)
    # the package's own view agrees, and evaluation and profiling items never overlap
    ev = {it.id for it in load_items(lang, split="evaluation")}
    prof = {it.id for it in load_items(lang, split="profiling")}
    assert ev == {r["id"] for r in held} and not ev & prof
    assert ev | prof == {r["id"] for r in rows}
    budget = evaluation_chunks(byte_tokenizer, lang, seq_len=64, max_tokens=100)
    assert budget.input_ids[:, 1:][budget.attention_mask[:, 1:].bool()].tolist() == stream[:100]
