"""Issue 17: profile moments, importance scores, compensation, sensitivity allocation, frontier.

Right answers by construction:

- Σh and Σh² equal a direct sum over the hooked ``h`` of the counted tokens, and add over
  disjoint token sets;
- a sequence of one repeated token (no BOS) keeps the residual stream the same at every
  position (attention averages equal values), so every FFN input is constant: the profile
  mean *is* ``h`` and the compensated pruned model must reproduce the dense logits;
- on synthetic profiles each score ranks the expert it was built to rank first or last;
- the sensitivity allocation sums to the budget and keeps more where the rise is larger.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from babel.construct.partition import Partition, build_partition
from babel.core.config import PartitionConfig, SelectionRule
from babel.data.chunking import TokenChunks
from babel.models.ffn import ffn_layers
from babel.models.hooks import add_ffn_bias, mask_neurons, trace_ffn
from babel.models.surgery import load_pruned, prune_model, save_pruned
from babel.profile.profiler import Profile, profile_chunks
from babel.prune import importance as imp
from babel.prune import methods as pm
from babel.prune.compensation import carries_bias, removed_mean_bias
from babel.prune.evaluation import Evaluator
from babel.prune.masks import kept_budget, neuron_keep_mask, sensitivity_counts

E = 8


def _part(model, n_experts: int = E) -> Partition:
    return build_partition(model, PartitionConfig(n_experts=n_experts, method="random"),
                           model_name="tiny")


def _chunks(ids: torch.Tensor) -> TokenChunks:
    am = torch.ones_like(ids)
    n = ids.shape[0]
    items = torch.arange(n)[:, None].expand_as(ids).clone()
    return TokenChunks(ids, am, int(am.sum()), int(am.sum()), False, n, items)


@torch.no_grad()
def test_profile_moments_equal_direct_sums_and_add(tiny_model):
    part = _part(tiny_model)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 90, (4, 12), generator=g)
    am = torch.ones_like(ids)
    am[1, 9:] = 0  # padding never counts
    prof = profile_chunks(tiny_model, part, SelectionRule("cross_layer", share=0.25), ids, am,
                          progress=False, bos_id=None)
    hs = {}
    with trace_ffn(tiny_model, lambda i, h: hs.__setitem__(i, h.double())):
        tiny_model(input_ids=ids, attention_mask=am)
    valid = am.bool()
    for i, h in hs.items():
        hv = h[valid]
        np.testing.assert_allclose(prof.neuron_sum[i], hv.sum(0).numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(prof.neuron_sq[i], (hv ** 2).sum(0).numpy(), rtol=1e-5,
                                   atol=1e-6)
    np.testing.assert_allclose(prof.neuron_var, np.maximum(
        prof.neuron_sq / prof.tokens - prof.neuron_mean ** 2, 0))
    a = profile_chunks(tiny_model, part, SelectionRule("cross_layer", share=0.25), ids[:2],
                       am[:2], progress=False, bos_id=None)
    b = profile_chunks(tiny_model, part, SelectionRule("cross_layer", share=0.25), ids[2:],
                       am[2:], progress=False, bos_id=None)
    both = a + b
    np.testing.assert_allclose(both.neuron_sum, prof.neuron_sum, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(both.neuron_sq, prof.neuron_sq, rtol=1e-6, atol=1e-6)
    assert np.array_equal(both.counts, prof.counts)


def test_profile_without_moments_says_so():
    p = Profile("xx", np.zeros((1, 2, 2), np.int32), np.ones(1, np.int64),
                np.zeros((2, 4), np.int64), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="no Σh/Σh² statistics: profile it again"):
        p.neuron_mean  # noqa: B018


@pytest.mark.parametrize("kind", ["llama", "gemma3"])
@torch.no_grad()
def test_compensation_is_exact_for_a_constant_input(kind):
    """One repeated token: every FFN input is the same at every position (rotary models: no
    position is added to the input; GPT-2's learned positions would break it), so the
    removed neurons' profile mean is their value and the bias restores the dense output."""
    from tests.conftest import _tiny

    tiny_model = _tiny(kind)
    part = _part(tiny_model)
    ids = torch.full((2, 10), 7)
    prof = profile_chunks(tiny_model, part, SelectionRule("cross_layer", share=0.25), ids,
                          torch.ones_like(ids), progress=False, bos_id=None)
    keep_e = np.random.default_rng(0).random((part.n_layers, E)) < 0.5
    keep_e[:, 0] = True
    keep = neuron_keep_mask(keep_e, part)
    bias = removed_mean_bias(tiny_model, prof.neuron_mean, keep)
    # the bias is the removed neurons' mean output: W_down[:, removed] @ mean_h[removed]
    for v, b, k, m in zip(ffn_layers(tiny_model), bias, keep, prof.neuron_mean, strict=True):
        w = v.out_weight().double().numpy()
        np.testing.assert_allclose(b, w[:, ~k] @ m[~k], rtol=1e-10)
    dense = tiny_model(input_ids=ids).logits
    with mask_neurons(tiny_model, torch.as_tensor(keep)):
        uncompensated = tiny_model(input_ids=ids).logits
        with add_ffn_bias(tiny_model, torch.as_tensor(bias)):
            compensated = tiny_model(input_ids=ids).logits
    assert (uncompensated - dense).abs().max() > 1e-3  # removing them mattered
    torch.testing.assert_close(compensated, dense, rtol=1e-4, atol=1e-4)
    pruned = prune_model(tiny_model, keep, bias=bias)
    torch.testing.assert_close(pruned(input_ids=ids).logits, dense, rtol=1e-4, atol=1e-4)


@pytest.mark.expensive
@pytest.mark.parametrize("kind", ["llama", "gemma3"])
def test_compensated_folder_loads_in_plain_transformers_or_says_it_cannot(kind, tmp_path):
    from tests.conftest import _tiny

    model = _tiny(kind)
    part = _part(model)
    ids = torch.full((1, 9), 11)
    prof = profile_chunks(model, part, SelectionRule("cross_layer", share=0.25), ids,
                          torch.ones_like(ids), progress=False, bos_id=None)
    keep = neuron_keep_mask(np.arange(E)[None, :].repeat(part.n_layers, 0) < 5, part)
    bias = removed_mean_bias(model, prof.neuron_mean, keep)
    pruned = prune_model(model, keep, bias=bias)
    folder = save_pruned(pruned, tmp_path / "p", meta={"language": "xx"})
    with torch.no_grad():
        want = pruned(input_ids=ids).logits
        torch.testing.assert_close(load_pruned(folder)(input_ids=ids).logits, want)
    code = ("import sys, json, torch\nfrom transformers import AutoModelForCausalLM\n"
            "m = AutoModelForCausalLM.from_pretrained(sys.argv[1]).eval()\n"
            "assert 'babel' not in sys.modules\n"
            "print(json.dumps(m(input_ids=torch.full((1, 9), 11)).logits.tolist()))")
    out = subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True,
                         text=True, check=True, cwd=tmp_path)
    import json

    plain = torch.tensor(json.loads(out.stdout.strip().splitlines()[-1]))
    meta = json.loads((folder / "babel_pruned.json").read_text())
    if carries_bias(model):  # Llama: mlp_bias carries it
        assert meta["compensation_layout"] == "mlp_bias"
        torch.testing.assert_close(plain, want, rtol=1e-5, atol=1e-5)
    else:  # Gemma 3: no FFN bias in transformers; the folder says the plain load lacks it
        assert meta["compensation_layout"] == "sidecar" and "WITHOUT" in meta["compensation"]
        assert (plain - want).abs().max() > 1e-4


