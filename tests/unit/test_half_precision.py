"""Half-precision models: weights stay bf16, scores and statistics are fp32, and the selections
agree with the fp32 model's above a measured threshold."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from babel.construct.partition import build_partition
from babel.construct.routing import permuted_copy
from babel.core.config import PartitionConfig, SelectionRule
from babel.models.ffn import ffn_layers
from babel.profile.precision import precision_agreement, selection_agreement
from babel.profile.profiler import profile_chunks

RULE = SelectionRule("cross_layer", share=0.2)


def _chunks(c: int, t: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 90, (c, t), generator=g)
    ids[:, 0] = 1
    return ids, torch.ones_like(ids)


def test_selection_agreement_known_answer():
    a = torch.zeros(4, 1, 4, dtype=torch.bool)
    a[:, 0, :2] = True  # every token selects experts 0, 1
    b = a.clone()
    b[3, 0] = torch.tensor([True, False, True, False])  # token 3 swaps expert 1 for 2
    got = selection_agreement(a, b)
    assert got.tokens == 4
    assert got.selection_overlap == 7 / 8  # 7 of the 8 selections are shared
    assert got.identical_tokens == 3 / 4
    assert got.max_frequency_diff == pytest.approx(1 / 4)  # expert 1: 4/4 vs 3/4
    assert selection_agreement(a, a).selection_overlap == 1.0
    with pytest.raises(ValueError, match="same tokens"):
        selection_agreement(a, b[:3])


@pytest.mark.parametrize("fixture", ["tiny_llama", "tiny_gemma"])
def test_bf16_model_keeps_half_weights_and_fp32_statistics(fixture, request):
    """|h| sums and active counts of a bf16 model equal fp64 sums of its own bf16 ``h``.

    Batches of 4 x 100 tokens: a count above 256 is not exact in bf16, so a statistic summed
    in half precision would fail the exact comparison (and the 1e-6 one, bf16 keeps 8 bits).
    The reference ``h`` comes from the model the profiler runs: the bf16 model with each
    expert's neurons made contiguous (:func:`permuted_copy`), mapped back to neuron order. In
    bf16 the output projection's summation order moves later layers' inputs by an ulp, and on
    CPUs with native bf16 kernels (avx512_bf16) that shows in the sums at 1e-4.
    """
    model = request.getfixturevalue(fixture)
    part = build_partition(model, PartitionConfig(n_experts=8, method="random", seed=1))
    half = copy.deepcopy(model).to(torch.bfloat16)
    ids, am = _chunks(4, 100)
    hs, gates = {}, {}
    ref = permuted_copy(half, part)
    views = ffn_layers(ref)
    handles = [v.down.register_forward_pre_hook(
        lambda m, a, i=v.index: hs.__setitem__(i, a[0].detach())) for v in views]
    handles += [v.gate.register_forward_hook(
        lambda m, a, o, i=v.index: gates.__setitem__(i, o.detach())) for v in views]
    try:
        with torch.no_grad():
            ref.model(input_ids=ids, attention_mask=am)
    finally:
        for h in handles:
            h.remove()
    back = [np.argsort(part.order[i], kind="stable") for i in range(part.n_layers)]
    hs = {i: h[..., back[i]] for i, h in hs.items()}
    gates = {i: g[..., back[i]] for i, g in gates.items()}
    prof = profile_chunks(half, part, RULE, ids, am, batch_size=4, bos_id=1, progress=False)
    valid = (ids != 1).reshape(-1)
    for i in range(part.n_layers):
        h = hs[i].reshape(-1, hs[i].shape[-1])[valid]
        np.testing.assert_allclose(prof.neuron_abs[i], h.double().abs().sum(0).numpy(),
                                   rtol=1e-6)
        g = gates[i].reshape(-1, gates[i].shape[-1])[valid]
        assert np.array_equal(prof.neuron_active[i], (g > 0).sum(0).numpy())
    assert prof.neuron_active.max() > 256
    assert all(p.dtype == torch.bfloat16 for p in half.parameters())


def test_bf16_selections_agree_with_fp32(tiny_model):
    """Threshold: overlap >= 0.97, frequency difference <= 0.02.

    bf16 keeps 8 significant bits, so a selection flips only where a z-score lies within about
    0.4% of the k-th largest. Measured on these tiny models (3 families x 3 seeds, 496 tokens,
    E=8, r=0.2): overlap 0.988-0.995, identical tokens 0.94-0.98, largest frequency difference
    0.004-0.006 (2-3 tokens). The thresholds leave a 2.5-3x margin over the worst of those.
    """
    part = build_partition(tiny_model, PartitionConfig(n_experts=8, method="random", seed=1))
    half = copy.deepcopy(tiny_model).to(torch.bfloat16)
    ids, am = _chunks(16, 32)
    got = precision_agreement(tiny_model, half, part, RULE, ids, am, bos_id=1)
    assert got.tokens == 16 * 31
    assert got.selection_overlap >= 0.97, got
    assert got.max_frequency_diff <= 0.02, got
    same = precision_agreement(tiny_model, tiny_model, part, RULE, ids, am, bos_id=1)
    assert same.selection_overlap == same.identical_tokens == 1.0
    assert same.max_frequency_diff == 0.0
