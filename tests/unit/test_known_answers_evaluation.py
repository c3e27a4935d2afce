"""Known answers for babel.prune.evaluation: held-out perplexity, the memoising evaluator,
throughput rounds and speedups.

Known answers used: an identity output head, so the logits are the hidden states the test
plants and every NLL is ``log Σ exp(x) - x[target]`` computed by an explicit loop (with
``c·tanh(x/c)`` for a softcap); targets worked out by hand from a padded chunk with a BOS in
the middle; masks and biases checked against an independent construction (a copy of the model
with zeroed or biased output projections); throughput under a fake clock whose per-round
times are planted, so medians, minima, rounds and stopping are known; the documented
``sha256(id) % 3 == 0`` split of a user's text file.
"""
from __future__ import annotations

import copy
import hashlib
import math
import types

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from babel.data.chunking import TokenChunks
from babel.prune import evaluation
from babel.prune.evaluation import (
    Evaluator,
    Perplexity,
    _precise,
    body_hidden,
    evaluation_chunks,
    head_logits_fn,
    head_nll,
    masked_perplexity,
    perplexity,
    speedups,
    target_mask,
    throughput,
)
from babel.prune.intervals import ratio_interval

# ------------------------------------------------------------------------------ Perplexity


def test_perplexity_record_by_hand():
    p = Perplexity(6.0, 3)
    assert p.mean_nll == 2.0 and p.ppl == pytest.approx(math.exp(2.0))
    assert p.as_dict() == {"nll": 6.0, "tokens": 3, "ppl": pytest.approx(math.exp(2.0))}
    assert Perplexity(1.5, 0).mean_nll == 1.5  # no tokens: divided by 1, not by 0
    s = Perplexity(6.0, 3, np.ones(2), np.ones(2)) + Perplexity(2.0, 1)
    assert (s.nll, s.tokens, s.item_nll, s.item_tokens) == (8.0, 4, None, None)


# ------------------------------------------------------------------------------ targets
IDS = torch.tensor([[3, 0, 1, 2], [3, 2, 3, 1]])  # BOS = 3; chunk 1 has a BOS at position 2
AM = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])  # chunk 1's last position is padding
ITEMS = torch.tensor([[-1, 0, 0, 1], [-1, 1, 2, -1]])


def test_target_mask_by_hand():
    """Targets are tokens 1..T-1: chunk 1's target at position 2 is BOS, at 3 padding."""
    assert target_mask(IDS, AM, bos_id=3).tolist() == [[True, True, True],
                                                         [True, False, False]]
    assert target_mask(IDS, AM).tolist() == [[True, True, True], [True, True, False]]
    # a padded *position* has no target either (left padding)
    left = torch.tensor([[0, 1, 1]])
    assert target_mask(torch.tensor([[5, 5, 5]]), left).tolist() == [[False, True]]


# ------------------------------------------------------------------------- head and NLL
class _HeadOnly(nn.Module):
    """An output head that is the identity on 4 dims (logits = hidden), with a chosen config."""

    def __init__(self, config, head: bool = True):
        super().__init__()
        self.lm_head = nn.Linear(4, 4, bias=False)
        with torch.no_grad():
            self.lm_head.weight.copy_(torch.eye(4))
        self.config = config
        self.head = head

    def get_output_embeddings(self):
        return self.lm_head if self.head else None


def _hidden(seed: int = 0) -> torch.Tensor:
    return torch.randn(2, 4, 4, generator=torch.Generator().manual_seed(seed))


def _loop_nll(hidden, ids, valid, cap=None) -> list[float]:
    """NLL of each counted target, chunk by chunk and position by position."""
    out = []
    for c in range(ids.shape[0]):
        for t in range(ids.shape[1] - 1):
            if valid[c][t]:
                x = [float(v) for v in hidden[c, t]]
                if cap is not None:
                    x = [cap * math.tanh(v / cap) for v in x]
                lse = math.log(sum(math.exp(v) for v in x))
                out.append(lse - x[int(ids[c, t + 1])])
    return out