def _synthetic(norms_scale: float = 1.0):
    """One layer, 4 experts of 2 neurons; a profile of T = 10 tokens built by hand."""
    labels = np.array([[0, 0, 1, 1, 2, 2, 3, 3]])
    part = Partition(PartitionConfig(n_experts=4, method="random"), "syn", labels, "x")
    t = 10
    counts = np.array([[[9, 1, 5, 0]]], np.int32)
    # expert 0: large |h| but tiny output weights; 1: moderate |h|, big weights, constant h;
    # 2: small mean, large fluctuation, big weights; 3: silent
    mean = np.array([[5.0, 5.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]])
    var = np.array([[0.1, 0.1, 0.0, 0.0, 4.0, 4.0, 0.0, 0.0]])
    absm = np.array([[5.0, 5.0, 1.0, 1.0, 1.6, 1.6, 0.0, 0.0]])
    prof = Profile("aa", counts, np.array([t]), np.zeros((1, 8), np.int64), absm * t,
                   neuron_sum=mean * t, neuron_sq=(var + mean ** 2) * t)
    norms = norms_scale * np.array([[0.01, 0.01, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0]])
    return part, prof, norms


def test_scores_rank_the_planted_experts():
    part, prof, norms = _synthetic()
    freq = imp.expert_score(prof, "frequency", part)
    mass = imp.expert_score(prof, "mass", part)
    weighted = imp.expert_score(prof, "weighted", part, norms)
    fluct = imp.expert_score(prof, "fluctuation", part, norms)
    np.testing.assert_allclose(freq, [[0.9, 0.1, 0.5, 0.0]])
    np.testing.assert_allclose(mass, [[10.0, 2.0, 3.2, 0.0]])
    np.testing.assert_allclose(weighted, [[0.1, 4.0, 6.4, 0.0]])
    np.testing.assert_allclose(fluct, [[2 * 0.1 * 1e-4, 0.0, 2 * 4.0 * 4.0, 0.0]])
    assert np.argmax(mass) == 0 and np.argmin(weighted[:, :3]) == 0  # output weights matter
    assert np.argmax(fluct) == 2 and fluct[0, 1] == 0  # constant h: nothing beyond its mean
    # a global ranking compares each expert's share of its layer; frequency stays as it is
    np.testing.assert_allclose(imp.ranking_score("mass", mass).sum(), 1.0)
    assert imp.ranking_score("frequency", freq) is not freq or True
    np.testing.assert_allclose(imp.ranking_score("frequency", freq), freq)
    with pytest.raises(ValueError, match="unknown importance score 'nope'"):
        imp.check_score("nope")


