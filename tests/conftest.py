"""Shared fixtures: tiny random models built from configs (no download), and the real model."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: see Makefile

import pytest
import torch

torch.set_num_threads(min(2, torch.get_num_threads()))


def _tiny(kind: str, seed: int = 0):
    from transformers import (
        AutoModelForCausalLM,
        Gemma3TextConfig,
        GPT2Config,
        LlamaConfig,
    )

    torch.manual_seed(seed)
    if kind == "llama":
        cfg = LlamaConfig(vocab_size=97, hidden_size=32, intermediate_size=64,
                          num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
                          max_position_embeddings=128, bos_token_id=1, eos_token_id=2,
                          pad_token_id=0)
    elif kind == "gemma3":
        cfg = Gemma3TextConfig(vocab_size=97, hidden_size=32, intermediate_size=64,
                               num_hidden_layers=3, num_attention_heads=2,
                               num_key_value_heads=1, head_dim=16, sliding_window=8,
                               max_position_embeddings=128, bos_token_id=2, eos_token_id=1,
                               pad_token_id=0)
    elif kind == "gpt2":
        cfg = GPT2Config(vocab_size=97, n_embd=32, n_inner=64, n_layer=3, n_head=4,
                         n_positions=128, bos_token_id=1, eos_token_id=1)
    else:
        raise ValueError(kind)
    model = AutoModelForCausalLM.from_config(cfg)
    model.eval()
    model.babel_name = f"tiny-{kind}"
    return model


def byte_tokenizer_fast():
    """A Hugging Face tokenizer of bytes (256 ids + BOS/EOS/PAD), saved with a model folder."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2}
    vocab |= {ch: i + 3 for i, ch in enumerate(sorted(alphabet))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny random Llama and its byte tokenizer, written with ``save_pretrained`` (a user's
    own model folder, as ``-p model DIR`` / ``--model DIR`` take it)."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    folder = tmp_path_factory.mktemp("tiny") / "tiny-llama"
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=259, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                      bos_token_id=1, eos_token_id=2, pad_token_id=0)
    AutoModelForCausalLM.from_config(cfg).save_pretrained(folder)
    byte_tokenizer_fast().save_pretrained(folder)
    return folder


@pytest.fixture(params=["llama", "gemma3", "gpt2"])
def tiny_model(request):
    """A tiny random causal LM of each FFN family (gated Llama, gated Gemma 3, plain GPT-2)."""
    return _tiny(request.param)


@pytest.fixture
def tiny_llama():
    return _tiny("llama")


@pytest.fixture
def tiny_gemma():
    return _tiny("gemma3")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Computed artifacts, figures and tables go to a temporary folder; model caches stay shared."""
    monkeypatch.setenv("BABEL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("BABEL_FIGURES_DIR", str(tmp_path / "figures"))
    monkeypatch.setenv("BABEL_RESULTS_DIR", str(tmp_path / "results"))


@pytest.fixture(autouse=True)
def _expensive_skips_per_mutant(request):
    """In ``make mutation`` (mutmut names the mutant under test in ``MUTANT_UNDER_TEST``), tests
    marked ``expensive`` skip: each compiles for up to a minute or starts a fresh interpreter,
    and mutmut runs the mapped tests once per mutant. Skipping can only let a mutant survive, so
    the score is a lower bound; these tests run as usual everywhere else."""
    if (request.node.get_closest_marker("expensive")
            and "__mutmut_" in os.environ.get("MUTANT_UNDER_TEST", "")):
        pytest.skip("expensive test, skipped per mutant in make mutation")


@pytest.fixture(scope="session")
def gemma():
    """The real embedded gemma-3-270m (fp32), loaded once per session."""
    if os.environ.get("BABEL_SKIP_REAL"):
        pytest.skip("BABEL_SKIP_REAL is set")
    from babel.models.loading import load_model

    return load_model("gemma-3-270m")


class ByteTokenizer:
    """Bytes mod 90 + 3 as token ids (enough to feed real corpus text to a tiny model)."""

    bos_token_id = 1
    pad_token_id = 0

    def encode(self, text, add_special_tokens=False):
        return [3 + b % 90 for b in text.encode("utf-8")]

    def __call__(self, texts, add_special_tokens=False):
        return {"input_ids": [self.encode(t) for t in texts]}


@pytest.fixture
def byte_tokenizer():
    """A tokenizer of bytes: real corpus text for tiny models (3 bytes of CJK = 3 tokens)."""
    return ByteTokenizer()


_TIERS = {"integration": "integration", "notebooks": "notebook"}


def pytest_collection_modifyitems(config, items):
    """Tier markers follow the folder: tests/integration → integration, tests/notebooks → notebook."""
    for item in items:
        tier = _TIERS.get(item.path.parent.name)
        if tier is not None:
            item.add_marker(getattr(pytest.mark, tier))
