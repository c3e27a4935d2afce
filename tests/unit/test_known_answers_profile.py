"""Known answers for profiling (counts, neuron statistics, the cache) and the expert classes.

- ``Profile``: hand-made count arrays whose sums, concatenations and saved/loaded copies are
  written out; every refusal of :meth:`Profile.load` on a hand-broken file, matched on its
  message.
- the tally: ``h`` recorded by forward hooks on the FFN's down projection and summed by explicit
  loops over the counted tokens (Σ|h|, Σh, Σh², active counts), the per-chunk token counts
  counted by hand, and per-chunk selection counts that add up to ``k`` per counted token.
- the cache: the saved settings written out by hand, sha256 of a known string, stale settings.
- the classes: frequencies planted on the cut-offs (``>=`` / ``<`` boundaries), z-scores worked
  out by hand for three languages, and the paper cut-offs on sorted minima/maxima.
"""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
import torch

from babel.core.cache import CacheError
from babel.core.config import ExpertClassSpec
from babel.profile.classes import (
    class_sensitivity,
    classify,
    classify_experts,
    paper_cutoffs,
    specificity_z,
)
from babel.profile.profiler import Profile, valid_mask

from ._loops import counted_tokens

# ---------------------------------------------------------------------------------------------
# Profile: sums, concatenation, save and load


def _prof(lang="xx", moments=True, c=2, n_layers=2, n_exp=3, n=4, seed=0):
    rng = np.random.default_rng(seed)
    cc = rng.integers(0, 5, (c, n_layers, n_exp)).astype(np.int32)
    ct = rng.integers(5, 9, c).astype(np.int64)
    act = rng.integers(0, 5, (n_layers, n)).astype(np.int64)
    ab = rng.uniform(0, 3, (n_layers, n))
    sm = rng.uniform(-1, 1, (n_layers, n)) if moments else None
    sq = rng.uniform(1, 2, (n_layers, n)) if moments else None
    return Profile(lang, cc, ct, act, ab, "", neuron_sum=sm, neuron_sq=sq)


def test_sum_of_profiles_concatenates_chunks_and_adds_neurons():
    """a + b: chunks of a then b (in that order), neuron arrays added element by element; the
    language is the left one's; Σh/Σh² survive only when both sides have them."""
    a, b = _prof("fr", seed=1), _prof("de", c=3, seed=2)
    s = a + b
    assert s.lang == "fr"
    assert s.chunk_counts.tolist() == a.chunk_counts.tolist() + b.chunk_counts.tolist()
    assert s.chunk_tokens.tolist() == a.chunk_tokens.tolist() + b.chunk_tokens.tolist()
    assert s.tokens == a.tokens + b.tokens
    np.testing.assert_array_equal(s.neuron_active, a.neuron_active + b.neuron_active)
    np.testing.assert_array_equal(s.neuron_abs, a.neuron_abs + b.neuron_abs)
    np.testing.assert_array_equal(s.neuron_sum, a.neuron_sum + b.neuron_sum)
    np.testing.assert_array_equal(s.neuron_sq, a.neuron_sq + b.neuron_sq)
    old = _prof("fr", moments=False, seed=3)
    for mixed in (a + old, old + a, old + old):
        assert mixed.neuron_sum is None and mixed.neuron_sq is None and not mixed.has_moments


def test_save_then_load_gives_the_same_arrays(tmp_path):
    """What is saved is read back unchanged; the language and items default to the saved ones."""
    p = _prof("fr", seed=4)
    path = tmp_path / "fr.npz"
    p.save(path, {"items_sha256": "abc", "other": 1})
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["lang"] == "fr" and meta["other"] == 1 and meta["items_sha256"] == "abc"
    assert set(meta["arrays"]) == {"chunk_counts", "chunk_tokens", "neuron_active",
                                   "neuron_abs", "neuron_sum", "neuron_sq"}
    q = Profile.load(path, "fr", n_layers=2, n_experts=3, n_neurons=4)
    assert q.lang == "fr" and q.items_sha256 == "abc"
    for k in ("chunk_counts", "chunk_tokens", "neuron_active", "neuron_abs", "neuron_sum",
              "neuron_sq"):
        np.testing.assert_array_equal(getattr(q, k), getattr(p, k))
    assert Profile.load(str(path), "fr", items_sha256="given").items_sha256 == "given"
    # a language in the settings wins over the profile's own
    p.save(tmp_path / "x.npz", {"lang": "de"})
    assert Profile.load(tmp_path / "x.npz", "de").lang == "de"
    with pytest.raises(CacheError, match=r"holds the profile of 'de', not 'fr'"):
        Profile.load(tmp_path / "x.npz", "fr")
    # no items in the settings: empty
    p.save(tmp_path / "y.npz", {})
    assert Profile.load(tmp_path / "y.npz", "fr").items_sha256 == ""


def test_saving_needs_the_moments(tmp_path):
    """A profile without Σh/Σh² cannot be saved (it would lack arrays the loader needs)."""
    p = _prof("fr", moments=False)
    with pytest.raises(ValueError, match=r"profile of 'fr' has no Σh/Σh² statistics: profile it "
                                         r"again with this version of babel"):
        p.save(tmp_path / "fr.npz", {})
    assert not (tmp_path / "fr.npz").exists()


def test_load_checks_the_partition_sizes(tmp_path):
    """L = 2, E = 3, N = 4 saved: each other size asked for is refused, naming it."""
    path = tmp_path / "fr.npz"
    _prof("fr").save(path, {})
    Profile.load(path, "fr", n_layers=2, n_experts=3, n_neurons=4)
    with pytest.raises(CacheError, match=r"has 2 layers, the partition has 3$"):
        Profile.load(path, "fr", n_layers=3)
    with pytest.raises(CacheError, match=r"has 3 experts per layer, the partition has 5$"):
        Profile.load(path, "fr", n_experts=5)
    with pytest.raises(CacheError, match=r"has 4 neurons per layer, the partition has 6$"):
        Profile.load(path, "fr", n_neurons=6)


def _save_raw(path, **arrays):
    from babel.core.cache import save_arrays
    save_arrays(path, path.with_suffix(".json"), {"lang": "fr"}, **arrays)


def _good_arrays():
    return {"chunk_counts": np.zeros((2, 3, 4), np.int32), "chunk_tokens": np.zeros(2, np.int64),
            "neuron_active": np.zeros((3, 5), np.int64), "neuron_abs": np.zeros((3, 5)),
            "neuron_sum": np.zeros((3, 5)), "neuron_sq": np.zeros((3, 5))}