@pytest.mark.parametrize("pps", [1, 3, 256])
def test_head_nll_by_explicit_loop(pps):
    """Sum and count of the counted targets; per item: chunk 0's targets belong to items 0,
    0, 1 and chunk 1's one counted target to item 1 (item 2's only target is a BOS): item
    tokens (2, 2, 0), three items because the largest index is 2."""
    h = _hidden()
    model = _HeadOnly(types.SimpleNamespace(final_logit_softcapping=None))
    valid = [[True, True, True], [True, False, False]]
    want = _loop_nll(h, IDS, valid)
    got = head_nll(model, h, IDS, AM, bos_id=3, positions_per_slice=pps)
    assert got.tokens == 4 and got.nll == pytest.approx(sum(want), rel=1e-5)
    assert got.item_nll is None and got.item_tokens is None
    per = head_nll(model, h, IDS, AM, bos_id=3, positions_per_slice=pps, item_index=ITEMS)
    assert per.nll == pytest.approx(got.nll) and per.tokens == 4
    np.testing.assert_allclose(per.item_nll, [want[0] + want[1], want[2] + want[3], 0.0],
                               rtol=1e-5)
    assert per.item_tokens.tolist() == [2, 2, 0] and per.item_tokens.dtype == np.int64
    # without a BOS id the BOS target counts too (item 2)
    allv = head_nll(model, h, IDS, AM, positions_per_slice=pps, item_index=ITEMS)
    want5 = _loop_nll(h, IDS, [[True, True, True], [True, True, False]])
    assert allv.tokens == 5 and allv.nll == pytest.approx(sum(want5), rel=1e-5)
    assert allv.item_tokens.tolist() == [2, 2, 1]
    np.testing.assert_allclose(allv.item_nll[2], want5[4], rtol=1e-5)


def test_head_nll_with_no_counted_target_is_zero():
    model = _HeadOnly(types.SimpleNamespace(final_logit_softcapping=None))
    got = head_nll(model, _hidden(), IDS, torch.zeros_like(AM), item_index=ITEMS)
    assert (got.nll, got.tokens) == (0.0, 0)
    assert got.item_tokens.tolist() == [0, 0, 0] and got.item_nll.tolist() == [0.0, 0.0, 0.0]


def test_softcap_is_applied_from_the_config_or_its_text_config():
    """Logits c·tanh(x/c) with c = 0.5 (strong: |logits| < 0.5), from the config itself or,
    when it has none, from get_text_config() (a multimodal config)."""
    h = _hidden(1) * 3
    valid = [[True, True, True], [True, False, False]]
    want = sum(_loop_nll(h, IDS, valid, cap=0.5))
    own = _HeadOnly(types.SimpleNamespace(final_logit_softcapping=0.5))
    text = types.SimpleNamespace(final_logit_softcapping=0.5)
    nested = _HeadOnly(types.SimpleNamespace(get_text_config=lambda: text))
    nested_none = _HeadOnly(types.SimpleNamespace(final_logit_softcapping=None,
                                                  get_text_config=lambda: text))
    for model in (own, nested, nested_none):
        got = head_nll(model, h, IDS, AM, bos_id=3)
        assert got.nll == pytest.approx(want, rel=1e-5)
    logits = head_logits_fn(own)(h[0])
    assert logits.dtype == torch.float32 and logits.abs().max() <= 0.5
    np.testing.assert_allclose(logits.detach().numpy(), (0.5 * torch.tanh(h[0] / 0.5)).numpy(),
                               rtol=1e-6)
    plain = head_logits_fn(_HeadOnly(types.SimpleNamespace()))(h[0])  # no softcap anywhere
    np.testing.assert_allclose(plain.detach().numpy(), h[0].numpy())


def test_head_logits_fn_needs_an_output_head():
    with pytest.raises(ValueError, match=r"^_HeadOnly has no output head: pass a causal LM$"):
        head_logits_fn(_HeadOnly(types.SimpleNamespace(), head=False))


# ----------------------------------------------------------------------- with a tiny model
def _chunks(bos: int) -> TokenChunks:
    """Three chunks of 8; a BOS inside chunk 0 (position 4), padding at the end of chunk 2."""
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 90, (3, 8), generator=g)
    ids[:, 0] = bos
    ids[0, 4] = bos
    am = torch.ones_like(ids)
    ids[2, 5:] = 0
    am[2, 5:] = 0
    items = torch.where(am.bool(), torch.tensor(0), torch.tensor(-1))
    items[1:] = torch.where(am[1:].bool(), 1, -1)
    items[:, 0] = -1
    return TokenChunks(ids, am, int(am.sum()), int(am.sum()) - 3, True, 2, items)


