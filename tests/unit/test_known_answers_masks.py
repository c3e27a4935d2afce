"""Known answers for the pruning structure: expert keep-masks (babel.prune.masks), FLOP counts
(babel.prune.flops) and frequency-matched random controls (babel.prune.controls).

Known answers used: keep-masks of small frequency matrices with distinct values, worked out by
hand from the documented rules (per-layer minimum, then the most frequent experts overall;
water-filled counts ``Σ clip(c·w, 1, E) = budget`` solved by hand); effective numbers of experts
of uniform, one-hot and two-valued layers; ``2·in·out`` FLOPs of hand-sized projections (a fake
model whose config holds exactly the fields the counter reads, GPT-2's ``Conv1D`` and Llama's
``nn.Linear`` tiny models); quantile bins of ``0..n-1`` that hold exactly two experts each, so
the matched control of one expert of a bin is its partner, whatever the seed.
"""
from __future__ import annotations

import math
import re
import types
import warnings

import numpy as np
import pytest
from torch import nn

from babel.construct.partition import Partition
from babel.core.config import PartitionConfig
from babel.prune.controls import matched_random_experts
from babel.prune.flops import FlopCount, flops_per_token, theoretical_speedup
from babel.prune.masks import (
    adaptive_counts,
    allocate,
    effective_experts,
    global_keep_mask,
    group_keep_mask,
    keep_mask,
    keep_top,
    kept_budget,
    neuron_keep_mask,
    random_keep_mask,
    random_like,
    removal_mask,
    sensitivity_counts,
    uniform_counts,
    uniform_random_mask,
)

# [L=3, E=4]: layer 0 decreasing, layer 1 always expert 0, layer 2 nearly uniform
SKEWED = np.array([[4.0, 3.0, 2.0, 1.0], [10.0, 0.0, 0.0, 0.0], [5.0, 4.0, 4.5, 4.8]])


def _ints(mask) -> list[list[int]]:
    return np.asarray(mask).astype(int).tolist()


# ------------------------------------------------------------------------------ budgets
def test_kept_budget_rounds_and_keeps_one_per_layer():
    """round(k·L·E), never below L (one expert per layer) nor above L·E."""
    assert kept_budget(0.5, 3, 4) == 6
    assert kept_budget(0.3, 3, 4) == 4  # round(3.6)
    assert kept_budget(0.01, 3, 4) == 3  # round(0.12) = 0, raised to one per layer
    assert kept_budget(1.0, 3, 4) == 12
    assert kept_budget(1, 2, 5) == 10
    assert isinstance(kept_budget(0.5, 3, 4), int)


@pytest.mark.parametrize("share", [0.0, -0.5, 1.01, 2, True, float("nan")])
def test_kept_share_outside_zero_one_is_rejected(share):
    """The share is a fraction in (0, 1]; ``True`` is not a share even though it equals 1."""
    with pytest.raises(ValueError, match=r"^kept share must be in \(0, 1\], got "
                                         + re.escape(repr(share)) + "$"):
        kept_budget(share, 3, 4)


def test_uniform_counts_spread_the_budget_remainders_first():
    """Budget 7 over 3 layers: 3, 2, 2; budget 6: 2 each; the per-layer minimum: 1 each."""
    assert uniform_counts(7 / 12, 3, 4).tolist() == [3, 2, 2]
    assert uniform_counts(0.5, 3, 4).tolist() == [2, 2, 2]
    assert uniform_counts(0.01, 3, 4).tolist() == [1, 1, 1]
    assert uniform_counts(1.0, 3, 4).tolist() == [4, 4, 4]
    m = uniform_random_mask(3, 4, 7 / 12, seed=3)
    assert m.dtype == bool and m.shape == (3, 4) and m.sum(1).tolist() == [3, 2, 2]


def test_uniform_random_mask_is_the_seeded_random_mask_of_the_uniform_counts():
    """Share 0.5 of 6 × 8: four per layer, drawn exactly as random_keep_mask([4]*6, seed)
    draws them (70^6 possible masks, so an unseeded draw would not match)."""
    m = uniform_random_mask(6, 8, 0.5, seed=3)
    assert np.array_equal(m, random_keep_mask([4] * 6, 8, seed=3))
    assert np.array_equal(m, uniform_random_mask(6, 8, 0.5, seed=3))


