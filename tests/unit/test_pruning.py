"""Keep-masks, structural pruning (= masking), save/load and FLOP accounting."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from babel.construct.partition import build_partition
from babel.core.config import PartitionConfig
from babel.models.ffn import ffn_layers
from babel.models.hooks import mask_neurons
from babel.models.surgery import ffn_sizes, load_pruned, prune_model, save_pruned
from babel.prune.flops import flops_per_token, theoretical_speedup
from babel.prune.masks import (
    adaptive_counts,
    allocate,
    effective_experts,
    group_keep_mask,
    keep_mask,
    kept_budget,
    neuron_keep_mask,
    random_keep_mask,
    random_like,
    removal_mask,
    uniform_random_mask,
)


def _freq(seed=0, n_layers=6, n_exp=16):
    rng = np.random.default_rng(seed)
    f = rng.gamma(0.5, 0.1, (n_layers, n_exp))
    f[2] = 0.0  # a layer never selected: still keeps one expert
    f[3, :3] = 1.0  # a concentrated layer
    f[3, 3:] = 1e-4
    return f


def _neuron_mask(model, share=0.6, seed=0):
    rng = np.random.default_rng(seed)
    return np.stack([rng.random(v.n_neurons) < share for v in ffn_layers(model)])


def _ids(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(3, 90, (2, 11), generator=g)



@pytest.mark.parametrize("allocation", ["global", "adaptive"])
@pytest.mark.parametrize("share", [1.0, 0.7, 0.3, 0.01])
def test_keep_mask_share_and_per_layer_minimum(allocation, share):
    f = _freq()
    m = keep_mask(f, share, allocation=allocation)
    assert m.shape == f.shape and m.dtype == bool
    assert m.sum() == kept_budget(share, *f.shape) == max(6, round(share * 96))
    assert m.sum(1).min() >= 1


def test_global_keeps_most_frequent():
    f = _freq()
    m = keep_mask(f, 0.5)
    # apart from the reserved per-layer minimum, everything kept is at least as frequent as
    # everything dropped
    reserved = m & (f == f.max(1, keepdims=True))
    assert f[m & ~reserved].min() >= f[~m].max()


def _reference_adaptive_counts(freq: np.ndarray, share: float) -> np.ndarray:
    """Test-only reference: exp(entropy) per layer, water-filled into [1, E], largest remainder.

    Written from the definition, with an explicit loop that fixes clipped layers and
    re-spreads the rest (not the bisection the implementation uses).
    """
    n_layers, n_exp = freq.shape
    eff = np.empty(n_layers)
    for layer in range(n_layers):
        row = freq[layer]
        p = row / row.sum() if row.sum() > 0 else np.full(n_exp, 1.0 / n_exp)
        eff[layer] = math.exp(-sum(q * math.log(q) for q in p if q > 0))
    budget = max(n_layers, round(share * n_layers * n_exp))
    fixed: dict[int, float] = {}
    while True:
        free = [i for i in range(n_layers) if i not in fixed]
        c = (budget - sum(fixed.values())) / sum(eff[i] for i in free)
        x = {i: c * eff[i] for i in free}
        over = {i: float(n_exp) for i in free if x[i] > n_exp}
        under = {i: 1.0 for i in free if x[i] < 1}
        if not over and not under:
            break
        fixed.update(over or under)  # clip one side at a time, then re-spread
    x.update(fixed)
    target = np.array([x[i] for i in range(n_layers)])
    n = np.floor(target + 1e-9).astype(int)
    for i in np.argsort(-(target - n), kind="stable")[: budget - n.sum()]:
        n[i] += 1
    return n


def test_adaptive_counts_hand_computed():
    # 3 layers x 8 experts: uniform over 8, over 2 and over 4 experts -> exp(H) = 8, 2, 4.
    f = np.zeros((3, 8))
    f[0] = 0.3
    f[1, :2] = 0.6
    f[2, :4] = 0.45
    np.testing.assert_allclose(effective_experts(f), [8.0, 2.0, 4.0])
    # share 0.5: budget 12 = c * (8 + 2 + 4) -> c = 6/7 -> 6.857, 1.714, 3.429;
    # floors 6, 1, 3 (sum 10), the two largest remainders (.857, .714) get +1 -> 7, 2, 3.
    # (Weights H = ln 8 : ln 2 : ln 4 = 3 : 1 : 2 would give 6, 2, 4; a uniform split 4, 4, 4.)
    assert adaptive_counts(f, 0.5).tolist() == [7, 2, 3]
    # share 0.75: budget 18 = c * 14 -> 10.3 > 8: layer 0 clipped at 8, 10 = c' * (2 + 4)
    # -> 3.33, 6.67: floors 3, 6, the remainder to layer 2 -> 8, 3, 7.
    assert adaptive_counts(f, 0.75).tolist() == [8, 3, 7]
    # share 0.1: budget 3 (round 2.4 -> 2, raised to one per layer) -> 1, 1, 1
    assert adaptive_counts(f, 0.1).tolist() == [1, 1, 1]
    # an empty layer counts as uniform (exp(H) = E)
    f[1] = 0.0
    assert effective_experts(f)[1] == pytest.approx(8.0)


@pytest.mark.parametrize("share", [0.9, 0.6, 0.33, 0.1])
def test_adaptive_counts_and_mask_match_the_reference(share):
    f = _freq() + np.linspace(0, 1e-6, 96).reshape(6, 16)  # distinct values: no ties
    ref = _reference_adaptive_counts(f, share)
    assert adaptive_counts(f, share).tolist() == ref.tolist()
    m = keep_mask(f, share, allocation="adaptive")
    for layer in range(6):  # within a layer, the ref[layer] most frequent experts
        top = set(np.argsort(-f[layer])[: ref[layer]].tolist())
        assert set(np.flatnonzero(m[layer]).tolist()) == top, layer


def test_allocate_hand_computed():
    # weights 1, 2, 4, 100 into 20 with at most 8 each: layer 3 clipped at 8, then
    # 12 = c * 7 -> 1.714, 3.429, 6.857 -> floors 1, 3, 6 (18 with the 8) + the two largest
    # remainders (.857 -> layer 2, .714 -> layer 0) -> 2, 3, 7, 8.
    assert allocate(np.array([1.0, 2.0, 4.0, 100.0]), 20, 8).tolist() == [2, 3, 7, 8]


def test_random_baseline_same_counts_and_seeded():
    m = keep_mask(_freq(), 0.5)
    r0, r0b, r1 = random_like(m, seed=0), random_like(m, seed=0), random_like(m, seed=1)
    assert (r0.sum(1) == m.sum(1)).all()
    assert np.array_equal(r0, r0b) and not np.array_equal(r0, r1)
    assert (random_keep_mask([0, 3, 16], 16, seed=2).sum(1) == [0, 3, 16]).all()
    u = uniform_random_mask(6, 16, 0.5, seed=0)
    assert u.sum() == m.sum() and u.sum(1).max() - u.sum(1).min() <= 1
    u = uniform_random_mask(6, 16, 0.33, seed=0)
    assert u.sum() == kept_budget(0.33, 6, 16) and u.sum(1).max() - u.sum(1).min() <= 1


def test_group_masks_hand_computed():
    fa = np.array([[0.9, 0.1, 0.0, 0.0], [0.0, 0.3, 0.5, 0.4]])
    fb = np.array([[0.0, 0.05, 0.8, 0.1], [0.45, 0.3, 0.0, 0.6]])
    # share 0.5 of 2 x 4: budget 4. Global on one language: each layer's best, then the two
    # most frequent of the rest. fa: L0e0, L1e2, then .4 (L1e3), .3 (L1e1);
    # fb: L0e2, L1e3, then .45 (L1e0), .3 (L1e1).
    assert keep_mask(fa, 0.5).astype(int).tolist() == [[1, 0, 0, 0], [0, 1, 1, 1]]
    assert keep_mask(fb, 0.5).astype(int).tolist() == [[0, 0, 1, 0], [1, 1, 0, 1]]
    both = np.stack([fa, fb])
    # sum = [[.9, .15, .8, .1], [.45, .6, .5, 1.0]]: best L0e0, L1e3, then .8 (L0e2) and
    # .6 (L1e1: moderately frequent in both; the per-expert max would pick .5, L1e2)
    s = group_keep_mask(both, 0.5, combine="sum")
    assert s.astype(int).tolist() == [[1, 0, 1, 0], [0, 1, 0, 1]]
    # union of the two own masks: 6 experts (more than the budget)
    u = group_keep_mask(both, 0.5, combine="union")
    assert u.astype(int).tolist() == [[1, 0, 1, 0], [1, 1, 1, 1]]
    with pytest.raises(ValueError, match="combine"):
        group_keep_mask(both, 0.5, combine="max")
    with pytest.raises(ValueError, match=r"\[n_lang, L, E\]"):
        group_keep_mask(fa, 0.5)


def test_global_keep_mask_hand_computed():
    # layer 1 is the most frequent everywhere; layer 0 keeps only its reserved best expert
    f = np.array([[0.05, 0.2, 0.01, 0.0], [0.9, 0.8, 0.7, 0.6]])
    assert keep_mask(f, 0.5).astype(int).tolist() == [[0, 1, 0, 0], [1, 1, 1, 0]]
    assert keep_mask(f, 0.75).astype(int).tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]


def test_removal_keeps_one_per_layer():
    f = _freq()
    remove = np.zeros_like(f, dtype=bool)
    remove[0] = True
    remove[1, :4] = True
    k = removal_mask(remove, f)
    assert k[0].sum() == 1 and k[0, f[0].argmax()]
    assert k[1].sum() == 12 and k[2:].all()


def test_neuron_mask_follows_labels(tiny_llama):
    part = build_partition(tiny_llama, PartitionConfig(n_experts=8, method="random"))
    m = keep_mask(np.random.default_rng(0).random((3, 8)), 0.5)
    nm = neuron_keep_mask(m, part)
    assert nm.shape == (3, 64)
    assert np.array_equal(nm.sum(1), m.sum(1) * 8)
    assert all(m[i, part.labels[i, j]] == nm[i, j] for i in range(3) for j in range(64))


def test_bad_inputs():
    with pytest.raises(ValueError, match="share"):
        keep_mask(_freq(), 0.0)
    with pytest.raises(ValueError, match="allocation"):
        keep_mask(_freq(), 0.5, allocation="uniform")
    with pytest.raises(ValueError, match=r"\[L, E\]"):
        keep_mask(np.ones(5), 0.5)


def test_keeping_every_neuron_gives_identical_logits(tiny_model):
    keep = np.ones((3, 64), dtype=bool)
    pruned = prune_model(tiny_model, keep)
    ids = _ids()
    with torch.no_grad():
        assert torch.equal(pruned(input_ids=ids).logits, tiny_model(input_ids=ids).logits)


def test_pruning_equals_masking(tiny_model):
    keep = _neuron_mask(tiny_model)
    pruned = prune_model(tiny_model, keep)
    assert ffn_sizes(pruned) == [int(k.sum()) for k in keep]
    assert len(set(ffn_sizes(pruned))) > 1  # sizes differ per layer
    ids = _ids(1)
    with torch.no_grad():
        with mask_neurons(tiny_model, torch.as_tensor(keep)):
            ref = tiny_model(input_ids=ids).logits
        out = pruned(input_ids=ids).logits
    assert (out - ref).abs().max() <= 1e-4
    assert sum(p.numel() for p in pruned.parameters()) < sum(
        p.numel() for p in tiny_model.parameters())


def test_original_untouched(tiny_model):
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    ids = _ids(2)
    with torch.no_grad():
        ref = tiny_model(input_ids=ids).logits
    pruned = prune_model(tiny_model, _neuron_mask(tiny_model, 0.3))
    with torch.no_grad():  # mutate the copy: the original must not see it
        for p in pruned.parameters():
            p.add_(1.0)
    after = tiny_model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert ffn_sizes(tiny_model) == [64, 64, 64]
    with torch.no_grad():
        assert torch.equal(tiny_model(input_ids=ids).logits, ref)


def test_save_load_roundtrip(tiny_model, tmp_path):
    keep = _neuron_mask(tiny_model, 0.5, seed=3)
    pruned = prune_model(tiny_model, keep)
    folder = save_pruned(pruned, tmp_path / "p", meta={"lang": "fr"})
    assert not list(tmp_path.glob(".p*"))  # no temporary left behind
    loaded = load_pruned(folder)
    assert ffn_sizes(loaded) == ffn_sizes(pruned)
    assert np.array_equal(loaded.babel_keep_neurons, keep)
    ids = _ids(4)
    with torch.no_grad():
        assert torch.equal(loaded(input_ids=ids).logits, pruned(input_ids=ids).logits)
    save_pruned(pruned, folder)  # overwriting is atomic too
    assert load_pruned(folder) is not None


def test_save_refuses_wrong_mask(tiny_llama, tmp_path):
    pruned = prune_model(tiny_llama, _neuron_mask(tiny_llama, 0.5))
    with pytest.raises(ValueError, match="FFN sizes"):
        save_pruned(pruned, tmp_path / "p", keep_neurons=np.ones((3, 64), bool))


def test_wrong_mask_shape(tiny_llama):
    with pytest.raises(ValueError, match="layers"):
        prune_model(tiny_llama, np.ones((2, 64), bool))
    with pytest.raises(ValueError, match="neurons"):
        prune_model(tiny_llama, np.ones((3, 63), bool))


def test_flops(tiny_llama):
    dense = flops_per_token(tiny_llama)
    # llama tiny: q 32->32, k/v 32->16, o 32->32; FFN 3 x 32x64; head 32x97
    assert dense.attention == 3 * 2 * (32 * 32 + 2 * 32 * 16 + 32 * 32)
    assert dense.ffn == 3 * 2 * 3 * 32 * 64
    assert dense.head == 2 * 32 * 97
    keep = _neuron_mask(tiny_llama, 0.5)
    pruned = prune_model(tiny_llama, keep)
    by_mask = flops_per_token(tiny_llama, keep_neurons=keep)
    assert flops_per_token(pruned) == by_mask
    assert by_mask.ffn == 2 * 3 * 32 * int(keep.sum())
    sp = theoretical_speedup(dense, by_mask)
    assert sp["ffn"] > sp["body"] > sp["end_to_end"] > 1
    ctx = flops_per_token(tiny_llama, seq_len=9)
    assert ctx.attention - dense.attention == 3 * 4 * 32 * 5


def test_saved_folder_is_a_standard_hugging_face_folder(tiny_model, tmp_path):
    """Plain ``from_pretrained`` loads the folder (zero-padded to the largest kept layer) and
    computes the pruned model's logits; the padding is real zeros, and the sizes say so."""
    from transformers import AutoModelForCausalLM

    keep = _neuron_mask(tiny_model, 0.5, seed=4)
    pruned = prune_model(tiny_model, keep)
    sizes = ffn_sizes(pruned)
    assert len(set(sizes)) > 1  # layers differ: padding is exercised
    folder = save_pruned(pruned, tmp_path / "std")
    standard = AutoModelForCausalLM.from_pretrained(str(folder)).eval()
    assert ffn_sizes(standard) == [max(sizes)] * len(sizes)
    for v, n in zip(ffn_layers(standard), sizes, strict=True):
        down = v.down.weight if isinstance(v.down, torch.nn.Linear) else v.down.weight.T
        assert torch.count_nonzero(down[:, n:]) == 0
        assert torch.count_nonzero(down[:, :n]) > 0
    ids = _ids(5)
    with torch.no_grad():
        ref = pruned(input_ids=ids).logits
        torch.testing.assert_close(standard(input_ids=ids).logits, ref, rtol=0, atol=1e-5)
    assert ffn_sizes(pruned) == sizes  # saving restored the model's own modules
    assert not list(tmp_path.glob(".std*"))


def test_a_damaged_pruned_folder_is_one_line_naming_the_file(tiny_llama, tmp_path):
    folder = save_pruned(prune_model(tiny_llama, _neuron_mask(tiny_llama, 0.5)), tmp_path / "p")
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])  # truncated
    with pytest.raises(ValueError, match=r"model\.safetensors is missing or does not match"):
        load_pruned(folder)