def test_body_hidden_batches_are_the_full_forward(tiny_llama):
    ch = _chunks(1)
    with torch.no_grad():
        full = tiny_llama.model(input_ids=ch.input_ids,
                                attention_mask=ch.attention_mask).last_hidden_state
    for bs in (1, 2, 8):
        got = body_hidden(tiny_llama, ch.input_ids, ch.attention_mask, batch_size=bs)
        assert got.shape == (3, 8, 32)
        torch.testing.assert_close(got, full, rtol=1e-5, atol=1e-5)


def _nine_chunks() -> TokenChunks:
    """Nine full chunks of 32 (BOS 1 first, no padding): 9 × 31 = 279 counted targets."""
    ids = torch.randint(3, 90, (9, 32), generator=torch.Generator().manual_seed(1))
    ids[:, 0] = 1
    am = torch.ones_like(ids)
    return TokenChunks(ids, am, 9 * 32, 9 * 31, True)


def _record_splits(model) -> tuple[list[int], list[int]]:
    """Chunks per body forward and positions per head call, as the model sees them."""
    body_rows: list[int] = []
    head_rows: list[int] = []
    model.model.register_forward_pre_hook(
        lambda _m, _a, kw: body_rows.append(kw["input_ids"].shape[0]), with_kwargs=True)
    model.lm_head.register_forward_pre_hook(lambda _m, a: head_rows.append(a[0].shape[0]))
    return body_rows, head_rows


def test_default_batches_and_head_slices(tiny_llama):
    """Defaults 8 chunks per body forward and 256 positions per head slice: 9 chunks run as
    8 + 1, 279 targets as 256 + 23, in perplexity, masked_perplexity (dense and masked) and
    the Evaluator."""
    ch = _nine_chunks()
    body_rows, head_rows = _record_splits(tiny_llama)
    runs = (lambda: perplexity(tiny_llama, ch),
            lambda: masked_perplexity(tiny_llama, ch),
            lambda: masked_perplexity(tiny_llama, ch, np.ones((3, 64), bool)),
            lambda: Evaluator(tiny_llama, {"fr": ch})(None, "fr"))
    for run in runs:
        body_rows.clear()
        head_rows.clear()
        assert run().tokens == 279
        assert body_rows == [8, 1] and head_rows == [256, 23]


def test_batch_size_and_slices_pass_through(tiny_llama):
    """batch_size 4 and positions_per_slice 100: 9 chunks as 4 + 4 + 1, 279 targets as
    100 + 100 + 79, on every path (dense, masked, biased, the Evaluator's dense and masked
    runs)."""
    ch = _nine_chunks()
    body_rows, head_rows = _record_splits(tiny_llama)
    kw = {"batch_size": 4, "positions_per_slice": 100}
    ev = Evaluator(tiny_llama, {"fr": ch}, **kw)
    runs = (lambda: perplexity(tiny_llama, ch, **kw),
            lambda: masked_perplexity(tiny_llama, ch, **kw),
            lambda: masked_perplexity(tiny_llama, ch, np.ones((3, 64), bool), **kw),
            lambda: masked_perplexity(tiny_llama, ch, bias=np.zeros((3, 32)), **kw),
            lambda: ev(None, "fr"),
            lambda: ev(np.ones((3, 64), bool), "fr"))
    for run in runs:
        body_rows.clear()
        head_rows.clear()
        assert run().tokens == 279
        assert body_rows == [4, 4, 1] and head_rows == [100, 100, 79]


def test_evaluator_seconds_add_up_the_runs(monkeypatch):
    """A fake clock: the first run takes 0.5 s, the second 1.25 s; a memo hit reads no clock.
    seconds = 0.5 + 1.25 = 1.75 over 2 runs, starting from 0."""
    ticks = iter([10.0, 10.5, 20.0, 21.25])
    monkeypatch.setattr(evaluation, "time", types.SimpleNamespace(perf_counter=lambda: next(ticks)))
    monkeypatch.setattr(evaluation, "masked_perplexity", lambda *a, **k: Perplexity(1.0, 1))
    ev = Evaluator(nn.Linear(1, 1), {"fr": None, "de": None})
    assert (ev.seconds, ev.runs) == (0.0, 0)
    ev(None, "fr")
    assert (ev.seconds, ev.runs) == (0.5, 1)
    ev(None, "fr")  # memoised
    ev(None, "de")
    assert (ev.seconds, ev.runs) == (1.75, 2)


