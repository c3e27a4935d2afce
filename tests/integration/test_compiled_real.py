"""The compiled profiling path on the real gemma-3-270m: dynamo captures babel's hooks whole."""
from __future__ import annotations

import numpy as np
import torch._dynamo as dynamo
from torch._dynamo.testing import CompileCounterWithBackend

from babel.construct.partition import build_partition
from babel.core.config import PartitionConfig, SelectionRule
from babel.data.chunking import chunk_texts
from babel.data.corpus import load_items
from babel.profile import profiler
from babel.profile.profiler import profile_chunks


def test_compiled_path_traces_real_gemma_in_one_graph(gemma, monkeypatch):
    """The body with babel's hooks is one graph (a graph break would make a second one), and
    with eager kernels (``aot_eager``: dynamo's graph, functionalized hooks, no code
    generation) its counts equal eager's exactly, and its neuron sums (traced as masked column
    sums, which inductor fuses into one pass) equal eager's to float32 rounding. Inductor's fused arithmetic is the unit
    test's subject (tiny model) and the benchmark's (real models)."""
    model, tok = gemma
    part = build_partition(model, PartitionConfig(n_experts=256, method="random"),
                           model_name="gemma-3-270m")
    rule = SelectionRule()
    texts = [it.text for it in load_items("de", split="profiling")[:4]]
    ch = chunk_texts(texts, tok, seq_len=32, max_tokens=64)
    ids, am = ch.input_ids[:2], ch.attention_mask[:2]
    counter = CompileCounterWithBackend("aot_eager")
    monkeypatch.setattr(profiler, "COMPILE_BACKEND", counter)
    kw = {"batch_size": 2, "bos_id": tok.bos_token_id, "progress": False}
    eager = profile_chunks(model, part, rule, ids, am, **kw)
    dynamo.reset()
    try:
        comp = profile_chunks(model, part, rule, ids, am, compiled=True, **kw)
    finally:
        dynamo.reset()
    assert counter.frame_count == 1, f"{counter.frame_count} graphs: a graph break"
    assert comp.tokens == eager.tokens > 0
    assert np.array_equal(comp.counts, eager.counts)
    assert np.array_equal(comp.neuron_active, eager.neuron_active)
    # traced, the neuron sums are masked column sums (eager: matrix-vector products): the same
    # sums in another order, equal to float32 rounding of the sum of |h| (or of h² for Σh²)
    scale = {"neuron_abs": eager.neuron_abs, "neuron_sum": eager.neuron_abs,
             "neuron_sq": eager.neuron_sq}
    for f, ref in scale.items():
        err = np.abs(getattr(comp, f) - getattr(eager, f))
        assert (err <= 1e-5 * ref + 1e-9).all(), (f, float((err / (ref + 1e-9)).max()))
    assert not np.array_equal(comp.neuron_sum, eager.neuron_sum)  # the traced branch ran