@pytest.mark.parametrize("change", [
    {"chunk_counts": np.zeros((2, 3), np.int32)},  # counts not 3-d
    {"chunk_counts": np.zeros((2, 3, 4))},  # counts not integers
    {"chunk_tokens": np.zeros(3, np.int64)},  # tokens for another number of chunks
    {"chunk_tokens": np.zeros(2)},  # tokens not integers
    {"neuron_active": np.zeros(5, np.int64)},  # active counts not 2-d
    {"neuron_active": np.zeros((3, 5))},  # active counts not integers
    {"neuron_abs": np.zeros((3, 6))},  # Σ|h| of another shape
    {"neuron_sum": np.zeros((3, 5), np.int64)},  # Σh not floats
    {"neuron_sq": np.zeros((4, 5))},  # Σh² of another shape
    {"neuron_abs": np.zeros((3, 5), np.int64)},  # Σ|h| not floats
    {"neuron_sum": np.zeros((4, 5))},  # Σh of another shape
    {"neuron_sq": np.zeros((3, 5), np.int32)},  # Σh² not floats
    {k: np.zeros((4, 5), np.int64 if k == "neuron_active" else float)
     for k in ("neuron_active", "neuron_abs", "neuron_sum", "neuron_sq")},  # 4 layers, not 3
])
def test_load_refuses_inconsistent_arrays(tmp_path, change):
    """Arrays that are each well saved but do not fit together are refused by name; unsigned
    counts are integers too."""
    good = _good_arrays()
    _save_raw(tmp_path / "ok.npz", **good)
    assert Profile.load(tmp_path / "ok.npz", "fr").tokens == 0
    unsigned = {**good, "chunk_counts": good["chunk_counts"].astype(np.uint16),
                "chunk_tokens": good["chunk_tokens"].astype(np.uint32),
                "neuron_active": good["neuron_active"].astype(np.uint8)}
    _save_raw(tmp_path / "u.npz", **unsigned)
    assert Profile.load(tmp_path / "u.npz", "fr").counts.shape == (3, 4)
    _save_raw(tmp_path / "bad.npz", **(good | change))
    cc, ct, act = ((good | change)[k] for k in ("chunk_counts", "chunk_tokens", "neuron_active"))
    want = (rf"bad.npz has inconsistent arrays \(counts {list(cc.shape)}, tokens "
            rf"{list(ct.shape)}, neurons {list(act.shape)}\)").replace("[", r"\[").replace(
        "]", r"\]")
    with pytest.raises(CacheError, match=want):
        Profile.load(tmp_path / "bad.npz", "fr")


def test_valid_mask_by_hand():
    """Padding never counts; BOS counts only when not excluded (or when there is no BOS id)."""
    ids = torch.tensor([[1, 5, 1, 7], [1, 6, 0, 0]])
    am = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    assert valid_mask(ids, am, bos_id=1, exclude_bos=True).tolist() == [
        [False, True, False, True], [False, True, False, False]]
    assert valid_mask(ids, am, bos_id=1, exclude_bos=False).tolist() == [
        [True, True, True, True], [True, True, False, False]]
    assert valid_mask(ids, am, bos_id=None, exclude_bos=True).tolist() == [
        [True, True, True, True], [True, True, False, False]]
    assert valid_mask(ids, am, bos_id=1, exclude_bos=True).dtype == torch.bool


# ---------------------------------------------------------------------------------------------
# Expert classes


def test_classify_cutoffs_are_inclusive_high_and_exclusive_low():
    """high = 0.5: f = 0.5 is high (>=); low = 0.25: f = 0.25 is not rare (<); z = 2 exactly
    (3 languages: others 0 and 0.5 → mean 0.25, population std 0.25; (0.75-0.25)/0.25 = 2,
    up to rounding: z = 1.999 passes it, 2.001 does not)."""
    f = np.zeros((3, 1, 5))
    f[:, 0, 0] = 0.5  # co-activated, on the cut-off
    f[:, 0, 1] = [0.5, 0.5, 0.49]  # not high in c
    f[:, 0, 2] = 0.25  # on the low cut-off: not rare
    f[:, 0, 3] = [0.24, 0.1, 0.0]  # rare
    f[:, 0, 4] = [0.75, 0.0, 0.5]  # z of a: exactly 2
    c = classify_experts(f, high=0.5, low=0.25, z=1.999)
    assert c.co_activated.tolist() == [[True, False, False, False, False]]
    assert c.rare.tolist() == [[False, False, False, True, False]]
    assert c.specific[:, 0, 4].tolist() == [True, False, False]
    assert (c.high, c.low, c.z) == (0.5, 0.25, 1.999)
    strict = classify_experts(f, high=0.5, low=0.25, z=2.001)
    assert not strict.specific.any()
    # the default z is 3
    assert classify_experts(f, high=0.5, low=0.25).z == 3.0
    assert c.specific_any.tolist() == [[False, False, False, False, True]]


def test_classify_specific_on_both_cutoffs_exactly():
    """Frequencies [3000, 0, 2000] (any scale works): the others of a are 0 and 2000, mean
    1000, variance exactly 1e6 (so the 1e-12 guard vanishes in rounding), z = 2000/1000 = 2
    exactly; with high = 3000 and z = 2 both cut-offs are met with equality: specific (>=)."""
    f = np.array([3000.0, 0.0, 2000.0]).reshape(3, 1, 1)
    assert specificity_z(f)[0, 0, 0] == 2.0
    c = classify_experts(f, high=3000.0, low=0.0, z=2.0)
    assert c.specific.ravel().tolist() == [True, False, False]


def test_classify_takes_every_cutoff_from_the_spec():
    """r = 0.2 and high_factor 2.5, low_factor 1.25, z 1.999: high = 0.5, low = 0.25 (as above);
    not the default z = 3, which the planted z = 2 does not reach."""
    f = np.zeros((3, 1, 2))
    f[:, 0, 0] = [0.75, 0.0, 0.5]  # z = 2 in a
    f[:, 0, 1] = [0.2, 0.2, 0.2]  # rare: 0.2 < 0.25
    c = classify(f, ExpertClassSpec(high_factor=2.5, low_factor=1.25, specific_z=1.999), 0.2)
    assert (c.high, c.low, c.z) == pytest.approx((0.5, 0.25, 1.999))
    assert c.specific[:, 0, 0].tolist() == [True, False, False]
    assert c.rare.tolist() == [[False, True]]
    assert c.co_activated.tolist() == [[False, False]]


def test_specificity_z_by_hand():
    """Three languages [0.75, 0, 0.5]: for a, others 0 and 0.5 (mean 0.25, std 0.25): z = 2;
    for b, others 0.75 and 0.5 (mean 0.625, std 0.125): z = -5; for c, others 0.75 and 0
    (mean 0.375, std 0.375): z = 1/3. Equal others (std 0): the difference over 1e-6."""
    f = np.array([0.75, 0.0, 0.5]).reshape(3, 1, 1)
    np.testing.assert_allclose(specificity_z(f).ravel(), [2.0, -5.0, 1 / 3], rtol=1e-9)
    g = np.array([0.75, 0.25, 0.25]).reshape(3, 1, 1)  # binary fractions: exact sums
    z = specificity_z(g).ravel()
    np.testing.assert_allclose(z[0], 0.5 / 1e-6, rtol=1e-9)
    # b: others 0.75 and 0.25 (mean 0.5, std 0.25): (0.25 - 0.5)/0.25 = -1
    np.testing.assert_allclose(z[1:], [-1.0, -1.0], rtol=1e-9)
    h = np.full((4, 1, 1), 0.25)
    np.testing.assert_array_equal(specificity_z(h), 0.0)