def _copy_with_down(model, *, weight_scale: float, bias: np.ndarray | None = None):
    """A copy whose every down_proj is weight·scale (+ bias[l]): the masked or biased FFN
    output built directly into the weights."""
    other = copy.deepcopy(model)
    for i, layer in enumerate(other.model.layers):
        old = layer.mlp.down_proj
        new = nn.Linear(old.in_features, old.out_features, bias=bias is not None)
        with torch.no_grad():
            new.weight.copy_(old.weight * weight_scale)
            if bias is not None:
                new.bias.copy_(torch.as_tensor(bias[i], dtype=torch.float32))
        layer.mlp.down_proj = new
    return other


def test_masked_perplexity_against_rebuilt_models(tiny_llama):
    """All neurons kept = the dense perplexity; none kept = down_proj zeroed; a bias b added
    to every FFN output = down_proj with bias b; the BOS id and slicing pass through."""
    ch = _chunks(1)
    dense = perplexity(tiny_llama, ch, bos_id=1)
    assert dense.tokens == 3 * 7 - 3 - 1  # 21 targets, 3 padding targets, 1 BOS target
    assert perplexity(tiny_llama, ch).tokens == 3 * 7 - 3
    same = masked_perplexity(tiny_llama, ch, bos_id=1)
    assert (same.nll, same.tokens) == (dense.nll, dense.tokens)
    kept = masked_perplexity(tiny_llama, ch, np.ones((3, 64), bool), bos_id=1,
                             positions_per_slice=5, batch_size=2)
    assert kept.tokens == dense.tokens and kept.nll == pytest.approx(dense.nll, rel=1e-5)
    np.testing.assert_allclose(kept.item_nll, dense.item_nll, rtol=1e-5)
    assert kept.item_tokens.tolist() == dense.item_tokens.tolist() == [6, 11]
    none = masked_perplexity(tiny_llama, ch, np.zeros((3, 64), int), bos_id=1)
    want = perplexity(_copy_with_down(tiny_llama, weight_scale=0.0), ch, bos_id=1)
    assert none.nll == pytest.approx(want.nll, rel=1e-5) and none.tokens == want.tokens
    assert abs(none.nll - dense.nll) > 1e-3
    b = np.random.default_rng(0).normal(0, 0.5, (3, 32))
    biased = masked_perplexity(tiny_llama, ch, bias=b, bos_id=1)
    want_b = perplexity(_copy_with_down(tiny_llama, weight_scale=1.0, bias=b), ch, bos_id=1)
    assert biased.nll == pytest.approx(want_b.nll, rel=1e-5)
    assert abs(biased.nll - dense.nll) > 1e-3
    both = masked_perplexity(tiny_llama, ch, np.zeros((3, 64), bool), bias=b)
    want_both = perplexity(_copy_with_down(tiny_llama, weight_scale=0.0, bias=b), ch)
    assert both.nll == pytest.approx(want_both.nll, rel=1e-5)
    assert both.tokens == 3 * 7 - 3
    # the hooks are gone afterwards
    again = perplexity(tiny_llama, ch, bos_id=1)
    assert again.nll == pytest.approx(dense.nll, rel=1e-6)


def test_evaluator_memoises_and_rises(tiny_llama):
    """One body run per distinct (mask content, bias content, language); the rise is
    ppl/ppl_dense - 1 of the two masked perplexities."""
    ch = {"fr": _chunks(1), "de": _chunks(1)}
    ev = Evaluator(tiny_llama, ch, bos_id=1, positions_per_slice=7, batch_size=2)
    dense = ev(None, "fr")
    assert ev.runs == 1 and ev.seconds > 0 and dense.tokens == 17
    assert ev(np.ones((3, 64), bool), "fr") is not dense and ev.runs == 2
    keep = np.zeros((3, 64), bool)
    keep[:, ::2] = True
    p = ev(keep, "fr")
    assert ev(keep.astype(int), "fr") is p and ev.runs == 3  # same content, same key
    want = masked_perplexity(tiny_llama, ch["fr"], keep, bos_id=1)
    assert p.nll == pytest.approx(want.nll, rel=1e-5) and p.tokens == want.tokens
    assert ev.rise(keep, "fr") == p.ppl / dense.ppl - 1.0
    assert ev.runs == 3
    ev(keep, "de")
    assert ev.runs == 4
    b = np.full((3, 32), 0.25)
    pb = ev(keep, "fr", bias=b)
    assert ev.runs == 5 and ev(keep, "fr", bias=b.astype(np.float32)) is pb
    want_b = masked_perplexity(tiny_llama, ch["fr"], keep, bos_id=1, bias=b)
    assert pb.nll == pytest.approx(want_b.nll, rel=1e-5)
    assert ev.rise(keep, "fr", bias=b) == pb.ppl / dense.ppl - 1.0
    with pytest.raises(KeyError, match=r"no evaluation chunks for 'it': the evaluator has "
                                       r"\['de', 'fr'\]"):
        ev(None, "it")


