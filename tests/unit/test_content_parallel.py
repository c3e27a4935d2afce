"""Content-parallel profiles: the same items in every language, recorded and enforced."""

from __future__ import annotations

import numpy as np
import pytest

from babel.construct.partition import build_partition
from babel.core.config import PartitionConfig, ProfileConfig
from babel.data.chunking import chunk_texts
from babel.data.corpus import load_items
from babel.profile.cache import MixedItemsError, frequency_tensor, items_sha256, profile_languages
from babel.prune.evaluation import evaluation_chunks


def test_chunks_count_the_items_a_budget_reaches(byte_tokenizer):
    texts = ["aaaa", "bbbb", "cccc", "dddd"]  # 4 tokens each, 1-token separator
    assert chunk_texts(texts, byte_tokenizer, seq_len=8).n_items == 4
    # items start at offsets 0, 5, 10, 15: a budget of 11 tokens reaches the third item
    assert chunk_texts(texts, byte_tokenizer, seq_len=8, max_tokens=11).n_items == 3
    assert chunk_texts(texts, byte_tokenizer, seq_len=8, max_tokens=10).n_items == 2


def test_item_budget_has_its_own_cache_key():
    assert ProfileConfig().key.endswith("_Tall_bos0")
    assert ProfileConfig(max_items=12).key.endswith("_Tall_bos0_I12")
    assert ProfileConfig(max_tokens=3000).content_parallel is False
    with pytest.raises(ValueError, match="max_items"):
        ProfileConfig(max_items=0)


def test_same_items_everywhere_unless_a_token_budget(tiny_llama, byte_tokenizer):
    part = build_partition(tiny_llama, PartitionConfig(n_experts=8, method="random"))
    langs = ["en", "zh-Hans"]  # a CJK character is 3 byte-tokens: fertility differs ~2x
    parallel = profile_languages(tiny_llama, byte_tokenizer, part, langs,
                                 ProfileConfig(max_items=6, seq_len=64), progress=False)
    ids = [it.id for it in load_items("en", split="profiling")[:6]]
    assert {p.items_sha256 for p in parallel.values()} == {items_sha256(ids)}
    assert frequency_tensor(parallel, same_items=True)[1].shape == (2, 3, 8)
    budget = profile_languages(tiny_llama, byte_tokenizer, part, langs,
                               ProfileConfig(max_tokens=600, seq_len=64), progress=False)
    assert budget["en"].tokens == budget["zh-Hans"].tokens  # equal tokens ...
    assert budget["en"].items_sha256 != budget["zh-Hans"].items_sha256  # ... other content
    with pytest.raises(MixedItemsError, match="different corpus items"):
        frequency_tensor(budget, same_items=True)
    # knowingly mixed (the token-budget ablation) still works
    assert np.isfinite(frequency_tensor(budget)[1]).all()
    # a reload from the cache keeps the items hash
    again = profile_languages(tiny_llama, byte_tokenizer, part, langs,
                              ProfileConfig(max_items=6, seq_len=64), progress=False)
    assert again["zh-Hans"].items_sha256 == parallel["zh-Hans"].items_sha256


def test_every_position_knows_its_item(byte_tokenizer):
    texts = ["ab", "cde", "f"]  # stream: a b | c d e | f  (| = 1-token separator)
    ch = chunk_texts(texts, byte_tokenizer, seq_len=4)  # BOS + 3 per chunk
    assert ch.item_index.tolist() == [[-1, 0, 0, 0], [-1, 1, 1, 1], [-1, 1, 2, -1]]
    assert ch.n_items == 3


def test_evaluation_items_are_the_same_ids_in_every_language(byte_tokenizer):
    held = [it.id for it in load_items("en", split="evaluation")]
    for lang in ("en", "zh-Hans"):
        ch = evaluation_chunks(byte_tokenizer, lang, seq_len=64, max_items=5)
        assert ch.n_items == 5  # the first 5 held-out items, whole, in both languages
        texts = [it.text for it in load_items(lang, split="evaluation")[:5]]
        assert ch.n_content_tokens == sum(len(t.encode()) for t in texts) + 4  # + separators
    assert [it.id for it in load_items("zh-Hans", split="evaluation")][:5] == held[:5]