def test_class_sensitivity_counts_on_the_cutoffs_exactly():
    """Share r = 1000 and frequencies in the thousands (the scale where z-scores are exact):
    per-language minima [0, 1000, 4000, 0] and maxima [3000, 1000, 4000, 500]; the best z of
    a high (>= 3r) language per expert is [2, none, 0, none] (expert (0, 0) is 3000 = 3r in a,
    with z exactly 2). Every count below sits on its cut-off with equality."""
    f = np.zeros((3, 2, 2))
    f[:, 0, 0] = [3000, 0, 2000]
    f[:, 0, 1] = [1000, 1000, 1000]
    f[:, 1, 0] = [4000, 4000, 4000]
    f[:, 1, 1] = [500, 250, 0]
    spec = ExpertClassSpec(high_factor=3.0, low_factor=0.25, specific_z=3.0)
    df = class_sensitivity(f, 1000.0, spec, high_factors=[1.0, 4.0, 4.5],
                           low_factors=[0.5, 1.0, 1.5], zs=[0.0, 2.0, 2.5])
    assert list(df.columns) == ["class", "cutoff", "value", "experts", "share"]
    got = list(df[["class", "cutoff", "value", "experts"]].itertuples(index=False, name=None))
    assert got == [
        ("co_activated", "high_factor", 1.0, 2), ("co_activated", "high_factor", 4.0, 1),
        ("co_activated", "high_factor", 4.5, 0),
        ("rare", "low_factor", 0.5, 0), ("rare", "low_factor", 1.0, 1),
        ("rare", "low_factor", 1.5, 2),
        ("specific_any", "specific_z", 0.0, 2), ("specific_any", "specific_z", 2.0, 1),
        ("specific_any", "specific_z", 2.5, 0)]
    np.testing.assert_allclose(df.share, df.experts / 4)


# ---------------------------------------------------------------------------------------------
# Profiling a tiny model: counts and neuron statistics against explicit loops


def _chunks(seed=0, c=5, t=10, bos=1):
    """5 chunks of 10 tokens, BOS first; the last chunk padded after 6 tokens: 9, 9, 9, 9
    and 5 tokens count (BOS excluded)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 90, (c, t), generator=g)
    ids[:, 0] = bos
    am = torch.ones_like(ids)
    am[-1, 6:] = 0
    ids[-1, 6:] = 0
    return ids, am


def _loop_reference(model, part, k, ids, am, bos):
    """Per chunk and token, the ``h`` of every layer (hooked input of the down projection) and
    the gate's output; sums over the counted tokens by explicit loops; per-layer top-k experts
    by Σ|h| over each expert's neurons (the per-layer top-k rule)."""
    n_l, n_e, n = part.n_layers, part.n_experts, part.n_neurons
    out = {"counts": np.zeros((ids.shape[0], n_l, n_e), np.int64),
           "tokens": np.zeros(ids.shape[0], np.int64),
           "active": np.zeros((n_l, n), np.int64), "abs": np.zeros((n_l, n)),
           "sum": np.zeros((n_l, n)), "sq": np.zeros((n_l, n))}
    for c, hs, gates in counted_tokens(model, ids, am, bos):
        out["tokens"][c] += 1
        for layer in range(n_l):
            h = hs[layer].double().numpy()
            g = gates[layer].double().numpy() if gates else h
            s = np.zeros(n_e)
            for j in range(n):
                s[part.labels[layer, j]] += abs(h[j])
                out["abs"][layer, j] += abs(h[j])
                out["sum"][layer, j] += h[j]
                out["sq"][layer, j] += h[j] * h[j]
                out["active"][layer, j] += g[j] > 0
            for e in np.argsort(-s, kind="stable")[:k]:
                out["counts"][c, layer, e] += 1
    return out


@pytest.mark.parametrize("kind,dtype", [("llama", torch.float32), ("gpt2", torch.float32),
                                        ("llama", torch.float64), ("gpt2", torch.float64),
                                        ("llama", torch.bfloat16)])
def test_profile_equals_explicit_loops(kind, dtype):
    """Counts per chunk (k = 0.25·8 = 2 experts per layer and token), tokens per chunk
    (9, 9, 9, 9, 5), active counts, Σ|h|, Σh and Σh² in the original neuron order equal the
    loops; batches of 2 (three forward passes, the last one of a single chunk); gated and
    plain FFNs; fp32, fp64 and bf16 models: fp64 ``h`` is summed in fp64 (rtol 1e-10), bf16
    ``h`` in fp32 (rtol 1e-5, where bf16 sums would be off by ~1e-3)."""
    from babel.construct.partition import build_partition
    from babel.core.config import PartitionConfig, SelectionRule
    from babel.profile.profiler import profile_chunks
    from tests.conftest import _tiny

    model = _tiny(kind).to(dtype)
    part = build_partition(model, PartitionConfig(n_experts=8))
    assert not np.array_equal(part.order, np.sort(part.order, axis=-1))  # a real reordering
    ids, am = _chunks()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    prof = profile_chunks(model, part, SelectionRule("per_layer_topk", share=0.25), ids, am,
                          lang="xx", batch_size=2, bos_id=1, progress=False)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    ref = _loop_reference(model, part, 2, ids, am, bos=1)
    assert prof.lang == "xx" and prof.items_sha256 == ""
    assert prof.chunk_tokens.tolist() == [9, 9, 9, 9, 5] == ref["tokens"].tolist()
    assert prof.chunk_tokens.dtype == np.int64 and prof.chunk_counts.dtype == np.int32
    assert prof.chunk_counts.shape == (5, 3, 8)
    np.testing.assert_array_equal(prof.chunk_counts, ref["counts"])
    np.testing.assert_array_equal(prof.chunk_counts.sum(2), np.repeat(2 * ref["tokens"][:, None], 3, 1))
    assert prof.neuron_active.dtype == np.int64
    np.testing.assert_array_equal(prof.neuron_active, ref["active"])
    for name in ("abs", "sum", "sq"):
        got = getattr(prof, f"neuron_{name}")
        assert got.dtype == np.float64
        rtol = 1e-10 if dtype == torch.float64 else 1e-5
        np.testing.assert_allclose(got, ref[name], rtol=rtol, atol=rtol / 100, err_msg=name)