def test_evaluator_keys():
    """Keys are the content: 'dense' for no mask, '' for no bias; dtype does not matter,
    the shape does (the same packed bits in another shape)."""
    assert Evaluator.mask_key(None) == "dense" and Evaluator.bias_key(None) == ""
    a = np.ones((2, 8), bool)
    assert Evaluator.mask_key(a) == Evaluator.mask_key(a.astype(np.int64))
    half = np.arange(16).reshape(2, 8) % 3 == 0
    assert Evaluator.mask_key(half.astype(np.float32)) == Evaluator.mask_key(half)  # 0/1 floats
    assert Evaluator.mask_key(a) != Evaluator.mask_key(np.ones((8, 2), bool))
    assert Evaluator.mask_key(a) != Evaluator.mask_key(np.zeros((2, 8), bool))
    assert Evaluator.mask_key(np.ones((2, 8), bool)[:, ::2]) == Evaluator.mask_key(
        np.ones((2, 4), bool))  # a strided view: its content, not its memory
    want = hashlib.sha1(np.packbits(a).tobytes() + b"(2, 8)").hexdigest()
    assert Evaluator.mask_key(a) == want
    b = np.arange(6.0).reshape(2, 3)
    kb = Evaluator.bias_key(b)
    assert kb == "+b" + hashlib.sha1(b.tobytes() + b"(2, 3)").hexdigest()
    assert kb == Evaluator.bias_key(np.arange(6).reshape(2, 3))  # ints as float64
    assert kb != Evaluator.bias_key(b.reshape(3, 2))


# ---------------------------------------------------------------------------- throughput
class _Part(nn.Module):
    def __init__(self, log: list, name: str):
        super().__init__()
        self.log, self.name = log, name

    def forward(self, input_ids=None, attention_mask=None):
        self.log.append((self.name, input_ids, attention_mask))


class _TimedLM(nn.Module):
    """Records every call (which part, the ids, the mask); lives on the meta device, so the
    inputs must be moved to it."""

    def __init__(self, log: list, name: str):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1, device="meta"))
        self.core = _Part(log, f"{name}/body")
        self.log, self.name = log, name

    @property
    def base_model(self):
        return self.core

    def forward(self, input_ids=None, attention_mask=None):
        self.log.append((f"{self.name}/end_to_end", input_ids, attention_mask))


def _clock(log: list, planted: dict[str, list[float]]):
    """A fake timer: runs the call, then returns the next planted time of the part it ran."""
    used: dict[str, int] = {}

    def time_fn(fn):
        fn()
        name = log[-1][0]
        used[name] = used.get(name, 0) + 1
        return planted[name][used[name] - 1]

    return time_fn


PLANTED = {  # the first value of each is the warm-up round
    "dense/body": [9.0] + [2.0] * 20,
    "dense/end_to_end": [9.0] + [3.0] * 20,
    "fast/body": [9.0, 1.0, 1.5, 0.5, 1.0, 1.25] + [1.0] * 15,
    "fast/end_to_end": [9.0] + [2.0] * 20,
}