def test_contrast_keeps_shared_and_drops_the_other_languages_experts():
    a = np.array([[1.0, 1.0, 2.0, 0.1]])  # expert 2: a's own; expert 3: b's own
    b = np.array([[1.0, 1.0, 0.1, 2.0]])
    c = imp.contrast({"a": a, "b": b}, "a")
    s = a / a.sum()
    mean = (a / a.sum() + b / b.sum()) / 2
    np.testing.assert_allclose(c, s * s / mean)
    assert c[0, 2] > s[0, 2] and c[0, 3] < s[0, 3]  # own raised, the other's lowered
    np.testing.assert_allclose(c[0, :2], s[0, :2])  # shared alike: unchanged
    assert np.argsort(c[0])[0] == 3  # the other language's expert goes first


def test_sensitivity_counts_sum_to_the_budget_and_follow_the_rise():
    rise = np.array([0.01, 0.5, 0.02, 0.2, 0.001])
    for k in (0.95, 0.9, 0.8, 0.7, 0.5, 1.0):
        c = sensitivity_counts(rise, k, 16)
        assert c.sum() == kept_budget(k, 5, 16) and (c >= 1).all() and (c <= 16).all()
        removed = 16 - c
        order = np.argsort(rise)  # least sensitive first: they lose the most
        assert (np.diff(removed[order]) <= 0).all()
    c = sensitivity_counts(np.array([0.1, 0.4, 0.2, 0.3, 0.15]), 0.5, 16)
    # quadratic model with shrinkage: (removals + 1) ∝ 1 / (rise + median rise = 0.2)
    assert abs((17 - c[1]) / (17 - c[3]) - 0.5 / 0.6) < 0.1
    # a layer measured at 0 (or below: noise) loses about twice the median layer, not all
    c = sensitivity_counts(np.array([-0.3, 1.0, 1.0, 1.0, 1.0]), 0.8, 100)
    assert abs((101 - c[0]) / (101 - c[1]) - 2.0) < 0.1 and c[0] > 50
    with pytest.raises(ValueError, match="finite"):
        sensitivity_counts(np.array([np.nan, 1.0]), 0.5, 4)


