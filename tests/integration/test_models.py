"""Model loading: errors that name the fix, cache integrity, and the real embedded models."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

from babel.core import paths
from babel.models.ffn import ffn_layers
from babel.models.loading import EMBEDDED, load_model


@pytest.mark.integration
def test_gemma_ffn_identity_and_french(gemma):
    model, tok = gemma
    views = ffn_layers(model)
    assert len(views) == 18 and all(v.n_neurons == 2048 and v.kind == "gated" for v in views)
    x = torch.randn(1, 4, 640)
    for v in views:
        block = model.model.layers[v.index].mlp
        with torch.no_grad():
            assert (block(x) - v.output(v.intermediate(x))).abs().max() <= 1e-5
    ids = tok("La capitale de la France est", return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=10, do_sample=False)
    text = tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
    import py3langid

    assert py3langid.classify(text)[0] == "fr", text


@pytest.mark.integration
def test_cache_is_verified_and_rebuilt(tmp_path, monkeypatch):
    """A tampered cache is detected, rebuilt with a warning naming the file, and verifies again.

    A real rebuild (GGUF verification + dequantization) of the smaller embedded model,
    SmolLM2-135M (~20 s; Gemma's takes ~70 s through the same code): only a real rebuild shows
    the cache repairs itself. Works on a copy of the cache in ``tmp_path``: the shared
    ``data/models/`` is never written.
    """
    from babel.models.loading import _cache_is_valid, embedded_model_path

    name = "smollm2-135m"
    load_model(name)  # the shared cache exists (built now if missing)
    shared = paths.model_cache_dir(name)
    shared_before = {p.name: p.stat().st_mtime_ns for p in shared.iterdir()}
    meta = json.loads((shared / "babel_meta.json").read_text())
    assert meta["source_package"] == EMBEDDED[name].package

    monkeypatch.setenv("BABEL_MODELS_DIR", str(tmp_path / "models"))
    cache = paths.model_cache_dir(name)
    assert cache == tmp_path / "models" / name
    shutil.copytree(shared, cache)
    assert _cache_is_valid(cache) == (True, "ok")
    (cache / "tokenizer_config.json").write_text("{}")
    assert _cache_is_valid(cache) == (
        False, "cached file tokenizer_config.json does not match its sha256")

    with pytest.warns(UserWarning, match=rf"rebuilding the {name} cache: cached file "
                      r"tokenizer_config\.json does not match its sha256"):
        rebuilt = embedded_model_path(name)
    assert rebuilt == cache
    assert _cache_is_valid(cache) == (True, "ok")
    assert json.loads((cache / "tokenizer_config.json").read_text()) != {}
    new_meta = json.loads((cache / "babel_meta.json").read_text())
    # the dequantization is deterministic: the rebuilt weights are the shared cache's
    assert new_meta["files"]["model.safetensors"] == meta["files"]["model.safetensors"]
    assert not list(cache.parent.glob(f".{name}.building*"))  # no temporary left behind
    # a missing file is detected too (no rebuild needed to see it)
    (cache / "config.json").unlink()
    assert _cache_is_valid(cache) == (False, "cached file config.json is missing")
    # the shared cache was never touched
    assert {p.name: p.stat().st_mtime_ns for p in shared.iterdir()} == shared_before


@pytest.mark.integration
def test_smollm2_loads_from_its_package():
    model, _tok = load_model("smollm2-135m")
    views = ffn_layers(model)
    assert len(views) == 30 and views[0].n_neurons == 1536
    assert "smollm2-135m" in EMBEDDED