def test_throughput_defaults_one_warmup_and_five_rounds():
    """Defaults: 1 warm-up round (discarded) and 5 timed ones, body and end to end; both
    parts get the same ids and an all-ones mask, on the model's device."""
    log: list = []
    models = {"dense": _TimedLM(log, "dense"), "fast": _TimedLM(log, "fast")}
    ids = torch.arange(10).reshape(2, 5)
    table = throughput(models, ids, time_fn=_clock(log, PLANTED))
    assert len(log) == 6 * 4
    assert [n for n, _, _ in log[:4]] == ["dense/body", "dense/end_to_end", "fast/body",
                                         "fast/end_to_end"]
    for _, i, a in log:
        assert i.device.type == "meta" and a is not None and a.device.type == "meta"
        assert i.shape == a.shape == (2, 5) and a.dtype == ids.dtype
    rows = {(r.model, r.part): r for r in table.itertuples()}
    assert set(rows) == {("dense", "body"), ("dense", "end_to_end"), ("fast", "body"),
                         ("fast", "end_to_end")}
    fb = rows[("fast", "body")]
    assert fb.times == [1.0, 1.5, 0.5, 1.0, 1.25] and fb.repeats == 5
    assert (fb.median_s, fb.min_s, fb.tokens_per_s) == (1.0, 0.5, 10.0)
    de = rows[("dense", "end_to_end")]
    assert (de.median_s, de.min_s, de.tokens_per_s, de.repeats) == (3.0, 3.0, 10 / 3, 5)


def test_throughput_masks_are_all_ones():
    log: list = []
    throughput({"fast": _TimedLM(log, "fast")}, torch.arange(6).reshape(1, 6), repeats=1,
               warmup=0, time_fn=_clock(log, PLANTED))
    # the meta device holds no values: the same call on the CPU shows them
    cpu_log: list = []
    m = _TimedLM(cpu_log, "fast")
    m.w = nn.Parameter(torch.zeros(1))
    throughput({"fast": m}, torch.arange(6).reshape(1, 6), repeats=1, warmup=0,
               time_fn=_clock(cpu_log, PLANTED))
    assert [n for n, _, _ in cpu_log] == ["fast/body", "fast/end_to_end"]
    for _, i, a in cpu_log:
        assert i.tolist() == [[0, 1, 2, 3, 4, 5]] and a.tolist() == [[1] * 6]


def test_throughput_body_only_and_rounds():
    """end_to_end=False: body rows only; warmup 0 and 3 repeats: 3 calls per model, all kept;
    no dense model is needed without adaptive rounds."""
    log: list = []
    table = throughput({"fast": _TimedLM(log, "fast")}, torch.ones(1, 4, dtype=torch.long),
                       repeats=3, warmup=0, end_to_end=False, time_fn=_clock(log, PLANTED))
    assert len(log) == 3 and table.part.tolist() == ["body"]
    assert table.times.iloc[0] == [9.0, 1.0, 1.5] and table.median_s.iloc[0] == 1.5


def test_throughput_adaptive_rounds_stop_when_precise():
    """A constant ratio has a zero-width interval: precise as soon as 2 rounds are timed (even
    with repeats=1); a zero target is never met, so rounds go on to max_repeats."""
    def run(**kw):
        log: list = []
        models = {"dense": _TimedLM(log, "dense"), "slow": _TimedLM(log, "slow")}
        planted = {"dense/body": [2.0] * 10, "dense/end_to_end": [3.0] * 10,
                   "slow/body": [4.0] * 10, "slow/end_to_end": [6.0] * 10}
        return throughput(models, torch.ones(1, 4, dtype=torch.long), warmup=0,
                          time_fn=_clock(log, planted), **kw)

    assert set(run(repeats=1, max_repeats=6).repeats) == {2}
    assert set(run(repeats=3, max_repeats=6).repeats) == {3}
    assert set(run(repeats=2, max_repeats=6, rel_half_width=0.0).repeats) == {6}


def test_precise_threshold_by_hand():
    """Speedup 4 with some spread: its interval half-width hw is precise for a target just
    above hw/4 (relative to the value 4), not just below; the dense model itself is skipped
    (its self-ratio would fail a zero target)."""
    times = {("dense", "body"): [4.0, 4.0, 4.0, 4.0, 4.0],
             ("p", "body"): [1.0, 1.0, 1.25, 0.8, 1.0]}
    iv = ratio_interval(times[("dense", "body")], times[("p", "body")])
    assert iv.value == 4.0 and iv.half_width > 0
    rel = iv.half_width / iv.value
    assert _precise(times, dense="dense", rel_half_width=rel * 1.01)
    assert not _precise(times, dense="dense", rel_half_width=rel * 0.99)
    assert not _precise(times, dense="dense", rel_half_width=rel)  # strictly narrower
    assert _precise({("dense", "body"): [1.0, 2.0]}, dense="dense", rel_half_width=0.0)