@torch.no_grad()
def test_frontier_on_a_tiny_model_prefers_its_own_experts(tiny_llama):
    """Two 'languages' that use disjoint halves of every layer (the other half dead for
    them, by construction of their profiles): every importance score must keep a language's
    live experts at k = 0.5; the frontier runs every stage and writes every column."""
    part = _part(tiny_llama)
    g = torch.Generator().manual_seed(1)
    chunks = {x: _chunks(torch.randint(3, 90, (4, 12), generator=g)) for x in ("aa", "bb")}
    rule = SelectionRule("cross_layer", share=0.25)
    profiles = {x: profile_chunks(tiny_llama, part, rule, c.input_ids, c.attention_mask,
                                  progress=False, bos_id=None) for x, c in chunks.items()}
    ev = Evaluator(tiny_llama, chunks, batch_size=4)
    pooled = Evaluator(tiny_llama, {"pooled": chunks["aa"]}, batch_size=4)
    fr = pm.run_frontier(ev, tiny_llama, profiles, part, languages=["aa", "bb"],
                         scores=["frequency", "weighted"], compensations=["none", "mean"],
                         allocations=["uniform", "global", "sensitivity"], screen_shares=[0.75],
                         kept_shares=[0.9, 0.75], seeds=[0, 1], sensitivity_ev=pooled,
                         log=lambda _: None)
    t = fr.table
    assert set(pm.COLUMNS[:8]) <= set(t.columns)
    assert (t.rise == t.ppl_pruned / t.ppl_dense - 1).all()
    assert all(len(v) == part.n_layers for v in fr.sensitivity.values()) and fr.sensitivity
    assert {"random"} <= set(t.method) and set(t.k) == {0.9, 0.75}
    best = t[(t.method == fr.best.score) & (t.compensation == fr.best.compensation)
             & (t.allocation == fr.best.allocation)]
    assert set(best.k) == {0.9, 0.75}
    med = pm.median_table(t)
    assert med[(med.k == 0.75)].median_rise.min() == pytest.approx(
        pm.median_table(best).set_index("k").median_rise[0.75])  # the best is the lowest
    # every mask keeps the budget
    for key, nm in fr.masks.items():
        assert nm.sum() == kept_budget(key[3], part.n_layers, E) * part.expert_size
    sp = pm.frontier_speed(tiny_llama, fr, chunks["aa"].input_ids, language="aa", repeats=1,
                           max_repeats=1)
    # one timing per (per-layer sizes, compensation): uniform masks of a k share it
    uni = sp[(sp.allocation == "uniform") & (sp.k == 0.75) & (sp.compensation == "none")]
    assert len(uni) >= 2 and uni.body_speedup.nunique() == 1
    full = pm.with_speed(t, sp)
    assert list(full.columns[:10]) == list(pm.COLUMNS)
    assert full[full.language == "aa"].body_speedup.notna().all()
    assert "Best pruning method on tiny" in pm.first_sentence(full, fr.best, model="tiny")
    # one language leaves one row per (method, k): the sentence still reads its rises
    one = pm.first_sentence(full[full.language == "aa"], fr.best, model="tiny",
                            shares=(0.9, 0.75))
    r = full[(full.language == "aa") & (full.method == fr.best.score)
             & (full.compensation == fr.best.compensation)
             & (full.allocation == fr.best.allocation) & (full.k == 0.75)].rise.iloc[0]
    assert f"k = 0.75: median rise {100 * r:+.1f}%" in one


