"""Keep-masks, structural pruning (= masking), save/load and FLOP accounting."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from babel.models.ffn import ffn_layers
from babel.models.hooks import mask_neurons
from babel.models.surgery import ffn_sizes, prune_model
from babel.prune.flops import flops_per_token


def _neuron_mask(model, share=0.6, seed=0):
    rng = np.random.default_rng(seed)
    return np.stack([rng.random(v.n_neurons) < share for v in ffn_layers(model)])



@pytest.mark.integration
def test_real_gemma_pruning_equals_masking(gemma):
    model, tok = gemma
    keep = _neuron_mask(model, 0.7, seed=5)
    ids = tok("Le chat dort sur le canapé depuis ce matin.", return_tensors="pt").input_ids
    pruned = prune_model(model, keep)
    assert ffn_sizes(model) == [2048] * 18
    with torch.no_grad():
        with mask_neurons(model, torch.as_tensor(keep)):
            ref = model(input_ids=ids).logits
        out = pruned(input_ids=ids).logits
    assert (out - ref).abs().max() <= 1e-3 * max(1.0, float(ref.abs().max()))
    f_dense, f_pruned = flops_per_token(model), flops_per_token(pruned)
    assert 0.6 < f_dense.ffn / f_dense.body < 0.8  # the FFN is ~70% of gemma's body work
    assert 0.2 < f_dense.ffn / f_dense.total < 0.3  # ~26% end to end (262k-entry head)
    assert f_pruned.ffn / f_dense.ffn == pytest.approx(keep.mean(), abs=1e-9)