def test_throughput_argument_errors():
    log: list = []
    models = {"fast": _TimedLM(log, "fast")}
    ids = torch.ones(1, 4, dtype=torch.long)
    msg = r"^repeats must be >= 1, warmup >= 0 and max_repeats >= repeats$"
    for kw in ({"repeats": 0}, {"warmup": -1}, {"repeats": 3, "max_repeats": 2}):
        with pytest.raises(ValueError, match=msg):
            throughput(models, ids, time_fn=_clock(log, PLANTED), **kw)
    with pytest.raises(ValueError, match=r"^adaptive repeats need the reference model 'dense' "
                                         r"in models$"):
        throughput(models, ids, repeats=2, max_repeats=3, time_fn=_clock(log, PLANTED))
    assert log == []


# ------------------------------------------------------------------------------ speedups
def test_speedups_by_hand():
    """Median ratios over 'dense'; intervals from the paired rounds, NaN for single rounds."""
    table = pd.DataFrame([
        {"model": "dense", "part": "body", "median_s": 2.0, "times": [2.0, 2.0, 2.0]},
        {"model": "fast", "part": "body", "median_s": 1.0, "times": [1.0, 0.9, 1.25]},
        {"model": "slow", "part": "body", "median_s": 4.0, "times": [4.0]},
        {"model": "dense", "part": "end_to_end", "median_s": 3.0, "times": [3.0, 3.5, 3.0]},
        {"model": "fast", "part": "end_to_end", "median_s": 2.0, "times": [2.0, 2.0, 2.5]},
        {"model": "slow", "part": "end_to_end", "median_s": 6.0, "times": [6.0]},
    ])
    plain = speedups(table)
    assert list(plain.columns) == ["speedup_body", "speedup_end_to_end"]
    assert plain.loc["fast"].tolist() == [2.0, 1.5] and plain.loc["slow"].tolist() == [0.5, 0.5]
    assert plain.loc["dense"].tolist() == [1.0, 1.0]
    out = speedups(table, intervals=True)
    for part in ("body", "end_to_end"):
        for name in ("dense", "fast"):
            iv = ratio_interval(table.set_index(["model", "part"]).times[("dense", part)],
                                table.set_index(["model", "part"]).times[(name, part)])
            assert out.loc[name, f"speedup_{part}_low"] == pytest.approx(iv.low)
            assert out.loc[name, f"speedup_{part}_high"] == pytest.approx(iv.high)
        assert np.isnan(out.loc["slow", f"speedup_{part}_low"])
        assert np.isnan(out.loc["slow", f"speedup_{part}_high"])
    # another reference: speedups over 'fast'
    assert speedups(table, dense="fast").loc["dense"].tolist() == [0.5, 2 / 3]


# ------------------------------------------------------------------------ evaluation chunks
def test_evaluation_chunks_of_a_user_file(tmp_path, byte_tokenizer):
    """A plain text file: item ids 1..n, held out when sha256(id) % 3 == 0 (the documented
    rule for ids without a number suffix); default chunks of 128 tokens."""
    lines = [f"line number {i} of my text" for i in range(1, 31)]
    (tmp_path / "xx.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")

    def held(i: int) -> bool:
        return int.from_bytes(hashlib.sha256(str(i).encode()).digest(), "big") % 3 == 0

    texts = [t for i, t in enumerate(lines, 1) if held(i)]
    assert 0 < len(texts) < 30
    stream = []
    for k, t in enumerate(texts):
        stream += ([3 + ord("\n")] if k else []) + [3 + b % 90 for b in t.encode()]
    ch = evaluation_chunks(byte_tokenizer, "xx", source="files", path=str(tmp_path))
    assert ch.input_ids.shape[1] == 128 and ch.n_items == len(texts)
    assert ch.input_ids[:, 1:][ch.attention_mask[:, 1:].bool()].tolist() == stream
    two = evaluation_chunks(byte_tokenizer, "xx", seq_len=16, max_items=2, source="files",
                            path=str(tmp_path))
    assert two.input_ids.shape[1] == 16 and two.n_items == 2
    n2 = len(texts[0].encode()) + 1 + len(texts[1].encode())
    assert int(two.attention_mask[:, 1:].sum()) == n2
    cut = evaluation_chunks(byte_tokenizer, "xx", seq_len=16, max_tokens=10,
                            source=str(tmp_path))  # a folder as the source
    assert cut.input_ids[:, 1:][cut.attention_mask[:, 1:].bool()].tolist() == stream[:10]
