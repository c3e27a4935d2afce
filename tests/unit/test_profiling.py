"""Profiling counts equal a slow loop reference; determinism, additivity and caching."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from babel.construct.partition import build_partition
from babel.core.config import PartitionConfig, SelectionRule
from babel.profile.classes import classify_experts
from babel.profile.profiler import profile_chunks

from ._loops import counted_tokens


def _chunks(seed=0, c=5, t=12, bos=1):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 90, (c, t), generator=g)
    ids[:, 0] = bos
    am = torch.ones_like(ids)
    am[-1, 7:] = 0  # padding in the last chunk
    ids[-1, 7:] = 0
    return ids, am


def _reference(model, part, rule, ids, am, bos):
    """Explicit loops over tokens, layers and experts (test-only, obviously correct)."""
    n_l, n_e = part.n_layers, part.n_experts
    counts = np.zeros((n_l, n_e), np.int64)
    active = np.zeros((n_l, part.n_neurons), np.int64)
    tokens = 0
    for _, hs, gates in counted_tokens(model, ids, am, bos):
        tokens += 1
        z = np.zeros((n_l, n_e))
        for layer in range(n_l):
            h = hs[layer].numpy()
            s = np.zeros(n_e)
            for n in range(part.n_neurons):
                s[part.labels[layer, n]] += abs(h[n])
            z[layer] = (s - s.mean()) / s.std(ddof=1)
            g = gates[layer].numpy() if gates else h
            active[layer] += g > 0
        k = round(rule.share * n_l * n_e)
        top = np.argsort(-z.ravel(), kind="stable")[:k]
        for idx in top:
            counts[idx // n_e, idx % n_e] += 1
    return counts, tokens, active


@pytest.mark.parametrize("fixture", ["tiny_llama", "tiny_gemma"])
def test_counts_equal_loop_reference(fixture, request):
    model = request.getfixturevalue(fixture)
    part = build_partition(model, PartitionConfig(n_experts=8))
    rule = SelectionRule("cross_layer", share=0.25)
    ids, am = _chunks()
    prof = profile_chunks(model, part, rule, ids, am, batch_size=2, bos_id=1, progress=False)
    counts, tokens, active = _reference(model, part, rule, ids, am, bos=1)
    assert prof.tokens == tokens == 4 * 11 + 6
    assert np.array_equal(prof.counts, counts)
    assert np.array_equal(prof.neuron_active, active)
    assert prof.counts.sum() == tokens * round(0.25 * 3 * 8)


def test_deterministic_and_additive(tiny_llama):
    part = build_partition(tiny_llama, PartitionConfig(n_experts=8))
    rule = SelectionRule()
    ids, am = _chunks(seed=1, c=6)
    whole = profile_chunks(tiny_llama, part, rule, ids, am, batch_size=4, bos_id=1,
                           progress=False)
    again = profile_chunks(tiny_llama, part, rule, ids, am, batch_size=4, bos_id=1,
                           progress=False)
    assert np.array_equal(whole.chunk_counts, again.chunk_counts)
    a = profile_chunks(tiny_llama, part, rule, ids[:3], am[:3], batch_size=2, bos_id=1,
                       progress=False)
    b = profile_chunks(tiny_llama, part, rule, ids[3:], am[3:], batch_size=3, bos_id=1,
                       progress=False)
    s = a + b
    assert np.array_equal(s.counts, whole.counts) and s.tokens == whole.tokens
    assert np.array_equal(s.neuron_active, whole.neuron_active)
    assert np.allclose(s.neuron_abs, whole.neuron_abs, rtol=1e-6)


def test_bos_can_be_counted(tiny_llama):
    part = build_partition(tiny_llama, PartitionConfig(n_experts=8))
    ids, am = _chunks()
    with_bos = profile_chunks(tiny_llama, part, SelectionRule(), ids, am, bos_id=1,
                              exclude_bos=False, progress=False)
    assert with_bos.tokens == int(am.sum())


def test_classes_on_planted_frequencies():
    f = np.full((4, 2, 5), 0.2)
    f[:, 0, 0] = 0.9  # co-activated
    f[:, 1, 4] = 0.01  # rare
    f[2, 1, 2] = 0.8  # specific to language 2
    c = classify_experts(f, high=0.2, low=0.05, z=3.0)
    assert c.co_activated[0, 0] and c.co_activated.sum() == 9  # 0.2 >= high everywhere else
    assert c.rare[1, 4] and c.rare.sum() == 1
    assert c.specific[2, 1, 2] and c.specific.sum() == 1


def test_cache_reuse_and_only_missing_languages(tiny_llama, byte_tokenizer, monkeypatch):
    import babel.profile.cache as prof
    from babel.core.config import ProfileConfig
    from babel.profile.cache import profile_languages

    part = build_partition(tiny_llama, PartitionConfig(n_experts=8))
    cfg = ProfileConfig(max_tokens=64, seq_len=32)
    calls = []
    real = prof.profile_chunks
    monkeypatch.setattr(prof, "profile_chunks", lambda *a, **k: calls.append(k["lang"]) or real(*a, **k))
    tok = byte_tokenizer
    first = profile_languages(tiny_llama, tok, part, ["en"], cfg, progress=False)
    both = profile_languages(tiny_llama, tok, part, ["en", "fr"], cfg, progress=False)
    assert calls == ["en", "fr"]  # en came from the cache the second time
    assert np.array_equal(first["en"].chunk_counts, both["en"].chunk_counts)
    other = ProfileConfig(max_tokens=32, seq_len=32)  # another token budget: a new profile
    profile_languages(tiny_llama, tok, part, ["en"], other, progress=False)
    assert calls == ["en", "fr", "en"]


def test_frequency_table_by_hand():
    from babel.profile.cache import frequency_table
    from babel.profile.profiler import Profile

    def prof(lang, chunks, tokens):
        return Profile(lang, np.array(chunks, np.int32), np.array(tokens, np.int64),
                       np.zeros((2, 3), np.int64), np.zeros((2, 3)))

    # a: counts [[1, 3], [4, 4]] over 5 + 3 = 8 tokens; b: [[2, 0], [0, 5]] over 10 tokens
    a = prof("a", [[[1, 2], [3, 4]], [[0, 1], [1, 0]]], [5, 3])
    b = prof("b", [[[2, 0], [0, 5]]], [10])
    t = frequency_table({"a": a, "b": b}, model="m")
    expected = [  # language, layer, expert, count, tokens
        ("a", 0, 0, 1, 8), ("a", 0, 1, 3, 8), ("a", 1, 0, 4, 8), ("a", 1, 1, 4, 8),
        ("b", 0, 0, 2, 10), ("b", 0, 1, 0, 10), ("b", 1, 0, 0, 10), ("b", 1, 1, 5, 10),
    ]
    got = list(t[["language", "layer", "expert", "count", "tokens"]].itertuples(
        index=False, name=None))
    assert got == expected
    np.testing.assert_allclose(t.frequency, [c / n for *_, c, n in expected])
    assert (t.model == "m").all()


def test_specificity_z_equals_a_loop_over_languages():
    from babel.profile.classes import specificity_z

    f = np.random.default_rng(0).uniform(0, 1, (5, 2, 3))
    ref = np.empty_like(f)
    for a in range(5):
        others = np.delete(f, a, axis=0)
        ref[a] = (f[a] - others.mean(0)) / others.std(0)  # population std of the others
    np.testing.assert_allclose(specificity_z(f), ref, rtol=1e-6)


def test_class_counts_per_layer_on_planted_classes():
    from babel.core.config import ExpertClassSpec
    from babel.profile.classes import class_counts, classify

    # share r = 0.1 and the default spec: high = 0.1, low = 0.025; 0.05 is neither
    f = np.full((4, 3, 6), 0.05)
    f[:, 0, :2] = 0.3  # layer 0: two co-activated experts
    f[:, 1, 2:5] = 0.01  # layer 1: three rare experts
    f[:, 2, 5] = [0.05, 0.6, 0.06, 0.04]  # layer 2: expert 5 specific to language b
    f[:, 2, 1] = [0.6, 0.05, 0.05, 0.6]  # high in a and d: z = 1.4 each, specific to neither
    f[:, 1, 0] = [0.01, 0.01, 0.05, 0.01]  # stands out in c (huge z) but is not high there
    c = classify(f, ExpertClassSpec(), 0.1)
    assert np.argwhere(c.specific).tolist() == [[1, 2, 5]]  # the planted one and no other
    t = class_counts(c, ["a", "b", "c", "d"]).set_index("layer")
    assert t.co_activated.tolist() == [2, 0, 0]
    assert t.rare.tolist() == [0, 3, 0]
    assert t.specific_any.tolist() == [0, 0, 1]
    assert t.specific_b.tolist() == [0, 0, 1]
    assert t[["specific_a", "specific_c", "specific_d"]].to_numpy().sum() == 0


def _can_compile() -> bool:
    import shutil
    return shutil.which("g++") is not None or shutil.which("c++") is not None


@pytest.mark.skipif(not _can_compile(), reason="torch.compile on the CPU needs a C++ compiler")
@pytest.mark.expensive
def test_compiled_path_agrees_with_eager_and_restores_weights(tiny_llama):
    part = build_partition(tiny_llama, PartitionConfig(n_experts=8))
    rule = SelectionRule("cross_layer", share=0.25)
    ids, am = _chunks(seed=2, c=4)
    before = {k: v.clone() for k, v in tiny_llama.state_dict().items()}
    eager = profile_chunks(tiny_llama, part, rule, ids, am, batch_size=2, bos_id=1,
                           progress=False)
    comp = profile_chunks(tiny_llama, part, rule, ids, am, batch_size=2, bos_id=1,
                          progress=False, compiled=True)
    assert all(torch.equal(before[k], v) for k, v in tiny_llama.state_dict().items())
    assert comp.tokens == eager.tokens and comp.counts.sum() == eager.counts.sum()
    # fused arithmetic moves h by a few ulps: at most a token's near-tie may flip
    assert np.abs(comp.counts - eager.counts).sum() <= 2
    assert np.abs(comp.neuron_active - eager.neuron_active).sum() <= 2
    for f in ("neuron_abs", "neuron_sum", "neuron_sq"):
        assert np.allclose(getattr(comp, f), getattr(eager, f), rtol=1e-4, atol=1e-5), f
    # the hooks ran inside the compiled graph: the statistics are filled
    assert comp.neuron_abs.sum() > 0 and not np.allclose(comp.neuron_sum, 0)
    # a second call reuses the graph with the new call's tally (no state baked in)
    ids2, am2 = _chunks(seed=3, c=4)
    eager2 = profile_chunks(tiny_llama, part, rule, ids2, am2, batch_size=2, bos_id=1,
                            progress=False)
    comp2 = profile_chunks(tiny_llama, part, rule, ids2, am2, batch_size=2, bos_id=1,
                           progress=False, compiled=True)
    assert np.abs(comp2.counts - eager2.counts).sum() <= 2
    assert np.allclose(comp2.neuron_abs, eager2.neuron_abs, rtol=1e-4, atol=1e-5)
    assert not np.allclose(comp2.neuron_abs, comp.neuron_abs)


def test_profile_languages_reorders_the_weights_once(tiny_llama, byte_tokenizer, monkeypatch):
    """Three languages computed: one reorder and one restore in all (not three), the same
    counts as one language at a time, the weights as before; nothing cached: no reorder."""
    from babel.construct import routing
    from babel.core.config import ProfileConfig
    from babel.profile.cache import profile_language, profile_languages

    part = build_partition(tiny_llama, PartitionConfig(n_experts=8))
    cfg = ProfileConfig(max_tokens=64, seq_len=32)
    langs = ["en", "fr", "de"]
    alone = {lang: profile_language(tiny_llama, byte_tokenizer, part, lang, cfg,
                                    model_name="alone", progress=False) for lang in langs}
    before = {k: v.clone() for k, v in tiny_llama.state_dict().items()}
    layers = []
    real = routing.permute_layer_
    monkeypatch.setattr(routing, "permute_layer_",
                        lambda v, perm: (layers.append(v.index), real(v, perm)))
    held = profile_languages(tiny_llama, byte_tokenizer, part, langs, cfg, model_name="held",
                             progress=False)
    assert len(layers) == 2 * part.n_layers
    for lang in langs:
        assert np.array_equal(held[lang].chunk_counts, alone[lang].chunk_counts), lang
        assert np.array_equal(held[lang].neuron_abs, alone[lang].neuron_abs), lang
    assert all(torch.equal(v, before[k]) for k, v in tiny_llama.state_dict().items())
    profile_languages(tiny_llama, byte_tokenizer, part, langs, cfg, model_name="held",
                      progress=False)  # every language cached
    assert len(layers) == 2 * part.n_layers