def test_profile_counts_bos_when_asked_and_handles_no_chunks(tiny_llama):
    """exclude_bos=False: 10, 10, 10, 10, 6 tokens (padding still never counts); no chunks:
    empty arrays of the partition's shape, zero statistics."""
    from babel.construct.partition import build_partition
    from babel.core.config import PartitionConfig, SelectionRule
    from babel.profile.profiler import profile_chunks

    part = build_partition(tiny_llama, PartitionConfig(n_experts=8))
    ids, am = _chunks()
    rule = SelectionRule("per_layer_topk", share=0.25)
    prof = profile_chunks(tiny_llama, part, rule, ids, am, batch_size=8, bos_id=1,
                          exclude_bos=False, progress=False)
    assert prof.chunk_tokens.tolist() == [10, 10, 10, 10, 6]
    np.testing.assert_array_equal(prof.chunk_counts.sum(2), np.repeat(2 * prof.chunk_tokens[:, None], 3, 1))
    empty = profile_chunks(tiny_llama, part, rule, ids[:0], am[:0], bos_id=1, progress=False)
    assert empty.chunk_counts.shape == (0, 3, 8) and empty.chunk_counts.dtype == np.int32
    assert empty.chunk_tokens.shape == (0,) and empty.chunk_tokens.dtype == np.int64
    assert empty.tokens == 0 and not empty.neuron_active.any() and not empty.neuron_sq.any()
    assert empty.neuron_abs.shape == (3, 64)


