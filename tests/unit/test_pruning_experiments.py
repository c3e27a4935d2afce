"""The pruning experiments on a planted tiny model: half of every layer's experts are dead.

The planted model (tiny Llama, E = 8 random-partition experts per layer) has experts 4..7 of
every layer dead (zero gate/up rows and down columns) and its live experts amplified, so
removing a live expert changes the model a lot. Held-out text is *sampled from the dense
model itself*: any other model then has, in expectation, a higher cross-entropy on it
(Gibbs' inequality), so removing live experts raises perplexity, while removing dead experts
changes nothing at all. Frequencies come from the real profiler (per-layer top half): dead
experts are never selected. Right answers by construction: frequency masks keep exactly the
live experts at k = 0.5 (rise 0) and beat every random mask.
"""

from __future__ import annotations

import itertools
import math

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch

from babel.construct.partition import build_partition
from babel.core.config import PartitionConfig, SelectionRule
from babel.data.chunking import TokenChunks
from babel.figures import pruning as figs
from babel.models.ffn import ffn_layers
from babel.profile.profiler import profile_chunks
from babel.prune import experiments as px
from babel.prune.evaluation import Evaluator, speedups, throughput
from babel.prune.masks import keep_mask, neuron_keep_mask
from babel.prune.settings import PruningSettings

matplotlib.use("Agg")
E, DEAD_FROM, BOS = 8, 4, 1


