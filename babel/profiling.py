"""Per-language expert activation frequencies: streamed through the body, counted, cached.

For each batch of token chunks, hooks on every FFN compute the expert scores (and per-neuron
statistics) on the fly; after the batch, the selection rule picks the highly activated
experts of each token and only **counts** are kept:

- ``chunk_counts`` ``[C, L, E]``: per chunk, how many of its tokens selected each expert
  (chunks allow bootstrap intervals later; their sum is the language's counts);
- ``chunk_tokens`` ``[C]``: counted tokens per chunk (padding never counts; BOS optional);
- ``neuron_active`` ``[L, N]``: tokens on which ``act(gate·x) > 0`` (LAPE's "active";
  ``h > 0`` for plain FFNs) — for GELU/SiLU/ReLU gates this is ``gate·x > 0``;
- ``neuron_abs`` ``[L, N]``: the sum of ``|h|``.

Frequency = counts / tokens. Counts are additive over disjoint token sets. Memory is bounded
by one batch. Only the transformer body runs (no output head).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from babel import paths
from babel.artifacts import atomic_path, config_dict, read_json, sha256_file, write_json, write_npz
from babel.experts import Partition, SelectionRule, contiguous_experts, select
from babel.ffn import body, ffn_layers, trace_ffn


@dataclasses.dataclass(frozen=True)
class ProfileConfig:
    """What text is profiled and how.

    Attributes:
        rule: The selection rule ("highly activated").
        source: Corpus source (``"builtin"``, ``"files"``, ``"flores_plus"``, ``"wikipedia"``).
        split: ``"profiling"`` (default), ``"evaluation"`` or ``"all"``.
        seq_len: Tokens per chunk (BOS included).
        batch_size: Chunks per forward pass.
        max_tokens: Token budget per language (``None``: the whole split).
        exclude_bos: Do not count the BOS position (it is the same token in every language).
    """

    rule: SelectionRule = dataclasses.field(default_factory=SelectionRule)
    source: str = "builtin"
    split: str = "profiling"
    seq_len: int = 128
    batch_size: int = 8
    max_tokens: int | None = None
    exclude_bos: bool = True

    def __post_init__(self) -> None:
        if self.split not in ("profiling", "evaluation", "all"):
            raise ValueError(f"split must be 'profiling', 'evaluation' or 'all', got "
                             f"{self.split!r}")
        if self.seq_len < 2 or self.batch_size < 1:
            raise ValueError("seq_len must be >= 2 and batch_size >= 1")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ValueError(f"max_tokens must be positive or None, got {self.max_tokens!r}")

    @property
    def key(self) -> str:
        budget = "all" if self.max_tokens is None else str(self.max_tokens)
        return (f"{self.rule.key}_{self.source}-{self.split}_L{self.seq_len}_T{budget}"
                f"_bos{int(not self.exclude_bos)}")


@dataclasses.dataclass
class Profile:
    """Activation counts of one language (sufficient statistics, never raw activations)."""

    lang: str
    chunk_counts: np.ndarray  # [C, L, E] int32
    chunk_tokens: np.ndarray  # [C] int64
    neuron_active: np.ndarray  # [L, N] int64
    neuron_abs: np.ndarray  # [L, N] float64

    @property
    def counts(self) -> np.ndarray:
        """``[L, E]`` selection counts."""
        return self.chunk_counts.sum(0, dtype=np.int64)

    @property
    def tokens(self) -> int:
        return int(self.chunk_tokens.sum())

    @property
    def frequency(self) -> np.ndarray:
        """``[L, E]`` share of tokens on which each expert was selected."""
        return self.counts / max(self.tokens, 1)

    @property
    def neuron_frequency(self) -> np.ndarray:
        """``[L, N]`` share of tokens on which each neuron is active (LAPE's probability)."""
        return self.neuron_active / max(self.tokens, 1)

    def __add__(self, other: Profile) -> Profile:
        return Profile(self.lang,
                       np.concatenate([self.chunk_counts, other.chunk_counts]),
                       np.concatenate([self.chunk_tokens, other.chunk_tokens]),
                       self.neuron_active + other.neuron_active,
                       self.neuron_abs + other.neuron_abs)

    def save(self, path: Path, meta: dict) -> None:
        """Write counts (``.npz``) and the settings that made them (``.json``) atomically."""
        write_npz(path, chunk_counts=self.chunk_counts, chunk_tokens=self.chunk_tokens,
                  neuron_active=self.neuron_active, neuron_abs=self.neuron_abs)
        write_json(path.with_suffix(".json"), meta)

    @classmethod
    def load(cls, path: Path, lang: str) -> Profile:
        with np.load(path) as z:
            return cls(lang, z["chunk_counts"], z["chunk_tokens"], z["neuron_active"],
                       z["neuron_abs"])


def valid_mask(input_ids: Tensor, attention_mask: Tensor, *, bos_id: int | None,
               exclude_bos: bool) -> Tensor:
    """``[B, T]`` bool: tokens that count (not padding; not BOS when excluded)."""
    valid = attention_mask.bool()
    if exclude_bos and bos_id is not None:
        valid = valid & (input_ids != bos_id)
    return valid


class _Tally:
    """Hooks + accumulators for one profiling run (attached by :func:`profile_chunks`).

    Runs on a model whose experts are contiguous blocks (:func:`contiguous_experts`), so the
    score of every expert is one pooled sum over a reshape. Selection only needs scores up to
    a positive factor per layer (z-scores and top-k are scale invariant), so the pooled *mean*
    ``Σ|h|/S`` is used. The neuron statistics are mapped back to the original neuron order.
    """

    def __init__(self, model: nn.Module, partition: Partition, rule: SelectionRule):
        self.views = ffn_layers(model)
        self.partition = partition
        self.rule = rule
        n_layers, n = partition.n_layers, partition.n_neurons
        if len(self.views) != n_layers or self.views[0].n_neurons != n:
            raise ValueError(f"partition has {n_layers} layers x {n} neurons but the model has "
                             f"{len(self.views)} x {self.views[0].n_neurons}: build the "
                             f"partition for this model")
        device = next(model.parameters()).device
        self.active = torch.zeros(n_layers, n, dtype=torch.float64, device=device)
        self.abs = torch.zeros(n_layers, n, dtype=torch.float64, device=device)
        self.scores: list[Tensor | None] = [None] * n_layers
        self.validf: Tensor | None = None  # [B*T] float
        self.gate_handles: list = []

    def on_h(self, i: int, h: Tensor) -> None:
        flat = h.detach().reshape(-1, h.shape[-1])
        a = flat.abs()
        self.scores[i] = F.avg_pool1d(a.unsqueeze(1), self.partition.expert_size).squeeze(1)
        self.abs[i] += self.validf.to(a.dtype) @ a
        if self.views[i].kind == "plain":
            self.active[i] += self.validf.to(flat.dtype) @ _positive(flat)

    def attach_gates(self) -> None:
        for v in self.views:
            if v.kind != "gated":
                continue

            def hook(_m, _a, out: Tensor, i: int = v.index) -> None:
                flat = out.detach().reshape(-1, out.shape[-1])
                self.active[i] += self.validf.to(flat.dtype) @ _positive(flat)

            self.gate_handles.append(v.gate.register_forward_hook(hook))

    def detach_gates(self) -> None:
        for h in self.gate_handles:
            h.remove()
        self.gate_handles = []

    def batch_counts(self, valid: Tensor) -> Tensor:
        """``[B, L, E]`` per-chunk selection counts of the last batch."""
        b, t = valid.shape
        s = torch.stack(self.scores, dim=1).float()  # [B*T, L, E]
        sel = select(s, self.rule).reshape(b, t, *s.shape[1:])
        sel &= valid[:, :, None, None]
        return sel.sum(1, dtype=torch.int32).cpu()

    def neuron_stats(self, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(active counts, |h| sums) in the original neuron order."""
        active = np.zeros(self.active.shape, np.int64)
        abs_sum = np.zeros(self.abs.shape, np.float64)
        rows = np.arange(order.shape[0])[:, None]
        active[rows, order] = self.active.round().cpu().numpy().astype(np.int64)
        abs_sum[rows, order] = self.abs.cpu().numpy()
        return active, abs_sum


def _positive(x: Tensor) -> Tensor:
    """0/1 indicator of ``x > 0`` (sign, clamped: cheaper than a comparison and a cast)."""
    return torch.sign(x).clamp_(min=0)


@torch.no_grad()
def profile_chunks(model: nn.Module, partition: Partition, rule: SelectionRule,
                   input_ids: Tensor, attention_mask: Tensor, *, lang: str = "",
                   batch_size: int = 8, bos_id: int | None = None, exclude_bos: bool = True,
                   progress: bool = True) -> Profile:
    """Profile token chunks ``[C, T]`` (padding marked 0 in ``attention_mask``).

    The model's neurons are reordered in place into contiguous experts for the duration of
    the call (restored exactly on exit): see :func:`babel.experts.contiguous_experts`.
    """
    from tqdm.auto import tqdm

    run = body(model)
    device = next(model.parameters()).device
    chunk_counts, chunk_tokens = [], []
    bar = tqdm(total=int(attention_mask.sum()), unit="tok", desc=f"profile {lang}",
               disable=not progress, leave=False)
    with contiguous_experts(model, partition) as cpart:
        tally = _Tally(model, cpart, rule)
        tally.attach_gates()
        try:
            with trace_ffn(model, tally.on_h):
                for s in range(0, input_ids.shape[0], batch_size):
                    ids = input_ids[s:s + batch_size].to(device)
                    am = attention_mask[s:s + batch_size].to(device)
                    valid = valid_mask(ids, am, bos_id=bos_id, exclude_bos=exclude_bos)
                    tally.validf = valid.reshape(-1).float()
                    run(input_ids=ids, attention_mask=am)
                    chunk_counts.append(tally.batch_counts(valid))
                    chunk_tokens.append(valid.sum(1).cpu())
                    bar.update(int(am.sum()))
        finally:
            tally.detach_gates()
            bar.close()
    n_layers, n_exp = partition.n_layers, partition.n_experts
    cc = (torch.cat(chunk_counts).numpy() if chunk_counts
          else np.zeros((0, n_layers, n_exp), np.int32))
    ct = torch.cat(chunk_tokens).numpy().astype(np.int64) if chunk_tokens else np.zeros(0, np.int64)
    active, abs_sum = tally.neuron_stats(partition.order)
    return Profile(lang, cc, ct, active, abs_sum)


def _corpus_digest(lang: str, source: str) -> str:
    from babel.corpus import SPLIT_RULE

    if source == "builtin":
        return f"{sha256_file(paths.corpus_file(lang))[:16]}-{SPLIT_RULE}"
    return f"{source}-{SPLIT_RULE}"


def language_chunks(tokenizer, lang: str, cfg: ProfileConfig):
    """The token chunks of one language under ``cfg`` (from :mod:`babel.corpus`)."""
    from babel.corpus import chunk_texts, load_items

    items = load_items(lang, source=cfg.source, split=cfg.split)
    return chunk_texts([it.text for it in items], tokenizer, seq_len=cfg.seq_len,
                       max_tokens=cfg.max_tokens)


def profile_language(model: nn.Module, tokenizer, partition: Partition, lang: str,
                     cfg: ProfileConfig, *, model_name: str | None = None,
                     refresh: bool = False, progress: bool = True) -> Profile:
    """The cached profile of one language; computed (and saved) when missing or stale."""
    from babel.models import model_name as _name

    name = model_name or _name(model)
    path = profile_file_for(name, partition, cfg, lang)
    meta = {"model": name, "lang": lang, "config": config_dict(cfg),
            "partition": config_dict(partition.config),
            "partition_weights_sha256": partition.weights_sha256,
            "corpus": _corpus_digest(lang, cfg.source)}
    if path.exists() and not refresh:
        saved = read_json(path.with_suffix(".json"))
        if all(saved.get(k) == v for k, v in meta.items()):
            return Profile.load(path, lang)
    chunks = language_chunks(tokenizer, lang, cfg)
    t0 = time.perf_counter()
    prof = profile_chunks(model, partition, cfg.rule, chunks.input_ids, chunks.attention_mask,
                          lang=lang, batch_size=cfg.batch_size, bos_id=tokenizer.bos_token_id,
                          exclude_bos=cfg.exclude_bos, progress=progress)
    secs = time.perf_counter() - t0
    meta |= {"tokens": prof.tokens, "seconds": round(secs, 2),
             "tokens_per_second": round(int(chunks.attention_mask.sum()) / max(secs, 1e-9), 1)}
    prof.save(path, meta)
    return prof


def profile_file_for(model_name: str, partition: Partition, cfg: ProfileConfig,
                     lang: str) -> Path:
    """Where the profile of ``lang`` under (model, partition, cfg) is cached."""
    return paths.profile_file(model_name, f"{partition.config.key}_{cfg.key}", lang)


def profile_languages(model: nn.Module, tokenizer, partition: Partition,
                      langs: Iterable[str], cfg: ProfileConfig, **kw) -> dict[str, Profile]:
    """Profiles of several languages; only the missing ones are computed."""
    return {lang: profile_language(model, tokenizer, partition, lang, cfg, **kw)
            for lang in langs}


def frequency_tensor(profiles: dict[str, Profile]) -> tuple[list[str], np.ndarray]:
    """Languages and their stacked frequency matrices ``[n_lang, L, E]``."""
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


# ---------------------------------------------------------------------------- analysis

@dataclasses.dataclass(frozen=True)
class ExpertClasses:
    """Boolean ``[L, E]`` classes of experts across languages, with the thresholds used.

    Definitions (``f[a, l, e]`` = frequency of expert (l, e) in language a; ``r`` = the
    expected frequency if selection were uniform, i.e. the rule's share):

    - co-activated: ``f >= high`` in every language;
    - rare: ``f < low`` in every language;
    - specific to language a: ``f[a] >= high`` and ``(f[a] - mean_b f[b]) / std_b f[b] >= z``
      over the other languages b (high in a, unusually so against the rest).
    """

    co_activated: np.ndarray
    rare: np.ndarray
    specific: np.ndarray  # [n_lang, L, E]
    high: float
    low: float
    z: float

    @property
    def specific_any(self) -> np.ndarray:
        return self.specific.any(0)


def classify_experts(freq: np.ndarray, *, high: float, low: float,
                     z: float = 3.0) -> ExpertClasses:
    """Co-activated, language-specific and rare experts from ``[n_lang, L, E]`` frequencies."""
    co = (freq >= high).all(0)
    rare = (freq < low).all(0)
    n = freq.shape[0]
    total = freq.sum(0, keepdims=True)
    sq = (freq ** 2).sum(0, keepdims=True)
    mean_o = (total - freq) / (n - 1)
    var_o = np.maximum((sq - freq ** 2) / (n - 1) - mean_o ** 2, 0.0)
    zs = (freq - mean_o) / np.sqrt(var_o + 1e-12)
    spec = (freq >= high) & (zs >= z)
    return ExpertClasses(co, rare, spec, high, low, z)


def class_counts(classes: ExpertClasses, langs: Sequence[str]) -> pd.DataFrame:
    """Per layer: numbers of co-activated, rare and language-specific experts."""
    df = pd.DataFrame({
        "layer": np.arange(classes.co_activated.shape[0]),
        "co_activated": classes.co_activated.sum(1),
        "rare": classes.rare.sum(1),
        "specific_any": classes.specific_any.sum(1),
    })
    for i, lang in enumerate(langs):
        df[f"specific_{lang}"] = classes.specific[i].sum(1)
    return df


def load_meta(path: Path) -> dict:
    """The settings saved beside a profile."""
    return json.loads(path.with_suffix(".json").read_text())