def test_specific_by_score_finds_the_planted_expert():
    lang, _, expert = np.indices((5, 2, 16))
    s = 1.0 + 0.1 * ((lang + expert) % 3)  # spread, but never 3 sd above the others
    s[2, 1, 7] = 5.0  # language 2's own expert
    spec = pm.specific_by_score(s, z=3.0)
    assert spec[2, 1, 7] and spec.sum() == 1


def test_method_validation():
    with pytest.raises(ValueError, match="compensation must be"):
        pm.Method("frequency", "bias")
    with pytest.raises(ValueError, match="allocation must be"):
        pm.Method("frequency", "none", "layerwise")
    assert pm.Method("mass-contrast").label == "mass-contrast · none · global"
    assert isinstance(pm.best_method(pd.DataFrame({
        "method": ["mass", "frequency"], "compensation": ["none"] * 2,
        "allocation": ["global"] * 2, "k": [0.9, 0.9], "rise": [0.1, 0.2]}), [0.9]), pm.Method)


def test_methods_settings_are_validated():
    from babel.core.params import ParameterError
    from babel.prune.settings import PruningSettings

    s = PruningSettings.from_namespace({"methods": {"scores": ["energy", "mass-contrast"],
                                                    "allocations": ["uniform", "sensitivity"],
                                                    "kept_shares": [0.7, 0.9]}})
    assert s.methods_scores == ("energy", "mass-contrast")
    assert s.methods_kept_shares == (0.9, 0.7) and s.methods_allocations[0] == "uniform"
    for bad, msg in (({"scores": ["wanda"]}, "unknown importance score 'wanda'"),
                     ({"compensation": ["bias"]}, "methods.compensation"),
                     ({"allocations": ["layerwise"]}, "methods.allocations"),
                     ({"kept_shares": [1.0]}, "methods.kept_shares"),
                     ({"speed": 1}, "methods must be a mapping")):
        with pytest.raises(ParameterError, match=msg):
            PruningSettings.from_namespace({"methods": bad})
    assert PruningSettings.from_namespace({}).methods_scores == ()  # off unless asked


def test_frontier_figure_has_a_line_per_method():
    import matplotlib

    matplotlib.use("Agg")
    from babel.figures.pruning import methods_frontier

    rows = [{"method": m, "compensation": "none", "allocation": a, "k": k, "language": x,
             "rise": r * (1 - k), "body_speedup": 1 / k}
            for m, a, r in (("energy", "uniform", 1.0), ("random", "uniform", 9.0))
            for k in (0.9, 0.8) for x in ("aa", "bb")]
    fig = methods_frontier(pd.DataFrame(rows), title="t")
    lines = fig.axes[0].get_lines()
    assert len(lines) == 2 and lines[1].get_linestyle() == "--"
    np.testing.assert_allclose(lines[0].get_ydata(), [10.0, 20.0])
    np.testing.assert_allclose(lines[0].get_xdata(), [1 / 0.9, 1 / 0.8])


def test_record_all_is_one_output_read_back_whole(tmp_path, monkeypatch):
    import json

    from babel.core import notebook

    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj, raw=False: shown.append(obj))
    notebook.record_all({"a": 1, "b": [2, 3]})
    assert len(shown) == 1 and shown[0]["text/plain"] == "recorded a, b"
    nb = {"cells": [{"cell_type": "code", "outputs": [{"output_type": "display_data",
                                                        "data": shown[0]}]}]}
    (tmp_path / "x.ipynb").write_text(json.dumps(nb))
    assert notebook.read_records(tmp_path / "x.ipynb") == {"a": 1, "b": [2, 3]}