def _sample(model, *, n: int, t: int, seed: int) -> TokenChunks:
    """``n`` sequences of ``t`` tokens sampled from ``model`` (BOS first); one item each."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.full((n, 1), BOS)
    with torch.no_grad():
        for _ in range(t - 1):
            p = torch.softmax(model(input_ids=ids).logits[:, -1].double(), -1)
            ids = torch.cat([ids, torch.multinomial(p, 1, generator=g)], 1)
    am = torch.ones_like(ids)
    items = torch.arange(n)[:, None].expand(n, t).clone()
    items[:, 0] = -1  # BOS belongs to no item
    return TokenChunks(ids, am, int(am.sum()), int(am.sum()) - n, True, n, items)


@pytest.fixture
def planted(tiny_llama):
    """(model, partition, live expert mask [L, E], evaluator over "aa"/"bb", frequency)."""
    model = tiny_llama
    part = build_partition(model, PartitionConfig(n_experts=E, method="random"),
                           model_name="tiny")
    live = np.zeros((part.n_layers, E), dtype=bool)
    live[:, :DEAD_FROM] = True
    live_n = torch.as_tensor(neuron_keep_mask(live, part))
    for v, keep in zip(ffn_layers(model), live_n, strict=True):
        v.gate.weight.data[~keep] = 0.0
        v.up.weight.data[~keep] = 0.0
        v.down.weight.data[:, ~keep] = 0.0
        v.gate.weight.data *= 10.0  # live experts strong, so removing one matters
        v.up.weight.data *= 10.0
        v.down.weight.data *= 30.0
    model.lm_head.weight.data *= 10.0  # a peaked next-token distribution
    chunks = {"aa": _sample(model, n=12, t=20, seed=0), "bb": _sample(model, n=12, t=20, seed=1)}
    prof = profile_chunks(model, part, SelectionRule("per_layer_topk", share=0.5),
                          chunks["aa"].input_ids, chunks["aa"].attention_mask, bos_id=BOS,
                          progress=False)
    ev = Evaluator(model, chunks, batch_size=4, bos_id=BOS)
    return model, part, live, ev, prof.frequency


def test_profiled_frequency_never_selects_dead_experts(planted):
    _, _, live, _, freq = planted
    assert (freq[~live] == 0).all() and (freq[live] == 1).all()


@pytest.mark.parametrize("allocation", ["global", "adaptive"])
def test_frequency_masks_keep_dead_experts_last(planted, allocation):
    _, _, live, _, freq = planted
    assert (keep_mask(freq, 0.5, allocation=allocation) == live).all()
    assert (keep_mask(freq, 0.75, allocation=allocation) >= live).all()  # live kept first


def test_sweep_frequency_masks_beat_random(planted):
    _, part, _, ev, freq = planted
    sweep = px.perplexity_sweep(ev, {"aa": freq, "bb": freq}, part, kept_shares=[1.0, 0.5],
                                seeds=[0, 1, 2])
    assert len(sweep) == 2 * (1 + 2 + 2 * 3 + 1)  # layer counts: the first seed only
    pruned = sweep[sweep.k == 0.5]
    freq_rows = pruned[pruned.method.str.startswith("frequency")]
    rnd_rows = pruned[pruned.method.str.startswith("random")]
    assert (freq_rows.rise.abs() < 1e-9).all()  # only dead experts removed: same model
    assert (rnd_rows.rise > 0.05).all()  # every random mask removes live experts
    assert (sweep[sweep.method == "dense"].rise == 0).all()
    _, summary = px.median_rise(sweep)
    assert summary.loc[0.5, "frequency (global)"] < summary.loc[0.5, "random (uniform)"]
    for m in ("random (frequency-matched)", "random (layer counts)"):
        assert summary.loc[0.5, "frequency (global)"] < summary.loc[0.5, m]
    # frequency-matched: removes live experts here (the dead ones are all removed by global)
    fm = pruned[pruned.method == "random (frequency-matched)"]
    assert (fm.removed_freq == 1.0).all()
    assert (pruned[pruned.method == "frequency (global)"].removed_freq == 0.0).all()
    assert set(px.table_record(summary)) == {"1", "0.5"}
    rec = px.sweep_record(sweep)
    assert rec[0]["seed"] is None and rec[-1]["seed"] == 2  # as recorded before: a float
    assert rec[0]["mask"] == "dense" and len(rec[-1]["mask"]) == 40  # the evaluator's key


def test_expert_masks_kinds_and_counts():
    f = np.random.default_rng(0).random((3, 8))
    masks = px.expert_masks(f, 0.5, seeds=[0, 1])
    assert [(n, s) for n, s, _ in masks] == [
        ("frequency (global)", None), ("frequency (adaptive)", None),
        ("random (uniform)", 0), ("random (frequency-matched)", 0), ("random (layer counts)", 0),
        ("random (uniform)", 1), ("random (frequency-matched)", 1)]
    assert all(m.sum() >= 12 for _, _, m in masks) and masks[2][2].sum() == 12
    assert (masks[4][2].sum(1) == masks[0][2].sum(1)).all()  # layer counts: the global ones
    assert (masks[2][2].sum(1) == 4).all()  # uniform: the same share in every layer
    # below k = 0.5 the global mask removes more than the others: nothing to match from
    assert "random (frequency-matched)" not in {n for n, _, _ in px.expert_masks(
        f, 0.4, seeds=[0])}


def test_frequency_matched_masks_remove_experts_of_matched_frequency():
    # half of the experts sit on a low plateau (0.10..0.11), the rest high (0.5..0.9); the
    # global mask at k = 0.8 removes the lowest 20%, all on the plateau; the control must
    # draw kept experts of the same frequencies: the plateau's rest, not the high ones
    rng = np.random.default_rng(3)
    f = np.where(rng.random((6, 40)) < 0.5, 0.10 + 0.01 * rng.random((6, 40)),
                 0.5 + 0.4 * rng.random((6, 40)))
    g = keep_mask(f, 0.8)
    for seed in range(3):
        keep = px.frequency_matched_keep(f, g, seed=seed)
        removed = ~keep
        assert not (removed & ~g).any()  # disjoint from the global mask's removed experts
        assert removed.sum() == (~g).sum() and keep.any(1).all()
        assert abs(f[removed].mean() / f[~g].mean() - 1) < 0.15
    # a layer the control would empty keeps its most frequent expert
    tiny = np.array([[0.1, 0.2], [0.9, 0.8]])
    k = px.frequency_matched_keep(tiny, np.array([[True, True], [False, False]]), seed=0)
    assert k.any(1).all()


def test_sweep_intervals_planted(planted):
    _, part, _, ev, freq = planted
    sweep = px.perplexity_sweep(ev, {"aa": freq, "bb": freq}, part, kept_shares=[1.0, 0.5],
                                seeds=[0, 1])
    runs = ev.runs
    per_lang, med = px.sweep_intervals(ev, sweep, n_bootstrap=300)
    assert ev.runs == runs  # read from the memo: nothing evaluated again
    assert len(per_lang) == 2 * 5 and len(med) == 5
    dead = per_lang[per_lang.method.str.startswith("frequency")]
    assert (dead[["rise", "low", "high"]] == 0.0).all().all()  # only dead experts removed
    rnd = per_lang[per_lang.method.str.startswith("random")]
    assert (rnd.low > 0).all()  # every random mask hurts, and the interval says so
    assert ((med.low <= med.rise) & (med.rise <= med.high)).all()
    # the point values are the sweep's: the mean over seeds per language, median over them
    _, summary = px.median_rise(sweep)
    for r in med.itertuples():
        assert r.rise == pytest.approx(summary.loc[r.k, r.method], rel=1e-9, abs=1e-12)
    assert px.ci_record(med)["0.5"]["frequency (global)"] == {"value": 0.0, "low": 0.0,
                                                              "high": 0.0}
    table = px.ci_table(per_lang, index=["language", "k"])
    assert table.loc[("aa", 0.5), "frequency (global)"] == "+0.0 [+0.0, +0.0]"
    assert list(table.columns) == list(px.MASK_METHODS)


def test_sweep_intervals_median_is_taken_draw_by_draw(planted):
    # "aa" loses only dead experts (every draw 0); "bb" and "cc" are the same text under the
    # same harmful mask, so with the same bootstrap seed per language their draws are equal:
    # the median of (0, x, x) is x draw by draw, so the median's interval is theirs exactly
    _, part, live, ev, freq = planted
    ev.chunks["cc"] = ev.chunks["bb"]
    wrong = np.where(live, 0.0, 1.0)
    sweep = px.perplexity_sweep(ev, {"aa": freq, "bb": wrong, "cc": wrong}, part,
                                kept_shares=[1.0, 0.5], seeds=[0],
                                methods=["frequency (global)"])
    per_lang, med = px.sweep_intervals(ev, sweep, n_bootstrap=200, seed=5)
    bb = per_lang.set_index("language").loc["bb"]
    assert bb.low > 0
    assert (med.rise[0], med.low[0], med.high[0]) == pytest.approx((bb.rise, bb.low, bb.high))


def test_median_rise_is_median_over_languages_of_seed_means():
    # per language, the mean over seeds is 1, 2, 6 (random) and 0, 0, 3 (frequency)
    rows = [("a", "random", 0, 0.0), ("a", "random", 1, 2.0), ("b", "random", 0, 2.0),
            ("b", "random", 1, 2.0), ("c", "random", 0, 12.0), ("c", "random", 1, 0.0),
            ("a", "freq", None, 0.0), ("b", "freq", None, 0.0), ("c", "freq", None, 3.0)]
    sweep = pd.DataFrame([{"language": la, "k": 0.5, "method": m, "seed": s, "rise": r}
                          for la, m, s, r in rows])
    per_lang, summary = px.median_rise(sweep)
    assert per_lang[(0.5, "random", "c")] == 6.0
    assert summary.loc[0.5, "random"] == 2.0  # not the mean over everything (3.0)
    assert summary.loc[0.5, "freq"] == 0.0


def test_prune_check_sliced_equals_masked(planted, tmp_path):
    model, part, _, ev, _ = planted
    keep = np.random.default_rng(1).random((part.n_layers, E)) < 0.5
    keep[:, 0] = True
    nm = neuron_keep_mask(keep, part)
    check = px.prune_check(ev, nm, "aa", folder=tmp_path / "pruned", meta={"note": "x"})
    assert check["abs_diff"] <= 1e-5 * check["ppl_masked"]
    assert check["reload_max_logit_diff"] <= 1e-5
    d = model.config.hidden_size
    assert check["params_dense"] - check["params_pruned"] == 3 * d * int((~nm).sum())
    assert check["saved_mb"] >= 0


def test_cross_language_planted(planted):
    _, part, live, ev, freq = planted
    wrong = np.where(live, 0.0, 1.0)  # "bb"'s frequencies point at the dead experts
    cross, summary = px.cross_language(ev, {"aa": freq, "bb": wrong}, part, share=0.5,
                                       languages=["aa", "bb"], family={"aa": "f", "bb": "f"},
                                       branch={"aa": "x", "bb": "y"})
    assert list(cross.index) == ["aa", "bb", px.SUMMED]
    assert (cross.loc["aa"].abs() < 1e-9).all() and (cross.loc["bb"] > 0.05).all()
    assert summary["diagonal_best"] == {"aa": True, "bb": False}
    assert summary["n_diagonal_best"] == 1
    assert summary["mean_rise_own"] == pytest.approx(cross.loc["bb", "bb"] / 2)
    assert summary["mean_rise_same_family_other_branch"] == pytest.approx(
        cross.loc["bb", "aa"] / 2)
    assert summary["mean_rise_same_branch"] is None and summary["mean_rise_other_family"] is None
    assert set(px.matrix_record(cross)) == {"aa", "bb", px.SUMMED}
    with pytest.raises(ValueError, match=">= 2 languages"):
        px.cross_language(ev, {"aa": freq}, part, share=0.5, languages=["aa"])


def test_causal_removal_planted(planted):
    _, part, _, ev, freq = planted
    specific = np.zeros((2, part.n_layers, E), dtype=bool)
    specific[0, 0, DEAD_FROM:] = True  # "aa": the dead experts of layer 0
    specific[1, 1, :2] = True  # "bb": two live experts of layer 1
    table, summary = px.causal_removal(ev, specific, ["aa", "bb"], freq, part, target="aa",
                                       languages=["aa", "bb"], seeds=[0, 1, 2])
    assert summary["n_specific"] == 4
    assert summary["specific_per_language"] == {"aa": 4, "bb": 2}
    assert summary["rise_target"] == pytest.approx(0.0, abs=1e-9)  # dead: nothing changes
    assert summary["rise_others_mean"] == pytest.approx(0.0, abs=1e-9)
    assert summary["rise_target_ci"] == [0.0, 0.0]  # nothing changes on any resample
    # the control removes experts of the same (zero) frequencies: the other dead experts
    assert summary["rise_target_random"] == pytest.approx(0.0, abs=1e-9)
    assert summary["rise_others_random_mean"] == pytest.approx(0.0, abs=1e-9)
    assert list(table.language) == ["aa", "bb"] and table.is_target.tolist() == [True, False]
    assert {"rise_specific_removed_low", "rise_random_removed_high"} <= set(table.columns)
    _, s_bb = px.causal_removal(ev, specific, ["aa", "bb"], freq, part, target="bb",
                                languages=["aa", "bb"], seeds=[0, 1])
    assert s_bb["rise_target"] > 0.0 and s_bb["rise_target_ci"][0] > 0.0
    # two live experts of layer 1 against two other live experts (frequency 1 too)
    assert s_bb["rise_target_random"] > 0.0 and s_bb["rise_target_random_ci"][0] > 0.0
    lo, hi = s_bb["rise_others_mean_ci"]
    assert lo <= s_bb["rise_others_mean"] <= hi
    none = np.zeros_like(specific)
    t0, s0 = px.causal_removal(ev, none, ["aa", "bb"], freq, part, target="aa",
                               languages=["aa", "bb"], seeds=[0])
    assert s0 == {"language": "aa", "n_specific": 0} and t0.empty


def test_construction_comparison_planted(planted):
    _, part, live, ev, freq = planted
    cons = {"right": (part, {"aa": freq}), "wrong": (part, {"aa": np.where(live, 0.0, 1.0)})}
    table = px.construction_comparison(ev, cons, languages=["aa"], shares=[0.5])
    summary = px.construction_summary(table)
    assert summary.loc[0.5, "right"] == pytest.approx(0.0, abs=1e-9)
    assert summary.loc[0.5].idxmin() == "right" and summary.loc[0.5, "wrong"] > 0.05


def test_construction_partitions(tiny_llama):
    cfg = PartitionConfig(n_experts=8, method="random")
    parts = px.construction_partitions(tiny_llama, cfg, model_name="tiny")
    assert list(parts) == ["random", "kmeans", "single neuron"]
    assert parts["kmeans"].config.method == "kmeans" and parts["kmeans"].n_experts == 8
    assert parts["single neuron"].n_experts == ffn_layers(tiny_llama)[0].n_neurons


def test_speed_rows_and_flops(tiny_llama):
    keep = px.layer_share_keep(tiny_llama, 0.5)
    assert [int(k.sum()) for k in keep] == [32, 32, 32]
    th = px.flop_speedup(tiny_llama, keep, seq_len=16)
    assert th["ffn"] == pytest.approx(2.0)  # half the neurons: half the FFN FLOPs
    batch = torch.randint(3, 90, (2, 16))
    rows = px.speed_rows("tiny", tiny_llama, batch, {0.5: keep, 0.75: px.layer_share_keep(
        tiny_llama, 0.75)}, repeats=2, seq_len=16)
    speed = px.speed_table(rows)
    assert speed.k.tolist() == [0.5, 0.75]
    assert speed.theoretical_body[0] == pytest.approx(th["body"])
    assert speed.theoretical_end_to_end[0] == pytest.approx(th["end_to_end"])
    assert (speed.theoretical_body > speed.theoretical_end_to_end).all()
    assert (speed.theoretical_end_to_end > 1).all()
    assert speed.theoretical_body[0] > speed.theoretical_body[1]
    for col in ("measured_body", "measured_end_to_end", "measured/theoretical body"):
        assert all(math.isfinite(v) and v > 0 for v in speed[col])
    assert (speed.measured_body_low <= speed.measured_body).all()
    assert (speed.measured_body <= speed.measured_body_high).all()
    assert (speed.rounds == 2).all() and "note" in speed.columns


def _fake_timer(seconds):
    """A ``time_fn`` that never runs the model: the next of ``seconds`` (cycled)."""
    it = iter(seconds)
    return lambda fn: next(it)


def test_adaptive_repeats_stop_early_on_constant_timings(tiny_llama):
    # the pruned model always takes half the dense time: every speedup is exactly x2 with a
    # zero-width interval after the minimum number of rounds
    models = {"dense": tiny_llama, "k=0.5": tiny_llama}
    ids = torch.randint(3, 90, (1, 8))
    timer = _fake_timer(itertools.cycle([1.0, 1.0, 0.5, 0.5]))  # dense body, e2e; pruned
    table = throughput(models, ids, repeats=3, max_repeats=30, warmup=1, time_fn=timer)
    assert (table.repeats == 3).all()
    sp = speedups(table, intervals=True)
    assert sp.loc["k=0.5"].tolist() == [2.0, 2.0, 2.0, 2.0, 2.0, 2.0]


def test_adaptive_repeats_hit_the_maximum_on_noisy_timings(tiny_llama):
    rng = np.random.default_rng(0)
    models = {"dense": tiny_llama, "k=0.5": tiny_llama}
    ids = torch.randint(3, 90, (1, 8))
    timer = _fake_timer(iter(rng.lognormal(0.0, 0.8, size=1000)))
    table = throughput(models, ids, repeats=3, max_repeats=12, warmup=0, time_fn=timer)
    assert (table.repeats == 12).all() and all(len(t) == 12 for t in table.times)
    sp = speedups(table, intervals=True)
    lo, hi = sp.loc["k=0.5", "speedup_body_low"], sp.loc["k=0.5", "speedup_body_high"]
    assert hi - lo > 0.06 * sp.loc["k=0.5", "speedup_body"]  # still imprecise: it stopped
    with pytest.raises(ValueError, match="max_repeats"):
        throughput(models, ids, repeats=3, max_repeats=2)


class _CharTokenizer:
    bos_token_id, pad_token_id = BOS, 0

    def __call__(self, texts, add_special_tokens=False):
        return {"input_ids": [[3 + ord(c) % 80 for c in t] for t in texts]}

    def encode(self, text, add_special_tokens=False):
        return self([text])["input_ids"][0]


def test_speed_batch_is_held_out_text():
    batch = px.speed_batch(_CharTokenizer(), "en", batch=3, seq_len=10)
    assert batch.shape == (3, 10) and (batch[:, 0] == BOS).all() and (batch[:, 1:] >= 3).all()


def test_allocation_table_and_data_table():
    f = np.ones((4, 10))
    f[0, :2] = 5.0
    alloc = px.allocation_table(f, 0.5)
    assert list(alloc.columns) == ["layer", "global", "adaptive"]
    assert alloc["global"].mean() == pytest.approx(0.5)
    assert alloc["adaptive"].mean() == pytest.approx(0.5)
    prof = type("P", (), {"tokens": 7})()
    chunks = type("C", (), {"n_content_tokens": 5})()
    table = px.data_table({"fr": prof}, {"fr": chunks})
    assert table.iloc[0].to_dict() == {"language": "fr", "family": "Indo-European",
                                       "profiled tokens": 7, "evaluation tokens": 5}


def test_settings_validation():
    s = PruningSettings.from_params(kept_shares=[0.6, 1.0, 0.8, 0.8], speed_shares=[0.5, 0.9],
                                    speed_models="smollm2-135m")
    assert s.kept_shares == (1.0, 0.8, 0.6) and s.pruned_shares == [0.8, 0.6]
    assert s.speed_shares == (0.9, 0.5) and s.speed_models == ("smollm2-135m",)
    with pytest.raises(ValueError, match="at least one share below 1.0"):
        PruningSettings.from_params(kept_shares=[1.0])
    with pytest.raises(ValueError, match="speed_shares"):
        PruningSettings.from_params(speed_shares=[1.0])
    with pytest.raises(ValueError, match="seeds"):
        PruningSettings.from_params(seeds=[])
    ns = {"eval_seq_len": 64, "unrelated": 1}
    assert PruningSettings.from_namespace(ns).eval_seq_len == 64
    grouped = PruningSettings.from_namespace({
        "evaluation": {"max_tokens": None, "seq_len": 48, "max_rise": 0.2},
        "construction_languages": [],
        "speed": {"models": ["smollm2-135m"], "shares": [0.7], "batch": 3, "seq_len": 16,
                  "repeats": 4}})
    assert (grouped.eval_max_tokens, grouped.eval_seq_len, grouped.max_rise) == (None, 48, 0.2)
    assert not grouped.construction_compare
    assert (grouped.speed_models, grouped.speed_shares, grouped.speed_batch,
            grouped.speed_seq_len, grouped.speed_repeats) == (("smollm2-135m",), (0.7,), 3, 16, 4)
    assert grouped.speed_max_repeats == 30  # the default maximum
    assert PruningSettings.from_namespace(
        {"speed": {"repeats": 4, "max_repeats": 9}}).speed_max_repeats == 9
    with pytest.raises(ValueError, match="speed_max_repeats"):
        PruningSettings.from_namespace({"speed": {"repeats": 4, "max_repeats": 3}})
    with pytest.raises(ValueError, match="speed must be a mapping"):
        PruningSettings.from_namespace({"speed": {"model": ["x"]}})


def test_figures_draw(planted):
    _, part, _, ev, freq = planted
    sweep = px.perplexity_sweep(ev, {"aa": freq}, part, kept_shares=[1.0, 0.5], seeds=[0])
    cross = pd.DataFrame([[0.1, 0.2], [0.3, 0.4], [0.2, 0.2]], index=["a", "b", px.SUMMED],
                         columns=["a", "b"])
    speed = pd.DataFrame([{"model": "m", "k": 0.5, "theoretical_body": 1.5, "measured_body": 1.3,
                           "theoretical_end_to_end": 1.2, "measured_end_to_end": 1.1}])
    per_lang, _ = px.sweep_intervals(ev, sweep, n_bootstrap=50)
    ivs = {"a": {"a": [0.05, 0.15]}}
    for fig in (figs.kept_per_layer(px.allocation_table(freq, 0.5), share=0.5),
                figs.perplexity_vs_k(sweep, ["aa"]),
                figs.perplexity_vs_k(sweep, ["aa"], intervals=per_lang),
                figs.cross_language_matrix(cross), figs.cross_language_matrix(cross, intervals=ivs),
                figs.speedups(speed),
                figs.speedups(speed.assign(measured_body_low=1.2, measured_body_high=1.4))):
        assert fig.axes
        matplotlib.pyplot.close(fig)