def test_partition_of_another_model_is_refused(tiny_llama):
    """A partition built for 3 layers x 64 neurons cannot profile a 2-layer model."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    from babel.construct.partition import build_partition
    from babel.core.config import PartitionConfig, SelectionRule
    from babel.profile.profiler import _Tally

    part = build_partition(tiny_llama, PartitionConfig(n_experts=8))
    torch.manual_seed(0)
    small = AutoModelForCausalLM.from_config(LlamaConfig(
        vocab_size=97, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2))
    with pytest.raises(ValueError, match=r"partition has 3 layers x 64 neurons but the model "
                                         r"has 2 x 48: build the partition for this model"):
        _Tally(small, part, SelectionRule())


# ---------------------------------------------------------------------------------------------
# The cache of profiles


def test_items_sha256_of_a_known_string():
    """The ids joined by newlines, UTF-8, sha256: ["a", "é"] is the sha256 of b"a\\n\\xc3\\xa9"."""
    from babel.profile.cache import items_sha256

    assert items_sha256(["a", "é"]) == hashlib.sha256(b"a\n\xc3\xa9").hexdigest()
    assert items_sha256([]) == hashlib.sha256(b"").hexdigest()


def _fake_clock(monkeypatch, end=12.5):
    """``time.perf_counter`` of the cache module: 10.0, then ``end`` (by default a run of 2.5 s)."""
    import types

    import babel.profile.cache as cache_mod
    ticks = iter([10.0, end])
    monkeypatch.setattr(cache_mod, "time", types.SimpleNamespace(perf_counter=lambda: next(ticks)))


def _counting(monkeypatch):
    import babel.profile.cache as cache_mod
    calls = []
    real = cache_mod.profile_chunks
    monkeypatch.setattr(cache_mod, "profile_chunks",
                        lambda *a, **k: calls.append(k["lang"]) or real(*a, **k))
    return calls


def test_profile_language_saves_the_settings_that_made_it(tiny_llama, byte_tokenizer,
                                                          monkeypatch):
    """The first 3 items of the profiling split, BOS counted: the saved settings hold the
    model, language, configs, weights hash, corpus digest (sha256 of data/corpus/fr.jsonl,
    16 hex digits, and the split rule), the statistics, 3 items and their ids' sha256, the
    tokens (every unpadded position), 2.5 s (a fake clock), 1 process and tokens / 2.5 s."""
    from babel.construct.partition import build_partition
    from babel.core import paths
    from babel.core.artifacts import config_dict
    from babel.core.config import PartitionConfig, ProfileConfig
    from babel.data.corpus import load_items
    from babel.profile.cache import profile_file_for, profile_language, profile_languages

    part = build_partition(tiny_llama, PartitionConfig(n_experts=8))
    cfg = ProfileConfig(max_items=3, seq_len=64, exclude_bos=False, batch_size=2)
    calls = _counting(monkeypatch)
    _fake_clock(monkeypatch)
    prof = profile_language(tiny_llama, byte_tokenizer, part, "fr", cfg, progress=False)
    ids = [it.id for it in load_items("fr", split="profiling", max_items=3)]
    assert calls == ["fr"] and len(ids) == 3
    assert prof.items_sha256 == hashlib.sha256("\n".join(ids).encode()).hexdigest()
    path = profile_file_for("tiny-llama", part, cfg, "fr")
    assert path == paths.profile_file("tiny-llama", f"{part.config.key}_{cfg.key}", "fr")
    assert path.exists()
    meta = json.loads(path.with_suffix(".json").read_text())
    corpus = hashlib.sha256((paths.CORPUS_DIR / "fr.jsonl").read_bytes()).hexdigest()[:16]
    expected = {
        "model": "tiny-llama", "lang": "fr", "config": json.loads(json.dumps(cfg.as_dict())),
        "partition": json.loads(json.dumps(config_dict(part.config))),
        "partition_weights_sha256": part.weights_sha256,
        "corpus": f"{corpus}-topic-stratified-v1", "statistics": "counts,active,abs,sum,sq",
        "items": 3, "items_sha256": prof.items_sha256, "tokens": prof.tokens,
        "seconds": 2.5, "processes": 1, "tokens_per_second": round(prof.tokens / 2.5, 1)}
    assert {k: meta[k] for k in expected} == expected
    assert set(meta) == set(expected) | {"files", "arrays"}  # nothing else
    assert prof.tokens > 100
    # read back from the cache, not computed again
    again = profile_languages(tiny_llama, byte_tokenizer, part, ["fr"], cfg, progress=False)
    assert calls == ["fr"] and list(again) == ["fr"]
    np.testing.assert_array_equal(again["fr"].chunk_counts, prof.chunk_counts)
    assert again["fr"].items_sha256 == prof.items_sha256
    # refresh: computed again; another model name: another file
    _fake_clock(monkeypatch)
    profile_language(tiny_llama, byte_tokenizer, part, "fr", cfg, refresh=True, progress=False)
    assert calls == ["fr", "fr"]
    _fake_clock(monkeypatch)
    profile_languages(tiny_llama, byte_tokenizer, part, ["fr"], cfg, model_name="other",
                      progress=False)
    assert calls == ["fr", "fr", "fr"]
    assert profile_file_for("other", part, cfg, "fr").exists()


def test_stale_profiles_are_computed_again_silently(tiny_llama, byte_tokenizer, monkeypatch):
    """Other saved settings (a model name edited in the .json) are stale: computed again, no
    warning, nothing moved aside; a profile of older statistics (4 arrays, no Σh/Σh²) is
    computed again; unreadable settings are moved aside with a warning."""
    import warnings

    from babel.construct.partition import build_partition
    from babel.core.cache import save_arrays
    from babel.core.config import PartitionConfig, ProfileConfig
    from babel.profile.cache import load_meta, profile_file_for, profile_language

    part = build_partition(tiny_llama, PartitionConfig(n_experts=8))
    cfg = ProfileConfig(max_items=2, seq_len=64, batch_size=4)
    calls = _counting(monkeypatch)
    first = profile_language(tiny_llama, byte_tokenizer, part, "de", cfg, progress=False)
    path = profile_file_for("tiny-llama", part, cfg, "de")
    meta = load_meta(path)
    assert meta["lang"] == "de" and meta["items"] == 2
    edited = {**meta, "model": "another"}
    path.with_suffix(".json").write_text(json.dumps(edited))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        profile_language(tiny_llama, byte_tokenizer, part, "de", cfg, progress=False)
    assert calls == ["de", "de"]
    assert load_meta(path)["model"] == "tiny-llama"
    assert sorted(p.name for p in path.parent.glob("de*")) == ["de.json", "de.npz"]
    # older statistics (an older babel's 4 arrays): stale, computed again silently, nothing
    # moved aside
    old = {k: getattr(first, k) for k in ("chunk_counts", "chunk_tokens", "neuron_active",
                                           "neuron_abs")}
    save_arrays(path, path.with_suffix(".json"), {**meta, "statistics": "counts,active,abs"},
                **old)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        profile_language(tiny_llama, byte_tokenizer, part, "de", cfg, progress=False)
    assert calls == ["de", "de", "de"]
    assert sorted(p.name for p in path.parent.glob("de*")) == ["de.json", "de.npz"]
    assert load_meta(path)["statistics"] == "counts,active,abs,sum,sq"
    # unreadable settings beside a sound .npz: broken, moved aside with a warning
    path.with_suffix(".json").write_text("{not json")
    with pytest.warns(UserWarning):
        profile_language(tiny_llama, byte_tokenizer, part, "de", cfg, progress=False)
    assert calls == ["de", "de", "de", "de"]


def test_a_users_file_is_checked_and_digested(tmp_path, tiny_llama, byte_tokenizer,
                                              monkeypatch):
    """A user's folder: the corpus digest is the sha256 of its fr.txt (16 hex digits) and the
    split rule; a file of a few tokens is refused before any forward pass."""
    from babel.construct.partition import build_partition
    from babel.core.config import PartitionConfig, ProfileConfig
    from babel.data.checks import UserTextError
    from babel.data.corpus import load_items
    from babel.profile.cache import load_meta, profile_file_for, profile_language

    folder = tmp_path / "mine"
    folder.mkdir()
    texts = [it.text for it in load_items("fr", max_items=12)]
    (folder / "fr.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    part = build_partition(tiny_llama, PartitionConfig(n_experts=8))
    cfg = ProfileConfig(source="files", path=str(folder), max_items=2, seq_len=64)
    calls = _counting(monkeypatch)
    profile_language(tiny_llama, byte_tokenizer, part, "fr", cfg, progress=False)
    digest = hashlib.sha256((folder / "fr.txt").read_bytes()).hexdigest()[:16]
    meta = load_meta(profile_file_for("tiny-llama", part, cfg, "fr"))
    assert meta["corpus"] == f"{digest}-topic-stratified-v1" and meta["items"] == 2
    assert calls == ["fr"]
    (folder / "de.txt").write_text("Guten Tag und danke\n", encoding="utf-8")
    with pytest.raises(UserTextError, match=r"only \d+ tokens \(at least 200 needed\)"):
        profile_language(tiny_llama, byte_tokenizer, part, "de", cfg, progress=False)
    assert calls == ["fr"]


def test_frequency_tensor_and_items():
    """Frequencies are counts over tokens, stacked in the dict's order; same_items refuses
    profiles of different or unknown items."""
    from babel.profile.cache import MixedItemsError, frequency_tensor

    a = Profile("a", np.array([[[1, 3]], [[1, 1]]], np.int32), np.array([4, 4]),
                np.zeros((1, 2), np.int64), np.zeros((1, 2)), "h1")
    b = Profile("b", np.array([[[5, 0]]], np.int32), np.array([10]),
                np.zeros((1, 2), np.int64), np.zeros((1, 2)), "h1")
    langs, f = frequency_tensor({"b": b, "a": a}, same_items=True)
    assert langs == ["b", "a"]
    np.testing.assert_allclose(f, [[[0.5, 0.0]], [[0.25, 0.5]]])
    b.items_sha256 = "h2"
    with pytest.raises(MixedItemsError, match=r"^the profiles cover different corpus items.*"
                                              r"max_tokens=None.*same_items=False"):
        frequency_tensor({"a": a, "b": b}, same_items=True)
    assert frequency_tensor({"a": a, "b": b})[0] == ["a", "b"]
    a.items_sha256 = b.items_sha256 = ""
    with pytest.raises(MixedItemsError, match="^the profiles cover different corpus items"):
        frequency_tensor({"a": a, "b": b}, same_items=True)
    assert frequency_tensor({"a": a}, same_items=False)[1].shape == (1, 1, 2)


def test_frequency_table_written_as_parquet(tmp_path):
    """The parquet file holds the table: 2 layers x 2 experts of one language, by hand."""
    from babel.profile.cache import write_frequency_table

    a = Profile("a", np.array([[[1, 2], [3, 0]]], np.int32), np.array([4]),
                np.zeros((2, 2), np.int64), np.zeros((2, 2)))
    out = write_frequency_table({"a": a}, model="m", path=tmp_path / "t.parquet")
    assert out == tmp_path / "t.parquet"
    t = pd.read_parquet(out)
    assert list(t.columns) == ["model", "language", "layer", "expert", "frequency", "count",
                               "tokens"]
    assert t.layer.tolist() == [0, 0, 1, 1] and t.expert.tolist() == [0, 1, 0, 1]
    assert t["count"].tolist() == [1, 2, 3, 0] and t.tokens.tolist() == [4] * 4
    np.testing.assert_allclose(t.frequency, [0.25, 0.5, 0.75, 0.0])
    assert (t.model == "m").all() and (t.language == "a").all()
    # the file holds the seven columns and no index column (index=False)
    import pyarrow.parquet as pq
    assert pq.read_schema(out).names == ["model", "language", "layer", "expert", "frequency",
                                         "count", "tokens"]


def test_partition_sizes_are_checked_layer_by_layer():
    """3 layers x 64 neurons: a 2-layer model of 64 neurons is refused (layers differ), and so
    is a 3-layer model whose first FFN has 48 neurons (the first layer is the one compared)."""
    from transformers import AutoModelForCausalLM, LlamaConfig
    from transformers.models.llama.modeling_llama import LlamaMLP

    from babel.construct.partition import build_partition
    from babel.core.config import PartitionConfig, SelectionRule
    from babel.profile.profiler import _Tally
    from tests.conftest import _tiny

    part = build_partition(_tiny("llama"), PartitionConfig(n_experts=8))

    def llama(layers, width=64):
        torch.manual_seed(0)
        return AutoModelForCausalLM.from_config(LlamaConfig(
            vocab_size=97, hidden_size=32, intermediate_size=width, num_hidden_layers=layers,
            num_attention_heads=4, num_key_value_heads=2))

    with pytest.raises(ValueError, match=r"partition has 3 layers x 64 neurons but the model "
                                         r"has 2 x 64"):
        _Tally(llama(2), part, SelectionRule())
    odd = llama(3)
    cfg48 = LlamaConfig(hidden_size=32, intermediate_size=48)
    odd.model.layers[0].mlp = LlamaMLP(cfg48)
    with pytest.raises(ValueError, match=r"partition has 3 layers x 64 neurons but the model "
                                         r"has 3 x 48"):
        _Tally(odd, part, SelectionRule())


def test_tally_accumulates_in_float64_on_the_models_device():
    """Σ|h|, Σh and Σh² over two batches whose h are 2^24 and then 1 (fp32 values): 2^24 + 1
    and 2^48 + 1 exactly, which float64 holds and float32 does not. The accumulators live on
    the model's device even when torch's default device is another one (meta here)."""
    from babel.construct.partition import build_partition
    from babel.core.config import PartitionConfig, SelectionRule
    from babel.profile.profiler import _Tally
    from tests.conftest import _tiny

    model = _tiny("llama")
    part = build_partition(model, PartitionConfig(n_experts=8))
    with torch.device("meta"):
        tally = _Tally(model, part, SelectionRule())
    for acc in (tally.active, tally.abs, tally.sum, tally.sq):
        assert acc.device.type == "cpu" and acc.dtype == torch.float64
        assert acc.shape == (3, 64) and not acc.any()
    tally.validf = torch.ones(1)
    for value in (2.0 ** 24, 1.0):
        h = torch.zeros(1, 1, 64)
        h[0, 0, 5] = value
        tally.on_h(1, h)
    tally.on_pre(1, torch.full((1, 64), 2.0 ** 24))
    tally.on_pre(1, torch.tensor([[-3.0, 0.0, 0.5] + [0.0] * 61]))
    identity = np.tile(np.arange(64), (3, 1))
    stats = tally.neuron_stats(identity)
    assert stats["neuron_abs"][1, 5] == 2.0 ** 24 + 1
    assert stats["neuron_sum"][1, 5] == 2.0 ** 24 + 1
    assert stats["neuron_sq"][1, 5] == 2.0 ** 48 + 1
    assert stats["neuron_abs"].sum() == 2.0 ** 24 + 1  # nothing else, no other layer
    # active: positive pre-activations only (2^24 > 0 everywhere, then only 0.5 > 0)
    assert stats["neuron_active"][1].tolist() == [1, 1, 2] + [1] * 61
    assert not stats["neuron_active"][[0, 2]].any()
    assert stats["neuron_active"].dtype == np.int64


def test_neuron_stats_return_to_the_original_neuron_order():
    """``order[l, j]`` is the original index of contiguous position j: the value at position j
    goes to neuron order[l, j] (reversed order here: position 0 is neuron 63)."""
    from babel.construct.partition import build_partition
    from babel.core.config import PartitionConfig, SelectionRule
    from babel.profile.profiler import _Tally
    from tests.conftest import _tiny

    model = _tiny("llama")
    part = build_partition(model, PartitionConfig(n_experts=8))
    tally = _Tally(model, part, SelectionRule())
    tally.validf = torch.tensor([1.0, 0.0])  # the second token does not count
    h = torch.arange(1, 2 * 64 + 1, dtype=torch.float32).reshape(1, 2, 64)
    h[0, 0, :32] *= -1  # negative on the first 32 positions of the counted token
    tally.on_h(2, h)
    tally.on_pre(2, h)
    order = np.tile(np.arange(63, -1, -1), (3, 1))
    stats = tally.neuron_stats(order)
    pos = np.arange(1, 65, dtype=float)  # |h| of the counted token at positions 0..63
    np.testing.assert_array_equal(stats["neuron_abs"][2], pos[::-1])
    signed = np.where(np.arange(64) < 32, -pos, pos)
    np.testing.assert_array_equal(stats["neuron_sum"][2], signed[::-1])
    np.testing.assert_array_equal(stats["neuron_sq"][2], (pos ** 2)[::-1])
    np.testing.assert_array_equal(stats["neuron_active"][2], (signed > 0)[::-1].astype(int))
    assert not stats["neuron_abs"][:2].any()


def test_compiled_profiling_hands_the_body_to_torch_compile(tiny_llama, monkeypatch):
    """compiled=True: the model's body goes through ``torch.compile`` once per call (a stub
    here that records it and returns it unchanged, so the profile equals the eager one);
    compiled=False never calls it."""
    from babel.construct.partition import build_partition
    from babel.core.config import PartitionConfig, SelectionRule
    from babel.models.ffn import body
    from babel.profile.profiler import profile_chunks

    seen, options = [], []
    monkeypatch.setattr(torch, "compile",
                        lambda fn, **kw: seen.append(fn) or options.append(kw) or fn)
    part = build_partition(tiny_llama, PartitionConfig(n_experts=8))
    ids, am = _chunks()
    rule = SelectionRule("per_layer_topk", share=0.25)
    eager = profile_chunks(tiny_llama, part, rule, ids, am, bos_id=1, progress=False)
    assert seen == []
    comp = profile_chunks(tiny_llama, part, rule, ids, am, bos_id=1, progress=False,
                          compiled=True)
    assert len(seen) == 1 and seen[0] is body(tiny_llama)
    assert options == [{"backend": "inductor"}]  # COMPILE_BACKEND, named explicitly
    np.testing.assert_array_equal(comp.chunk_counts, eager.chunk_counts)
    np.testing.assert_array_equal(comp.neuron_sq, eager.neuron_sq)


def test_run_batches_yields_each_batch_eagerly_by_default(tiny_llama, monkeypatch):
    """5 chunks in batches of 2: three batches (2, 2, 1 chunks), each with its valid mask (BOS
    and padding excluded) and attention mask; the tally's flat float mask is the batch's;
    without ``compiled`` nothing is compiled."""
    from babel.construct.partition import build_partition
    from babel.core.config import PartitionConfig, SelectionRule
    from babel.profile.profiler import _Tally, run_batches

    seen = []
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: seen.append(fn) or fn)
    part = build_partition(tiny_llama, PartitionConfig(n_experts=8))
    tally = _Tally(tiny_llama, part, SelectionRule())
    ids, am = _chunks()
    sizes = []
    for valid, mask in run_batches(tiny_llama, tally, ids, am, batch_size=2, bos_id=1,
                                   exclude_bos=True):
        s = sum(sizes)
        sizes.append(valid.shape[0])
        assert torch.equal(mask, am[s:s + valid.shape[0]])
        want = (am[s:s + valid.shape[0]] == 1) & (ids[s:s + valid.shape[0]] != 1)
        assert torch.equal(valid, want)
        assert tally.validf.dtype == torch.float32
        assert torch.equal(tally.validf, want.reshape(-1).float())
    assert sizes == [2, 2, 1] and seen == []


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_inputs_on_the_cpu_are_moved_to_the_models_device():
    """A model on the GPU profiles CPU chunks exactly as it profiles the same chunks already
    on the GPU (the batches are moved to the model's device)."""
    from babel.construct.partition import build_partition
    from babel.core.config import PartitionConfig, SelectionRule
    from babel.profile.profiler import profile_chunks
    from tests.conftest import _tiny

    model = _tiny("llama").cuda()
    part = build_partition(model, PartitionConfig(n_experts=8))
    ids, am = _chunks()
    rule = SelectionRule("per_layer_topk", share=0.25)
    on_cpu = profile_chunks(model, part, rule, ids, am, bos_id=1, progress=False)
    on_gpu = profile_chunks(model, part, rule, ids.cuda(), am.cuda(), bos_id=1, progress=False)
    np.testing.assert_array_equal(on_cpu.chunk_counts, on_gpu.chunk_counts)
    np.testing.assert_array_equal(on_cpu.neuron_abs, on_gpu.neuron_abs)


def test_left_padding_is_masked_out_of_the_forward_pass(tiny_llama):
    """A chunk padded on the left (4 padding positions): the model must not attend to them,
    so the padding's token ids (0 or 50) change nothing at all — neither the counted tokens
    (9 and 6) nor any count or statistic."""
    from babel.construct.partition import build_partition
    from babel.core.config import PartitionConfig, SelectionRule
    from babel.profile.profiler import profile_chunks

    part = build_partition(tiny_llama, PartitionConfig(n_experts=8))
    ids, _ = _chunks(c=2)
    am = torch.ones_like(ids)
    am[1, :4] = 0
    rule = SelectionRule("per_layer_topk", share=0.25)
    profs = []
    for pad in (0, 50):
        padded = ids.clone()
        padded[1, :4] = pad
        profs.append(profile_chunks(tiny_llama, part, rule, padded, am, bos_id=1,
                                    progress=False))
    a, b = profs
    assert a.chunk_tokens.tolist() == b.chunk_tokens.tolist() == [9, 6]
    np.testing.assert_array_equal(a.chunk_counts, b.chunk_counts)
    for name in ("neuron_active", "neuron_abs", "neuron_sum", "neuron_sq"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_paper_cutoffs_on_sorted_minima_and_maxima():
    """16 experts with minima 0.01·(1..16) (shuffled) and maxima 0.1 above them, r = 0.5:
    half of 16 is 8, so the co-activated cut-off is the 9th smallest minimum (the 8 largest
    reach it): 0.09 / 0.5 = 0.18; 1000/8192 of 16 rounds up to 2 experts, so the rare cut-off
    is just above the 2nd smallest maximum: 0.12 / 0.5 = 0.24 (plus one ulp)."""
    mins = np.random.default_rng(0).permutation(np.arange(1, 17) * 0.01)
    f = np.stack([mins, mins + 0.1, mins + 0.05]).reshape(3, 2, 8)
    cut = paper_cutoffs(f, 0.5)
    assert set(cut) == {"co_activated_high_factor", "rare_low_factor"}
    assert cut["co_activated_high_factor"] == pytest.approx(0.18, rel=1e-12)
    second_max = 0.02 + 0.1  # the 2nd smallest maximum, as the array holds it
    assert cut["rare_low_factor"] == np.nextafter(second_max, 1.0) / 0.5
    assert cut["rare_low_factor"] > second_max / 0.5
    assert cut["rare_low_factor"] == pytest.approx(0.24, rel=1e-12)


# ---------------------------------------------------------------------------------------------
# What the cache hands to the profiler, and what it refuses to reuse


def test_profile_language_hands_the_config_to_the_profiler(tiny_llama, byte_tokenizer,
                                                           monkeypatch):
    """Each setting of the config reaches :func:`profile_chunks` as given: the language, batch
    size 3, BOS id 1 (the tokenizer's) excluded, compiled (a stub compiler here), progress off
    when asked and on by default; the chunks are those of :func:`language_chunks`. A run of
    0.4375 s (a fake clock) is saved as 0.44 s and unpadded tokens / 0.4375 (to 0.1)."""
    import babel.profile.cache as cache_mod
    from babel.construct.partition import build_partition
    from babel.core.config import PartitionConfig, ProfileConfig
    from babel.profile.cache import language_chunks, load_meta, profile_file_for

    monkeypatch.setattr(torch, "compile", lambda fn, **kw: fn)
    real, seen = cache_mod.profile_chunks, []
    monkeypatch.setattr(cache_mod, "profile_chunks",
                        lambda *a, **k: seen.append((a, k)) or real(*a, **k))
    part = build_partition(tiny_llama, PartitionConfig(n_experts=8))
    cfg = ProfileConfig(max_items=2, seq_len=64, batch_size=3, exclude_bos=True, compiled=True)
    _fake_clock(monkeypatch, end=10.4375)
    prof = cache_mod.profile_language(tiny_llama, byte_tokenizer, part, "de", cfg,
                                      progress=False)
    (args, kw), = seen
    assert kw == {"lang": "de", "batch_size": 3, "bos_id": 1, "exclude_bos": True,
                  "progress": False, "compiled": True}
    assert args[0] is tiny_llama and args[1] is part and args[2] == cfg.rule
    chunks, _ = language_chunks(byte_tokenizer, "de", cfg)
    assert torch.equal(args[3], chunks.input_ids) and torch.equal(args[4], chunks.attention_mask)
    assert prof.lang == "de"
    # tokens: unpadded positions that are not BOS, counted one by one
    ids, am = chunks.input_ids.tolist(), chunks.attention_mask.tolist()
    unpadded = sum(m for row in am for m in row)
    counted = sum(1 for r, row in enumerate(am) for t, m in enumerate(row)
                  if m and ids[r][t] != 1)
    assert prof.tokens == counted == unpadded - len(am)  # one BOS per chunk
    meta = load_meta(profile_file_for("tiny-llama", part, cfg, "de"))
    assert meta["seconds"] == 0.44
    assert unpadded % 7 != 0  # so unpadded·16/7 has more than one decimal
    assert meta["tokens_per_second"] == round(unpadded * 16 / 7, 1)
    assert meta["tokens_per_second"] != round(unpadded * 16 / 7, 2)
    # BOS counted, eager, progress by default
    _fake_clock(monkeypatch)
    cfg2 = ProfileConfig(max_items=2, seq_len=64, batch_size=3, exclude_bos=False)
    prof2 = cache_mod.profile_language(tiny_llama, byte_tokenizer, part, "de", cfg2)
    kw2 = seen[-1][1]
    assert kw2["exclude_bos"] is False and kw2["compiled"] is False and kw2["progress"] is True
    assert prof2.tokens == unpadded


def test_cached_profile_of_other_sizes_is_moved_aside(tiny_llama, byte_tokenizer, monkeypatch):
    """A cached profile whose settings match but whose arrays have 2 layers (not 3), 4 experts
    per layer (not 8) or 32 neurons (not 64) is refused by the partition's sizes: both files
    (.npz and .json) are moved aside with a warning naming the size, and it is computed again."""
    from babel.construct.partition import build_partition
    from babel.core.cache import CacheWarning
    from babel.core.config import PartitionConfig, ProfileConfig
    from babel.profile.cache import load_meta, profile_file_for, profile_language

    part = build_partition(tiny_llama, PartitionConfig(n_experts=8))
    cfg = ProfileConfig(max_items=1, seq_len=32, batch_size=4)
    calls = _counting(monkeypatch)
    profile_language(tiny_llama, byte_tokenizer, part, "fr", cfg, progress=False)
    path = profile_file_for("tiny-llama", part, cfg, "fr")
    settings = {k: v for k, v in load_meta(path).items() if k not in ("files", "arrays")}
    cases = [((2, 8, 64), "has 2 layers, the partition has 3"),
             ((3, 4, 64), "has 4 experts per layer, the partition has 8"),
             ((3, 8, 32), "has 32 neurons per layer, the partition has 64")]
    for i, ((n_l, n_e, n), why) in enumerate(cases):
        for old in path.parent.glob("fr.*.bad-*"):
            old.unlink()
        _prof("fr", n_layers=n_l, n_exp=n_e, n=n).save(path, settings)
        with pytest.warns(CacheWarning, match=why):
            again = profile_language(tiny_llama, byte_tokenizer, part, "fr", cfg, progress=False)
        assert len(calls) == i + 2
        assert again.chunk_counts.shape[1:] == (3, 8) and again.neuron_abs.shape == (3, 64)
        moved = sorted(p.name.split(".bad-")[0] for p in path.parent.glob("fr.*.bad-*"))
        assert moved == ["fr.json", "fr.npz"]


def test_corpus_digest_of_a_hub_source_is_its_name():
    """A hub source (flores_plus, wikipedia) is digested by its name and the split rule, with or
    without a local copy's path: no file of the user's is read."""
    from babel.profile.cache import _corpus_digest

    assert _corpus_digest("fr", "flores_plus") == "flores_plus-topic-stratified-v1"
    assert _corpus_digest("fr", "wikipedia", "/no/such/copy") == "wikipedia-topic-stratified-v1"


def test_language_chunks_keep_the_token_budget(byte_tokenizer):
    """max_tokens = 100 content tokens in chunks of 64 (63 tokens after BOS): two chunks of 63
    and 37 content tokens, i.e. 64 and 38 unpadded positions; the ids are the first items of
    the profiling split, enough to hold 100 byte tokens (separator included)."""
    from babel.core.config import ProfileConfig
    from babel.data.corpus import load_items
    from babel.profile.cache import language_chunks

    chunks, ids = language_chunks(byte_tokenizer, "fr", ProfileConfig(max_tokens=100, seq_len=64))
    assert chunks.attention_mask.sum(1).tolist() == [64, 38]
    assert chunks.input_ids[:, 0].tolist() == [1, 1]
    items = load_items("fr", split="profiling")
    need, have = 0, 0
    while have < 100:  # items whose tokens the budget reaches (one separator between items)
        have += len(items[need].text.encode("utf-8")) + (need > 0)
        need += 1
    assert ids == [it.id for it in items[:need]]


def test_a_single_token_is_profiled(tiny_llama):
    """One chunk of one token (BOS counted): 1 token, k = 0.25·8 = 2 experts selected in each
    of the 3 layers."""
    from babel.construct.partition import build_partition
    from babel.core.config import PartitionConfig, SelectionRule
    from babel.profile.profiler import profile_chunks

    part = build_partition(tiny_llama, PartitionConfig(n_experts=8))
    prof = profile_chunks(tiny_llama, part, SelectionRule("per_layer_topk", share=0.25),
                          torch.tensor([[1]]), torch.tensor([[1]]), bos_id=1, exclude_bos=False,
                          progress=False)
    assert prof.chunk_tokens.tolist() == [1]
    assert prof.chunk_counts.shape == (1, 3, 8)
    assert prof.chunk_counts.sum(2).tolist() == [[2, 2, 2]]
    assert set(prof.chunk_counts.ravel().tolist()) == {0, 1}


def test_frequency_table_numbers_the_rows_of_all_languages():
    """Two languages of 1 layer x 2 experts: rows 0..3 (a's two experts, then b's), not each
    language's rows numbered from 0 again."""
    from babel.profile.cache import frequency_table

    a = Profile("a", np.array([[[1, 3]]], np.int32), np.array([4]),
                np.zeros((1, 2), np.int64), np.zeros((1, 2)))
    b = Profile("b", np.array([[[2, 0]]], np.int32), np.array([8]),
                np.zeros((1, 2), np.int64), np.zeros((1, 2)))
    t = frequency_table({"a": a, "b": b}, model="m")
    assert t.index.tolist() == [0, 1, 2, 3]
    assert t.language.tolist() == ["a", "a", "b", "b"] and t.expert.tolist() == [0, 1, 0, 1]
    np.testing.assert_allclose(t.frequency, [0.25, 0.75, 0.25, 0.0])
    assert t.tokens.tolist() == [4, 4, 8, 8]


def test_under_torchrun_the_profiler_runs_sharded(tiny_llama, byte_tokenizer, monkeypatch):
    """Several processes (faked here: ``active()`` true, one rank that is the main one): the
    profile is computed by ``distributed.sharded(profile_chunks)`` (a recording stand-in that
    returns the profiler unchanged), through the distributed load-or-build."""
    import babel.profile.cache as cache_mod
    from babel.construct.partition import build_partition
    from babel.core.cache import load_or_build
    from babel.core.config import PartitionConfig, ProfileConfig

    dist = cache_mod.distributed
    wrapped, built = [], []
    monkeypatch.setattr(dist, "active", lambda: True)
    monkeypatch.setattr(dist, "is_main", lambda: True)
    monkeypatch.setattr(dist, "sharded", lambda fn: wrapped.append(fn) or fn)

    def one_rank(data, meta_path, load, build, *, rebuild, device):
        built.append(device)
        return load_or_build(data, meta_path, load, build, rebuild=rebuild)

    monkeypatch.setattr(dist, "load_or_build", one_rank)
    part = build_partition(tiny_llama, PartitionConfig(n_experts=8))
    cfg = ProfileConfig(max_items=1, seq_len=32, batch_size=4)
    prof = cache_mod.profile_language(tiny_llama, byte_tokenizer, part, "fr", cfg,
                                      progress=False)
    assert wrapped == [cache_mod.profile_chunks]
    assert built == [torch.device("cpu")]
    assert prof.lang == "fr" and prof.chunk_counts.shape[1:] == (3, 8)