# ------------------------------------------------------------------------ frequency checks
@pytest.mark.parametrize("bad", [np.ones(4), np.ones((2, 2, 2)), np.ones((0, 4))])
def test_frequency_must_be_a_non_empty_matrix(bad):
    with pytest.raises(ValueError, match=r"^frequency must be a non-empty \[L, E\] matrix, got "
                                         r"shape .*: pass Profile\.frequency$"):
        global_keep_mask(bad, 0.5)


@pytest.mark.parametrize("bad", [[[0.5, np.nan]], [[0.5, np.inf]], [[0.5, -0.1]]])
def test_frequency_must_be_finite_and_non_negative(bad):
    with pytest.raises(ValueError, match=r"^frequency must be finite and >= 0: "
                                         r"pass Profile\.frequency$"):
        effective_experts(np.array(bad))


# ------------------------------------------------------------------------------ global mask
def test_global_mask_by_hand():
    """Budget 6 of 12: first each layer's top (0.9, 0.3, 0.8), then the three most frequent
    of the rest overall: 0.7, 0.6 (layer 2) and 0.5 (layer 0); layer 1 keeps only its top."""
    f = np.array([[0.9, 0.1, 0.5, 0.0], [0.2, 0.3, 0.05, 0.01], [0.6, 0.7, 0.8, 0.4]])
    assert _ints(global_keep_mask(f, 0.5)) == [[1, 0, 1, 0], [0, 1, 0, 0], [1, 1, 1, 0]]
    assert _ints(keep_mask(f, 0.5)) == _ints(global_keep_mask(f, 0.5))  # the default
    # the smallest share keeps exactly each layer's most frequent expert
    assert _ints(global_keep_mask(f, 0.01)) == [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]]
    assert global_keep_mask(f, 1.0).all()
    # budget 7 adds the next one overall (0.4 of layer 2; 0.2 of layer 1 comes later)
    assert _ints(global_keep_mask(f, 7 / 12)) == [[1, 0, 1, 0], [0, 1, 0, 0], [1, 1, 1, 1]]


def test_global_mask_of_unsigned_counts_ranks_their_values():
    """Activation counts as uint32 (the by-hand matrix above × 100): the same mask; a count
    is ranked by its value (a negated unsigned 0 would otherwise come first)."""
    f = np.array([[90, 10, 50, 0], [20, 30, 5, 1], [60, 70, 80, 40]], dtype=np.uint32)
    assert _ints(global_keep_mask(f, 0.5)) == [[1, 0, 1, 0], [0, 1, 0, 0], [1, 1, 1, 0]]


def test_global_mask_ties_keep_the_budget_and_one_per_layer():
    """All-zero frequencies: every choice is a tie; the count is still exact, every layer
    keeps one, and the seeded order makes it reproducible."""
    f = np.zeros((5, 6))
    m = global_keep_mask(f, 0.3)  # round(9) = 9
    assert m.sum() == 9 and (m.sum(1) >= 1).all()
    assert np.array_equal(m, global_keep_mask(f, 0.3))


# --------------------------------------------------------------------- effective experts
def test_effective_experts_by_hand():
    """exp(H): 4 for a uniform layer, 1 for a one-hot layer, 2 for two equal experts, E for a
    silent layer (counted as uniform), and exp(-Σ p ln p) for p = (1/4, 3/4); scale-free."""
    f = np.array([[1, 1, 1, 1], [0, 7, 0, 0], [3, 0, 3, 0], [0, 0, 0, 0], [1, 3, 0, 0]], float)
    h = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    np.testing.assert_allclose(effective_experts(f), [4, 1, 2, 4, math.exp(h)], rtol=1e-12)
    np.testing.assert_allclose(effective_experts(f * 1000), effective_experts(f), rtol=1e-12)


