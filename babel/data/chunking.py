"""Packing tokenized corpus items into fixed-length chunks with a token budget.

Items are tokenized without special tokens, joined by a separator (a newline by default) into one
stream, cut into chunks of ``seq_len - 1`` content tokens, and each chunk starts with the
tokenizer's BOS token. The last chunk is right-padded and masked. Everything after tokenization
is vectorised (numpy/torch): no Python loop runs per token.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch


@dataclasses.dataclass(frozen=True)
class TokenChunks:
    """Packed token chunks, ready for a forward pass.

    Attributes:
        input_ids: LongTensor ``[n_chunks, seq_len]``.
        attention_mask: LongTensor ``[n_chunks, seq_len]``; 1 for a real token, 0 for padding.
        n_tokens: Real tokens (mask sum), BOS positions included.
        n_content_tokens: Real tokens that came from the texts (BOS positions excluded).
        has_bos: Whether position 0 of every chunk is the BOS token.
        n_items: Items whose tokens entered the chunks (a token budget can cut the stream
            inside the last of them); items are packed in order, so they are the first
            ``n_items`` texts.
        item_index: LongTensor ``[n_chunks, seq_len]``: which text each position's token came
            from (a separator belongs to the text before it); -1 for BOS and padding. Lets
            a per-token statistic be summed per item (bootstrap over items).
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    n_tokens: int
    n_content_tokens: int
    has_bos: bool
    n_items: int = 0
    item_index: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.input_ids.ndim != 2 or self.input_ids.shape != self.attention_mask.shape:
            raise ValueError(
                f"input_ids {tuple(self.input_ids.shape)} and attention_mask "
                f"{tuple(self.attention_mask.shape)} must both be [n_chunks, seq_len]; "
                "build TokenChunks with chunk_texts"
            )

    @property
    def n_chunks(self) -> int:
        """Number of chunks (rows)."""
        return int(self.input_ids.shape[0])

    def __len__(self) -> int:
        return self.n_chunks


def _encode(texts: Sequence[str], tokenizer: Any) -> list[list[int]]:
    """Token ids of each text, without special tokens (one batched tokenizer call)."""
    if not texts:
        return []
    return list(tokenizer(list(texts), add_special_tokens=False)["input_ids"])


def separator_ids(tokenizer: Any, separator: str = "\n") -> list[int]:
    """Token ids placed between packed items (a space if the separator encodes to nothing)."""
    for candidate in (separator, " "):
        ids = tokenizer.encode(candidate, add_special_tokens=False)
        if ids:
            return list(ids)
    return []


def chunk_texts(
    texts: Iterable[str],
    tokenizer: Any,
    *,
    seq_len: int,
    add_bos: bool = True,
    max_tokens: int | None = None,
    separator: str = "\n",
) -> TokenChunks:
    """Pack texts into chunks of ``seq_len`` tokens, each starting with BOS.

    Args:
        texts: Item texts, in order.
        tokenizer: A Hugging Face tokenizer (``__call__``, ``encode``, ``bos_token_id``,
            ``pad_token_id``).
        seq_len: Tokens per chunk, BOS included.
        add_bos: Start each chunk with ``tokenizer.bos_token_id`` (skipped when it is ``None``).
        max_tokens: Token budget: at most this many content tokens (BOS excluded) are kept.
        separator: Text placed between items before packing.

    Returns:
        The chunks; the last one is right-padded with ``pad_token_id`` (or 0) and masked.
    """
    bos = tokenizer.bos_token_id if add_bos else None
    if seq_len < (2 if bos is not None else 1):
        raise ValueError(
            f"seq_len={seq_len} leaves no room for content; use seq_len >= 2 with a BOS token"
        )
    if max_tokens is not None and max_tokens < 1:
        raise ValueError(f"max_tokens={max_tokens} must be >= 1, or None for no budget")
    pieces: list[np.ndarray] = []
    sep = np.asarray(separator_ids(tokenizer, separator), dtype=np.int64)
    starts = []  # stream offset where each item's own tokens begin
    offset = 0
    for i, ids in enumerate(_encode(list(texts), tokenizer)):
        if i and sep.size:
            pieces.append(sep)
            offset += sep.size
        starts.append(offset)
        pieces.append(np.asarray(ids, dtype=np.int64))
        offset += len(ids)
    stream = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int64)
    if max_tokens is not None:
        stream = stream[:max_tokens]

    width = seq_len - 1 if bos is not None else seq_len
    n = int(stream.size)
    n_chunks = -(-n // width)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = np.full(n_chunks * width, pad, dtype=np.int64)
    ids[:n] = stream
    mask = np.zeros(n_chunks * width, dtype=np.int64)
    mask[:n] = 1
    item = np.full(n_chunks * width, -1, dtype=np.int64)
    item[:n] = np.searchsorted(np.asarray(starts, dtype=np.int64), np.arange(n), side="right") - 1
    ids, mask = ids.reshape(n_chunks, width), mask.reshape(n_chunks, width)
    item = item.reshape(n_chunks, width)
    if bos is not None:
        ids = np.concatenate([np.full((n_chunks, 1), bos, dtype=np.int64), ids], axis=1)
        mask = np.concatenate([np.ones((n_chunks, 1), dtype=np.int64), mask], axis=1)
        item = np.concatenate([np.full((n_chunks, 1), -1, dtype=np.int64), item], axis=1)
    return TokenChunks(
        input_ids=torch.from_numpy(ids),
        attention_mask=torch.from_numpy(mask),
        n_tokens=int(mask.sum()),
        n_content_tokens=n,
        has_bos=bos is not None,
        n_items=int(np.searchsorted(np.asarray(starts, dtype=np.int64), stream.size, side="left")),
        item_index=torch.from_numpy(item),
    )


def tokens_per_item(items: Sequence[Any], tokenizer: Any) -> pd.Series:
    """Tokens of each item without special tokens (tokenizer fertility), indexed by item id.

    Args:
        items: ``Item`` records (``id`` and ``text``) or plain strings (indexed by position).
        tokenizer: A Hugging Face tokenizer.
    """
    texts = [it if isinstance(it, str) else it.text for it in items]
    index = [i if isinstance(it, str) else it.id for i, it in enumerate(items)]
    counts = [len(ids) for ids in _encode(texts, tokenizer)]
    return pd.Series(counts, index=pd.Index(index, name="id"), name="tokens", dtype="int64")
