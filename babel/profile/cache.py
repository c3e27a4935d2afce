"""Cached per-language profiles: one ``.npz`` of counts per language beside the settings that made it.

The cache key is (model, partition, profiling config); the saved settings also hold the
partition's weights hash and the corpus digest, so a profile is reused only for the same
weights and the same text. :func:`profile_languages` computes only the missing languages.
Every cached profile is verified before use and rebuilt when it fails (:mod:`babel.core.cache`).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from torch import nn

from babel.construct.partition import Partition
from babel.construct.routing import hold_contiguous
from babel.core import paths
from babel.core.artifacts import atomic_path, config_dict, sha256_file
from babel.core.cache import CacheError, CacheStale, load_or_build, read_meta
from babel.core.config import ProfileConfig
from babel.data.checks import check_user_text
from babel.data.chunking import TokenChunks, chunk_texts
from babel.data.corpus import SPLIT_RULE, load_items, user_file
from babel.models.loading import model_name as _name
from babel.profile import distributed
from babel.profile.profiler import STATISTICS, Profile, profile_chunks


def _corpus_digest(lang: str, source: str, path: str | None = None) -> str:
    """What the profile's text is: the hash of the language's file (built-in or the user's),
    or the hub source's name; with the split rule. Edit one file: only that language is
    profiled again."""
    if source == "builtin":
        return f"{sha256_file(paths.corpus_file(lang))[:16]}-{SPLIT_RULE}"
    if source == "files" and path is not None:
        return f"{sha256_file(user_file(lang, path))[:16]}-{SPLIT_RULE}"
    return f"{source}-{SPLIT_RULE}"


def items_sha256(ids: Sequence[str]) -> str:
    """Hash of an ordered list of item ids (which content a profile covers)."""
    return hashlib.sha256("\n".join(ids).encode("utf-8")).hexdigest()


def language_chunks(tokenizer, lang: str, cfg: ProfileConfig) -> tuple[TokenChunks, list[str]]:
    """The token chunks of one language under ``cfg``, and the ids of the items they hold.

    ``cfg.max_items`` keeps the first N items of the split (the same ids in every language);
    ``cfg.max_tokens`` cuts the token stream (the ids then differ between languages).
    A user's file (``source="files"``) is checked first (:func:`babel.data.checks.check_user_text`,
    tokens counted with ``tokenizer``): an unusable file stops here, before any forward pass
    and before anything is cached.
    """
    if cfg.source == "files":
        check_user_text(lang, cfg.path, tokenizer=tokenizer)
    items = load_items(lang, source=cfg.source, split=cfg.split, max_items=cfg.max_items,
                       path=cfg.path)
    chunks = chunk_texts([it.text for it in items], tokenizer, seq_len=cfg.seq_len,
                         max_tokens=cfg.max_tokens)
    return chunks, [it.id for it in items[:chunks.n_items]]


def profile_language(model: nn.Module, tokenizer, partition: Partition, lang: str,
                     cfg: ProfileConfig, *, model_name: str | None = None,
                     refresh: bool = False, progress: bool = True) -> Profile:
    """The cached profile of one language; computed (and saved) when missing or stale.

    A cached profile is checked before use (:meth:`Profile.load`: sha256, shapes, language,
    the partition's layers and experts); a failing one is moved aside with a warning and
    computed again. Another process computing the same profile is waited for, then read.
    Under ``torchrun`` the ranks share the work and rank 0 alone reads and writes the cache
    (:mod:`babel.profile.distributed`).
    """

    name = model_name or _name(model)
    path = profile_file_for(name, partition, cfg, lang)
    meta = {"model": name, "lang": lang, "config": cfg.as_dict(),
            "partition": config_dict(partition.config),
            "partition_weights_sha256": partition.weights_sha256,
            "corpus": _corpus_digest(lang, cfg.source, cfg.path), "statistics": STATISTICS}

    def load() -> Profile:
        return _load_cached(path, lang, meta, partition)

    def build() -> Profile:
        return _compute(model, tokenizer, partition, lang, cfg, meta, path, progress=progress)

    if distributed.active():
        return distributed.load_or_build(path, path.with_suffix(".json"), load, build,
                                         rebuild=refresh, device=next(model.parameters()).device)
    return load_or_build(path, path.with_suffix(".json"), load, build, rebuild=refresh)


def _load_cached(path: Path, lang: str, meta: dict, partition: Partition) -> Profile:
    """The cached profile at ``path`` if it is sound and made with ``meta``'s settings.

    A profile saved with other statistics (an older babel) is stale, not broken: it is
    computed again without a warning.
    """
    meta_path = path.with_suffix(".json")
    if meta_path.exists() and path.exists():
        try:  # unreadable settings are a broken cache: Profile.load below reports them
            saved_stats = read_meta(meta_path).get("statistics")
        except CacheError:
            saved_stats = meta["statistics"]
        if saved_stats != meta["statistics"]:
            raise CacheStale(f"{path} holds other statistics ({STATISTICS} needed)")
    prof = Profile.load(path, lang, n_layers=partition.n_layers, n_experts=partition.n_experts,
                        n_neurons=partition.n_neurons)
    saved = read_meta(path.with_suffix(".json"))
    if not all(saved.get(k) == v for k, v in meta.items()):
        raise CacheStale(f"{path} was made with other settings, weights or text")
    return prof


def _compute(model: nn.Module, tokenizer, partition: Partition, lang: str, cfg: ProfileConfig,
             meta: dict, path: Path, *, progress: bool) -> Profile:
    """Profile ``lang`` and save it at ``path`` with ``meta`` and the run's numbers."""
    chunks, ids = language_chunks(tokenizer, lang, cfg)
    run = distributed.sharded(profile_chunks) if distributed.active() else profile_chunks
    t0 = time.perf_counter()
    prof = run(model, partition, cfg.rule, chunks.input_ids, chunks.attention_mask,
               lang=lang, batch_size=cfg.batch_size, bos_id=tokenizer.bos_token_id,
               exclude_bos=cfg.exclude_bos, progress=progress, compiled=cfg.compiled)
    secs = time.perf_counter() - t0
    prof.items_sha256 = items_sha256(ids)
    if distributed.is_main():  # after every rank reported success (distributed.sharded)
        prof.save(path, meta | {
            "items": len(ids), "items_sha256": prof.items_sha256, "tokens": prof.tokens,
            "seconds": round(secs, 2), "processes": distributed.world_size(),
            "tokens_per_second": round(int(chunks.attention_mask.sum()) / max(secs, 1e-9), 1)})
    return prof


def profile_file_for(model_name: str, partition: Partition, cfg: ProfileConfig,
                     lang: str) -> Path:
    """Where the profile of ``lang`` under (model, partition, cfg) is cached."""
    return paths.profile_file(model_name, f"{partition.config.key}_{cfg.key}", lang)


def profile_languages(model: nn.Module, tokenizer, partition: Partition,
                      langs: Iterable[str], cfg: ProfileConfig, **kw) -> dict[str, Profile]:
    """Profiles of several languages; only the missing ones are computed.

    The model's neurons are reordered into contiguous experts once, at the first language
    computed, and restored after the last (:func:`babel.construct.routing.hold_contiguous`),
    not once per language.
    """
    with hold_contiguous(model):
        return {lang: profile_language(model, tokenizer, partition, lang, cfg, **kw)
                for lang in langs}


class MixedItemsError(ValueError):
    """Profiles of different languages cover different corpus items."""


def frequency_tensor(profiles: dict[str, Profile], *,
                     same_items: bool = False) -> tuple[list[str], np.ndarray]:
    """Languages and their stacked frequency matrices ``[n_lang, L, E]``.

    Args:
        profiles: Profiles by language.
        same_items: Refuse profiles that cover different items (a content-parallel comparison
            must compare the same content in every language).
    """
    if same_items:
        hashes = {p.items_sha256 for p in profiles.values()}
        if len(hashes) > 1 or "" in hashes:
            raise MixedItemsError(
                "the profiles cover different corpus items, so language differences would mix "
                "with content differences; profile with max_tokens=None (same items in every "
                "language), or compare them knowingly with same_items=False")
    langs = list(profiles)
    return langs, np.stack([profiles[lang].frequency for lang in langs])


def frequency_table(profiles: dict[str, Profile], *, model: str) -> pd.DataFrame:
    """Tidy table: model, language, layer, expert, frequency, count, tokens."""
    frames = []
    for lang, p in profiles.items():
        n_layers, n_exp = p.counts.shape
        layer, expert = np.meshgrid(np.arange(n_layers), np.arange(n_exp), indexing="ij")
        frames.append(pd.DataFrame({
            "model": model, "language": lang, "layer": layer.ravel(),
            "expert": expert.ravel(), "frequency": p.frequency.ravel(),
            "count": p.counts.ravel(), "tokens": p.tokens,
        }))
    return pd.concat(frames, ignore_index=True)


def write_frequency_table(profiles: dict[str, Profile], *, model: str, path: Path) -> Path:
    """Write :func:`frequency_table` as parquet (atomically)."""
    df = frequency_table(profiles, model=model)
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)
    return path


def load_meta(path: Path) -> dict:
    """The settings saved beside a profile (:class:`babel.core.cache.CacheError` if unreadable)."""
    return read_meta(path.with_suffix(".json"))
