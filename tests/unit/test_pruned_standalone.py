"""A saved pruned folder stands alone: a fresh interpreter that cannot import babel loads it with
plain transformers, gets the in-memory pruned model's logits and greedy continuation, and runs
it in a ``pipeline("text-generation")``."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from babel.models.surgery import ffn_sizes, prune_model, save_pruned

PROMPT = [1, 40, 77, 90, 120, 33, 250, 7]
STANDALONE = textwrap.dedent("""
    import json, sys
    sys.modules["babel"] = None  # any import of babel now fails: the folder must not need it
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline
    folder, prompt = sys.argv[1], json.loads(sys.argv[2])
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    ids = torch.tensor([prompt])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].tolist()
        greedy = model.generate(ids, max_new_tokens=8, do_sample=False)[0].tolist()
    tok = AutoTokenizer.from_pretrained(folder)
    text = pipeline("text-generation", model=model, tokenizer=tok)(
        "water", max_new_tokens=4, do_sample=False)[0]["generated_text"]
    print(json.dumps({"logits": logits, "greedy": greedy, "text": text}))
""")


@pytest.mark.expensive
def test_pruned_folder_loads_without_babel(tiny_model_dir, tmp_path) -> None:
    dense = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)).eval()
    rng = np.random.default_rng(0)
    keep = rng.random((3, 64)) < np.array([[0.9], [0.5], [0.7]])  # layers keep different sizes
    pruned = prune_model(dense, keep)
    assert len(set(ffn_sizes(pruned))) == 3
    folder = save_pruned(pruned, tmp_path / "pruned")
    AutoTokenizer.from_pretrained(str(tiny_model_dir)).save_pretrained(str(folder))
    out = subprocess.run([sys.executable, "-c", STANDALONE, str(folder), json.dumps(PROMPT)],
                         capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    ids = torch.tensor([PROMPT])
    with torch.no_grad():
        ref = pruned(input_ids=ids).logits[0]
        greedy = pruned.generate(ids, max_new_tokens=8, do_sample=False)[0].tolist()
    assert torch.allclose(torch.tensor(got["logits"]), ref, rtol=0, atol=1e-5)
    assert got["greedy"] == greedy
    assert got["text"].startswith("water") and len(got["text"]) > len("water")