def test_effective_experts_of_silent_layers_and_zeros_raise_no_warning():
    """A silent layer (E = 3) and zero frequencies (two equal experts: 2) are handled without a
    numpy warning (no 0/0, no log 0 reported): under warnings-as-errors the values are
    still 3 and 2."""
    f = np.array([[0.0, 0.0, 0.0], [0.0, 5.0, 5.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = effective_experts(f)
    np.testing.assert_allclose(got, [3.0, 2.0], rtol=1e-12)


# ------------------------------------------------------------------------------- allocate
def test_allocate_by_hand():
    """Water-filling: [1,2,3] at budget 6 is exactly c = 1; [1,1,4] at budget 7 needs c = 1.5
    (1.5 + 1.5 + 4, floors 1 + 1 + 4 = 6, one more to the first of the tied halves); a zero
    weight still gets one expert, the rest goes to the other layer up to E."""
    assert allocate([1, 2, 3], 6, 4).tolist() == [1, 2, 3]
    assert allocate([1, 1, 4], 7, 4).tolist() == [2, 1, 4]
    assert allocate([0, 1], 5, 4).tolist() == [1, 4]
    assert allocate([1, 1, 1], 3, 4).tolist() == [1, 1, 1]
    assert allocate([1, 1, 1], 12, 4).tolist() == [4, 4, 4]
    assert allocate([5, 1, 1], 9, 4).tolist() == [4, 3, 2]  # c = 2.5: 4 + 2.5 + 2.5, tie
    out = allocate([3.0, 1.0], 4, 8)
    assert out.dtype == np.int64 and out.tolist() == [3, 1]


def test_allocate_clipped_layers_and_tied_remainders():
    """A zero weight is clipped up to one expert and the rest solved around it: [0, 2, 2] at
    budget 4 (E = 2) has c = 0.75, 1 + 1.5 + 1.5 (floors 1, 1, 1), one more to the first of
    the tied halves: (1, 2, 1). [1, 3] at budget 6 (E = 8): c = 1.5 exactly, 1.5 + 4.5, the
    tie of halves again to the first: (2, 4), not (1, 5). [1, 2, 3, 3] at budget 5 (E = 2):
    c = 0.5, 1 + 1 + 1.5 + 1.5, the one left over to layer 2, the first of the tied halves."""
    assert allocate([0, 2, 2], 4, 2).tolist() == [1, 2, 1]
    assert allocate([1, 3], 6, 8).tolist() == [2, 4]
    assert allocate([1, 2, 3, 3], 5, 2).tolist() == [1, 1, 2, 1]


@pytest.mark.parametrize("budget", [2, 13])
def test_allocate_rejects_a_budget_outside_one_to_e_per_layer(budget):
    with pytest.raises(ValueError, match=rf"^budget {budget} must be in \[3, 12\] "
                                         r"\(one to E experts per layer\)$"):
        allocate([1, 1, 1], budget, 4)


def test_adaptive_counts_and_mask_by_hand():
    """Effective experts ≈ (3.60, 1, 3.99), budget 6: c ≈ 0.658 gives (2.37, 1, 2.63), floors
    (2, 1, 2), the largest remainder (layer 2) one more: counts (2, 1, 3); then each layer's
    most frequent experts. The global mask of the same matrix differs (layer 2 keeps all)."""
    assert adaptive_counts(SKEWED, 0.5).tolist() == [2, 1, 3]
    want = [[1, 1, 0, 0], [1, 0, 0, 0], [1, 0, 1, 1]]
    assert _ints(keep_mask(SKEWED, 0.5, allocation="adaptive")) == want
    assert _ints(keep_mask(SKEWED, 0.5, allocation="global")) == [[1, 0, 0, 0], [1, 0, 0, 0],
                                                                  [1, 1, 1, 1]]
    with pytest.raises(ValueError, match=r"^allocation must be one of \('global', 'adaptive'\), "
                                         r"got 'local'$"):
        keep_mask(SKEWED, 0.5, allocation="local")  # type: ignore[arg-type]


# ----------------------------------------------------------------------- sensitivity counts
def test_sensitivity_counts_by_hand():
    """rise (0, 0.1, 0.3): a = rise + median 0.1 = (0.1, 0.2, 0.4), removals ∝ 1/a = (10, 5,
    2.5); 6 removals of 12 water-filled as counts in [1, 4] summing to 9: c = 2/3 gives (4,
    3.33, 1.67) → (4, 3, 2), i.e. removals (3, 2, 1) and kept (1, 2, 3)."""
    assert sensitivity_counts([0.0, 0.1, 0.3], 0.5, 4).tolist() == [1, 2, 3]
    # negative rises count as 0: the same as above
    assert sensitivity_counts([-0.2, 0.1, 0.3], 0.5, 4).tolist() == [1, 2, 3]
    # one layer: a = 0.5 + 0.5, two of four removed
    assert sensitivity_counts([0.5], 0.5, 4).tolist() == [2]
    # nothing removed
    full = sensitivity_counts([0.3, 0.1], 1.0, 4)
    assert full.tolist() == [4, 4] and full.dtype == np.int64


def test_sensitivity_counts_fewer_removals_than_layers():
    """One removal: the least sensitive layer loses one; two: the two least; ties: the first."""
    rise = [0.3, -0.1, 0.2]
    assert sensitivity_counts(rise, 11 / 12, 4).tolist() == [4, 3, 4]  # budget 11: 1 removed
    assert sensitivity_counts(rise, 10 / 12, 4).tolist() == [4, 3, 3]
    assert sensitivity_counts([0.1, 0.1, 0.1], 10 / 12, 4).tolist() == [3, 3, 4]
    assert sensitivity_counts([0.2, 0.1], 7 / 8, 4).tolist() == [4, 3]


def test_sensitivity_counts_as_many_removals_as_layers_are_water_filled():
    """3 removals in 3 layers is the water-filled case, not one per layer: rise (0, 0.1, 0.3),
    1/a = (10, 5, 2.5), counts in [1, 4] summing to 6: c = 1/3 gives (3.33, 1.67, 1) →
    (3, 2, 1), i.e. removals (2, 1, 0) and kept (2, 3, 4)."""
    assert sensitivity_counts([0.0, 0.1, 0.3], 0.75, 4).tolist() == [2, 3, 4]


def test_sensitivity_count_ties_lose_in_layer_order():
    """Eight layers, five tied at the lowest rise: three removals fall on the first three of
    them (layers 1, 2, 4), whatever the sorting algorithm's own order of ties."""
    rise = np.zeros(8)
    rise[::3] = 0.1  # layers 0, 3, 6 more sensitive
    want = np.full(8, 4)
    want[[1, 2, 4]] = 3
    assert sensitivity_counts(rise, 29 / 32, 4).tolist() == want.tolist()


@pytest.mark.parametrize("bad", [[], [[0.1, 0.2]], [0.1, np.nan], [0.1, None]])
def test_sensitivity_counts_rejects_bad_rises(bad):
    """Empty, 2-D, NaN and missing (None) rises are all one ValueError naming the fix."""
    with pytest.raises(ValueError, match=r"^rise must be a finite \[L\] vector, got .*: "
                                         r"pass layer_sensitivity\(\)$"):
        sensitivity_counts(bad, 0.5, 4)


# ------------------------------------------------------------------------------ keep_top
def test_keep_top_by_hand():
    s = np.array([[0.1, 0.9, 0.5], [3.0, 1.0, 2.0]])
    assert _ints(keep_top(s, [2, 0])) == [[0, 1, 1], [0, 0, 0]]
    assert _ints(keep_top(s, np.array([1, 3]))) == [[0, 1, 0], [1, 1, 1]]
    for bad in ([1], [1, 4], [-1, 1], [[1, 1]]):
        with pytest.raises(ValueError, match=r"^counts must be a \[L=2\] vector in \[0, 3\]$"):
            keep_top(s, bad)


# --------------------------------------------------------------------------------- groups
def test_group_masks_by_hand():
    """A keeps (L0: 0, 1; L1: 2, 3) and B (L0: 2, 3; L1: 0, 1) on their own: their union is
    everything. The summed frequency is (0.9, 0.6, 0.5, 0.95 | 1.05, 0.75, 0.47, 0.95): the
    layer tops 0.95 and 1.05, then 0.95 and 0.9 → (0, 3) in both layers."""
    a = [[0.8, 0.4, 0.2, 0.1], [0.15, 0.25, 0.35, 0.9]]
    b = [[0.1, 0.2, 0.3, 0.85], [0.9, 0.5, 0.12, 0.05]]
    assert _ints(keep_mask(np.array(a), 0.5)) == [[1, 1, 0, 0], [0, 0, 1, 1]]
    assert _ints(keep_mask(np.array(b), 0.5)) == [[0, 0, 1, 1], [1, 1, 0, 0]]
    assert group_keep_mask(np.array([a, b]), 0.5, combine="union").all()
    summed = [[1, 0, 0, 1], [1, 0, 0, 1]]
    assert _ints(group_keep_mask(np.array([a, b]), 0.5, combine="sum")) == summed
    assert _ints(group_keep_mask([a, b], 0.5)) == summed  # the default combine, from lists


@pytest.mark.parametrize("combine", ["sum", "union"])
def test_a_group_of_identical_languages_keeps_what_one_keeps(combine):
    """Summing copies scales the frequencies (same ranking); the union of equal masks is the
    mask: both allocations pass through."""
    freqs = np.stack([SKEWED, SKEWED])
    for alloc in ("global", "adaptive"):
        got = group_keep_mask(freqs, 0.5, combine=combine, allocation=alloc)
        assert np.array_equal(got, keep_mask(SKEWED, 0.5, allocation=alloc))
    assert _ints(group_keep_mask(freqs, 0.5, combine=combine, allocation="adaptive")) == [
        [1, 1, 0, 0], [1, 0, 0, 0], [1, 0, 1, 1]]


def test_group_keep_mask_errors():
    with pytest.raises(ValueError, match=r"^freqs must be \[n_lang, L, E\], got shape \(3, 4\): "
                                         r"use babel\.profile\.cache\.frequency_tensor$"):
        group_keep_mask(SKEWED, 0.5)
    with pytest.raises(ValueError, match=r"^combine must be one of \('sum', 'union'\), "
                                         r"got 'max'$"):
        group_keep_mask(SKEWED[None], 0.5, combine="max")  # type: ignore[arg-type]
    # a missing frequency (None) is not finite: the frequency check names it
    freqs = [[[0.5, None], [0.1, 0.2]], [[0.1, 0.2], [0.3, 0.4]]]
    for combine in ("sum", "union"):
        with pytest.raises(ValueError, match="frequency must be finite"):
            group_keep_mask(freqs, 0.5, combine=combine)


# ---------------------------------------------------------------------------- random masks
def test_random_keep_mask_counts_and_seed():
    """Exactly counts[l] per layer; the same seed gives the same mask, another seed another."""
    m = random_keep_mask([0, 2, 4, 1], 4, seed=7)
    assert m.dtype == bool and m.shape == (4, 4) and m.sum(1).tolist() == [0, 2, 4, 1]
    assert np.array_equal(m, random_keep_mask(np.array([0, 2, 4, 1]), 4, seed=7))
    masks = {random_keep_mask([2] * 6, 8, seed=s).tobytes() for s in range(5)}
    assert len(masks) == 5
    for bad in ([[1, 1]], [-1, 2], [5, 1]):
        with pytest.raises(ValueError, match=r"^counts must be a \[L\] vector in \[0, 4\], got "):
            random_keep_mask(bad, 4, seed=0)
    # the message shows the counts as read: whole numbers, as int64
    with pytest.raises(ValueError, match=r"got array\(\[5, 1\]\)$"):
        random_keep_mask(np.array([5.0, 1.0]), 4, seed=0)


def test_random_keep_mask_is_uniform_over_experts():
    """One of four experts per layer over 400 seeds: each expert near 100 times."""
    hits = sum(random_keep_mask([1], 4, seed=s)[0].astype(int) for s in range(400))
    assert hits.sum() == 400 and (np.abs(hits - 100) < 35).all()


def test_random_like_keeps_the_per_layer_counts():
    mask = np.array([[1, 1, 0, 0, 1], [0, 0, 0, 0, 1], [1, 1, 1, 1, 1]], dtype=bool)
    r = random_like(mask, seed=1)
    assert r.shape == (3, 5) and r.sum(1).tolist() == [3, 1, 5]
    assert np.array_equal(r, random_like(mask.astype(int), seed=1))


# ---------------------------------------------------------------------------- removal
def test_removal_mask_by_hand():
    """Keep all but the removed experts; a layer removed entirely keeps its most frequent."""
    remove = np.array([[1, 0, 1, 0], [1, 1, 1, 1], [0, 0, 0, 0]], dtype=bool)
    freq = np.array([[0.1, 0.2, 0.3, 0.4], [0.2, 0.1, 0.9, 0.3], [0, 0, 0, 0]])
    assert _ints(removal_mask(remove, freq)) == [[0, 1, 0, 1], [0, 0, 1, 0], [1, 1, 1, 1]]
    assert _ints(removal_mask(remove[[0, 2]])) == [[0, 1, 0, 1], [1, 1, 1, 1]]  # none emptied
    alone = removal_mask(remove)  # without frequencies: one expert of the emptied layer
    assert alone[1].sum() == 1 and _ints(alone[[0, 2]]) == [[0, 1, 0, 1], [1, 1, 1, 1]]
    with pytest.raises(ValueError, match="frequency must be finite"):
        removal_mask(remove, -freq - 1)


def test_removal_mask_reads_a_zero_one_int_matrix_as_bool():
    """The same 0/1 removals as ints: the same bool keep-mask as in the test above."""
    remove = np.array([[1, 0, 1, 0], [1, 1, 1, 1], [0, 0, 0, 0]])
    freq = np.array([[0.1, 0.2, 0.3, 0.4], [0.2, 0.1, 0.9, 0.3], [0, 0, 0, 0]])
    got = removal_mask(remove, freq)
    assert got.dtype == bool and _ints(got) == [[0, 1, 0, 1], [0, 0, 1, 0], [1, 1, 1, 1]]


def test_neuron_keep_mask_follows_the_labels():
    labels = np.array([[0, 1, 1, 0, 2, 2], [2, 2, 1, 1, 0, 0]])
    part = Partition(PartitionConfig(n_experts=3, method="random"), "toy", labels, "x")
    keep = np.array([[1, 0, 1], [0, 1, 0]], dtype=bool)
    assert _ints(neuron_keep_mask(keep, part)) == [[1, 0, 0, 1, 1, 1], [0, 0, 1, 1, 0, 0]]
    as_int = neuron_keep_mask(keep.astype(int), part)  # a 0/1 int mask: the same bool mask
    assert as_int.dtype == bool and _ints(as_int) == _ints(neuron_keep_mask(keep, part))
    with pytest.raises(ValueError, match=r"^expert mask \(2, 4\) does not match the partition "
                                         r"\(2, 3\): build it from this partition's profiles$"):
        neuron_keep_mask(np.ones((2, 4), bool), part)


# ================================================================================== FLOPs
class _Block(nn.Module):
    def __init__(self, d: int, n: int):
        super().__init__()
        self.mlp = nn.Module()
        self.mlp.gate_proj = nn.Linear(d, n, bias=False)
        self.mlp.up_proj = nn.Linear(d, n, bias=False)
        self.mlp.down_proj = nn.Linear(n, d, bias=False)
        self.q_proj = nn.Linear(d, d, bias=False)


class _FakeLM(nn.Module):
    """Two gated layers, d = 8, N = 6, one 8×8 attention projection each; no output head;
    the config is whatever the test passes (only its fields are read)."""

    def __init__(self, config):
        super().__init__()
        self.layers = nn.ModuleList([_Block(8, 6), _Block(8, 6)])
        self.config = config


def _composite():
    """A multimodal-style config: the text fields live only in get_text_config()."""
    text = types.SimpleNamespace(num_attention_heads=2, hidden_size=8, head_dim=3)
    return types.SimpleNamespace(get_text_config=lambda: text)


def test_flops_of_a_fake_model_by_hand():
    """FFN: 2 layers × 3 projections × 2·8·6 = 576; attention 2 × 2·8·8 = 256; no head."""
    fc = flops_per_token(_FakeLM(_composite()))
    assert fc == FlopCount(576, 256, 0)
    assert (fc.body, fc.total) == (832, 832)
    # kept neurons: 2 and 6 of 6, gated (gate, up in; down out): 2·8·k·3
    keep = np.array([[1, 1, 0, 0, 0, 0], [1] * 6], dtype=bool)
    assert flops_per_token(_FakeLM(_composite()), keep_neurons=keep).ffn == 96 + 288


def test_attention_products_read_the_text_config():
    """seq_len 5: 2 layers × 4·heads·head_dim·(5+1)/2 with the text config's heads 2 and its
    explicit head_dim 3 (not hidden/heads = 4): 144 more."""
    fc = flops_per_token(_FakeLM(_composite()), seq_len=5)
    assert fc.attention == 256 + 144 and fc.ffn == 576 and fc.head == 0


def test_attention_products_from_gpt2_style_fields():
    """A plain config with only n_head = 4 and n_embd = 30 (no get_text_config, no head_dim):
    head_dim = 30 // 4 = 7, so 2 × 4·4·7·6/2 = 672 at seq_len 5."""
    cfg = types.SimpleNamespace(n_head=4, n_embd=30)
    assert flops_per_token(_FakeLM(cfg), seq_len=5).attention == 256 + 672


def test_attention_products_are_exact_integers_for_huge_contexts():
    """Integer arithmetic: 2 × 4·2·3·(2^60+1)/2 = 24·(2^60+1) exactly (a float loses the +24)."""
    n = 2 ** 60
    fc = flops_per_token(_FakeLM(_composite()), seq_len=n)
    assert fc.attention == 256 + 24 * (n + 1)


def test_flops_of_tiny_gpt2_conv1d_by_hand():
    """GPT-2 (Conv1D everywhere): per layer c_attn 2·32·96 + c_proj 2·32·32 = 8192 of
    attention, c_fc + c_proj 2·(2·32·64) = 8192 of FFN; 3 layers; head 2·32·97 = 6208.
    Plain FFN with k kept neurons: 2·32·k·2 per layer."""
    from tests.conftest import _tiny

    model = _tiny("gpt2")
    fc = flops_per_token(model)
    assert fc.as_dict() == {"ffn": 24576, "attention": 24576, "body": 49152, "head": 6208,
                            "total": 55360}
    keep = np.zeros((3, 64), dtype=bool)
    keep[:, :16] = True
    assert flops_per_token(model, keep_neurons=keep).ffn == 3 * 2 * 32 * 16 * 2
    # heads 4, head_dim 32 / 4 = 8: 3 × 4·4·8·(9+1)/2 at seq_len 9
    assert flops_per_token(model, seq_len=9).attention == 24576 + 1920


def test_flops_of_tiny_llama_by_hand():
    """Llama (d 32, N 64, 4 heads of 8, 2 KV heads): FFN 3·2·32·64 per layer, attention
    2·32·(32 + 16 + 16 + 32); 3 layers; head 2·32·97."""
    from tests.conftest import _tiny

    fc = flops_per_token(_tiny("llama"))
    assert fc == FlopCount(3 * 12288, 3 * 6144, 6208)


def test_theoretical_speedup_by_hand():
    dense, pruned = FlopCount(100, 50, 10), FlopCount(1, 50, 10)
    assert theoretical_speedup(dense, pruned) == pytest.approx(
        {"ffn": 100.0, "body": 150 / 51, "end_to_end": 160 / 61})
    assert theoretical_speedup(dense, FlopCount(0, 50, 10))["ffn"] == 100.0  # no FFN left
    assert theoretical_speedup(dense, FlopCount(40, 50, 10)) == pytest.approx(
        {"ffn": 2.5, "body": 150 / 90, "end_to_end": 160 / 100})


# =============================================================================== controls
def test_matched_control_is_the_bin_partner():
    """freq 0..7 in 4 quantile bins: {0,1}, {2,3}, {4,5}, {6,7}. One chosen expert per bin
    leaves exactly its partner: the control is determined whatever the seed."""
    freq = np.arange(8.0).reshape(2, 4)
    chosen = np.array([[1, 0, 0, 1], [0, 1, 1, 0]], dtype=bool)  # 0, 3, 5, 6
    for seed in range(4):
        out = matched_random_experts(freq, chosen, seed=seed, n_bins=4)
        assert _ints(out) == [[0, 1, 1, 0], [1, 0, 0, 1]]  # 1, 2, 4, 7


def test_matched_control_reads_a_zero_one_int_matrix_as_bool():
    """chosen given as 0/1 ints: the same partners as the bool matrix above (1, 2, 4, 7)."""
    freq = np.arange(8.0).reshape(2, 4)
    out = matched_random_experts(freq, np.array([[1, 0, 0, 1], [0, 1, 1, 0]]), seed=0,
                                 n_bins=4)
    assert out.dtype == bool and _ints(out) == [[0, 1, 1, 0], [1, 0, 0, 1]]


def test_a_frequency_on_a_bin_edge_belongs_to_the_upper_bin():
    """freq (0, 1, 2) in 2 bins: the median edge is 1.0 itself; the expert at 1.0 goes to the
    upper bin with 2.0 (as ``np.digitize``), so its control is expert 2, never expert 0."""
    freq = np.array([[0.0, 1.0, 2.0]])
    for seed in range(3):
        out = matched_random_experts(freq, np.array([[False, True, False]]), seed=seed,
                                     n_bins=2)
        assert _ints(out) == [[0, 0, 1]]


def test_matched_control_serves_the_neediest_bin_first():
    """freq 0..9 in 5 bins of two. Bin 3 ({6, 7}) needs two and has none left, bin 2 ({4,
    5}) needs one and has 5. Bin 3 goes first: 5 (distance 1, lower of the tie with bin 4),
    then one of bin 4 ({8, 9}); bin 2 then falls to bin 1 (distance 1): one of {2, 3}.
    Serving bin 2 first would give 5 and both of bin 4 instead."""
    freq = np.arange(10.0).reshape(2, 5)
    chosen = np.isin(np.arange(10), [4, 6, 7]).reshape(2, 5)
    for seed in range(6):
        got = set(np.flatnonzero(matched_random_experts(freq, chosen, seed=seed, n_bins=5)))
        assert len(got) == 3 and 5 in got
        assert len(got & {8, 9}) == 1 and len(got & {2, 3}) == 1


def test_matched_control_bins_with_equal_need_go_in_bin_order():
    """freq 0..11 in 6 bins of two; chosen 2, 4, 6, 8, 9: bins 1, 2, 3 need one each, bin 4
    needs two and has none left. Bin 4 first: 7 (bin 3, lower of the tie with bin 5), then
    bin 5 (distance 1); then bins 1, 2, 3 in bin order: 3, 5, and bin 3 (now empty) takes
    bin 5's other expert (distance 2; bin 1 is empty by then). {3, 5, 7, 10, 11} whatever the
    seed; bin 3 before bin 2 would take 5 and push bin 2 out to bin 0."""
    freq = np.arange(12.0).reshape(3, 4)
    chosen = np.isin(np.arange(12), [2, 4, 6, 8, 9]).reshape(3, 4)
    for seed in range(3):
        out = matched_random_experts(freq, chosen, seed=seed, n_bins=6)
        assert np.flatnonzero(out).tolist() == [3, 5, 7, 10, 11]


def test_matched_control_falls_back_to_the_nearest_bin():
    """Both experts of bin 0 chosen: its pool is empty, bin 1 (distance 1) gives both of its
    experts; both of bin 1 chosen: bins 0 and 2 are equally near, the lower one gives."""
    freq = np.arange(8.0).reshape(2, 4)
    out = matched_random_experts(freq, np.arange(8).reshape(2, 4) < 2, seed=0, n_bins=4)
    assert np.flatnonzero(out).tolist() == [2, 3]
    chosen = np.isin(np.arange(8), [2, 3]).reshape(2, 4)
    out = matched_random_experts(freq, chosen, seed=5, n_bins=4)
    assert np.flatnonzero(out).tolist() == [0, 1]
    # bin 3 needs two, its pool is empty: bin 2's last one (5), then bin 1 (distance 2);
    # bin 2 then needs one: bin 1 (distance 1) gives its other expert
    chosen = np.isin(np.arange(8), [4, 6, 7]).reshape(2, 4)
    out = matched_random_experts(freq, chosen, seed=1, n_bins=4)
    assert np.flatnonzero(out).tolist() == [2, 3, 5]


def test_matched_control_default_is_twenty_bins():
    """40 experts with frequencies 0..39: 20 quantile bins of two, {2i, 2i+1}."""
    freq = np.arange(40.0).reshape(4, 10)
    chosen = np.isin(np.arange(40), [1, 17, 38]).reshape(4, 10)
    out = matched_random_experts(freq, chosen, seed=3)
    assert np.flatnonzero(out).tolist() == [0, 16, 39]


def test_matched_control_draws_uniformly_within_a_bin():
    """Bins of four (freq 0..7, 2 bins): one chosen expert of bin 0 is matched by each of the
    three others about equally often over seeds, never by itself or by bin 1."""
    freq = np.arange(8.0).reshape(2, 4)
    chosen = np.zeros((2, 4), dtype=bool)
    chosen[0, 0] = True
    hits = sum(matched_random_experts(freq, chosen, seed=s, n_bins=2).ravel().astype(int)
               for s in range(300))
    assert hits[0] == 0 and hits[4:].sum() == 0
    assert (np.abs(hits[1:4] - 100) < 35).all()


def test_matched_control_errors():
    freq = np.arange(8.0).reshape(2, 4)
    with pytest.raises(ValueError, match=r"^freq \(2, 4\) and chosen \(4, 2\) must have one "
                                         r"shape$"):
        matched_random_experts(freq, np.zeros((4, 2), bool), seed=0)
    with pytest.raises(ValueError, match=r"^cannot match 5 experts from the 3 others: "
                                         r"choose fewer$"):
        matched_random_experts(freq, np.arange(8).reshape(2, 4) < 5, seed=0)
    # exactly as many chosen as others is fine: the control is all the others
    out = matched_random_experts(freq, np.arange(8).reshape(2, 4) < 4, seed=0, n_bins=4)
    assert _ints(out) == [[0, 0, 0, 0], [1, 1, 1, 1]]
