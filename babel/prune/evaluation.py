"""Held-out perplexity with a memory-bounded output head, and measured throughput.

Perplexity (:func:`perplexity`): chunks of a fixed length, each starting with BOS
(:func:`babel.data.chunking.chunk_texts`) run through the transformer body in batches; the output
head is then applied to slices of the *counted* positions only, so at most
``positions_per_slice × vocab`` logits exist at once (Gemma 3's vocabulary has 262k entries).
Per position ``t`` the target is token ``t+1``; padding targets and BOS targets never count.
The head reproduces the model's own logits: ``lm_head`` followed by final logit
softcapping ``c·tanh(x/c)`` when the config sets ``final_logit_softcapping`` (Gemma 2; Gemma 3
sets it to ``None``). NLL per position is ``logsumexp(logits) - logits[target]``.

Throughput (:func:`throughput`): forward passes of a fixed batch through the body and end to
end (body + head on every position), for several models measured in the same process and
interleaved (one pass of each model per round), after warm-up rounds; the median time over
rounds gives tokens per second, and rounds go on (up to a maximum) until every speedup's
bootstrap interval over the paired rounds is narrow enough.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import math
import time
from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from babel.data.chunking import TokenChunks, chunk_texts
from babel.data.corpus import load_items
from babel.models.ffn import body
from babel.models.hooks import add_ffn_bias, mask_neurons
from babel.prune.intervals import ratio_interval


@dataclasses.dataclass(frozen=True)
class Perplexity:
    """Summed negative log-likelihood (nats) over counted target tokens.

    Attributes:
        nll: Sum of ``-log p(target)`` over counted targets.
        tokens: Counted targets.
        item_nll: ``[n_items]`` the same sum per corpus item (when the chunks know their
            items), for bootstrap intervals over items.
        item_tokens: ``[n_items]`` counted targets per item.
    """

    nll: float
    tokens: int
    item_nll: np.ndarray | None = dataclasses.field(default=None, repr=False, compare=False)
    item_tokens: np.ndarray | None = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def mean_nll(self) -> float:
        return self.nll / max(self.tokens, 1)

    @property
    def ppl(self) -> float:
        return math.exp(self.mean_nll)

    def __add__(self, other: Perplexity) -> Perplexity:
        return Perplexity(self.nll + other.nll, self.tokens + other.tokens)  # items differ

    def as_dict(self) -> dict:
        return {"nll": self.nll, "tokens": self.tokens, "ppl": self.ppl}


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def body_hidden(model: nn.Module, input_ids: Tensor, attention_mask: Tensor, *,
                batch_size: int = 8) -> Tensor:
    """Final hidden states ``[C, T, d]`` of the body (after its final norm), batched."""
    run = body(model)
    dev = _device(model)
    out = []
    for s in range(0, input_ids.shape[0], batch_size):
        res = run(input_ids=input_ids[s:s + batch_size].to(dev),
                  attention_mask=attention_mask[s:s + batch_size].to(dev))
        out.append(res.last_hidden_state if hasattr(res, "last_hidden_state") else res[0])
    return torch.cat(out)


def target_mask(input_ids: Tensor, attention_mask: Tensor, *,
                bos_id: int | None = None) -> Tensor:
    """``[C, T-1]`` bool: positions ``t`` whose target ``t+1`` counts (real, not BOS)."""
    valid = attention_mask[:, 1:].bool() & attention_mask[:, :-1].bool()
    if bos_id is not None:
        valid &= input_ids[:, 1:] != bos_id
    return valid


def _softcap(model: nn.Module) -> float | None:
    cfg = model.config
    cap = getattr(cfg, "final_logit_softcapping", None)
    if cap is None and hasattr(cfg, "get_text_config"):
        cap = getattr(cfg.get_text_config(), "final_logit_softcapping", None)
    return cap


def head_logits_fn(model: nn.Module) -> Callable[[Tensor], Tensor]:
    """``hidden [n, d] -> logits [n, V]`` exactly as the model's forward computes them."""
    head = model.get_output_embeddings()
    if head is None:
        raise ValueError(f"{type(model).__name__} has no output head: pass a causal LM")
    cap = _softcap(model)

    def fn(h: Tensor) -> Tensor:
        logits = head(h).float()
        if cap is not None:
            logits = torch.tanh(logits / cap) * cap
        return logits

    return fn


@torch.no_grad()
def head_nll(model: nn.Module, hidden: Tensor, input_ids: Tensor, attention_mask: Tensor, *,
             bos_id: int | None = None, positions_per_slice: int = 256,
             item_index: Tensor | None = None) -> Perplexity:
    """NLL of every counted target from body hidden states, the head applied in slices.

    With ``item_index`` (``TokenChunks.item_index``) the NLL is also summed per corpus item
    (a target counts for the item its token came from).
    """
    valid = target_mask(input_ids, attention_mask, bos_id=bos_id)
    h = hidden[:, :-1][valid.to(hidden.device)]
    tgt = input_ids[:, 1:][valid].to(hidden.device)
    logits_of = head_logits_fn(model)
    parts = []
    total = torch.zeros((), dtype=torch.float64)
    for s in range(0, h.shape[0], positions_per_slice):
        logits = logits_of(h[s:s + positions_per_slice])
        t = tgt[s:s + positions_per_slice]
        nll = torch.logsumexp(logits, -1) - logits.gather(-1, t[:, None]).squeeze(-1)
        parts.append(nll.double().cpu())
        total += parts[-1].sum()
    per_token = torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64)
    if item_index is None:
        return Perplexity(float(total), int(valid.sum()))
    items = item_index[:, 1:][valid].numpy()
    n_items = int(item_index.max()) + 1 if item_index.numel() else 0
    return Perplexity(float(total), int(valid.sum()),
                      np.bincount(items, weights=per_token.numpy(), minlength=n_items),
                      np.bincount(items, minlength=n_items).astype(np.int64))


def perplexity(model: nn.Module, chunks: TokenChunks, *, batch_size: int = 8,
               positions_per_slice: int = 256, bos_id: int | None = None) -> Perplexity:
    """Perplexity of ``model`` on token chunks (body batched, head in position slices).

    Args:
        model: A causal LM (dense, pruned, or inside :func:`babel.models.hooks.mask_neurons`).
        chunks: From :func:`babel.data.chunking.chunk_texts` (BOS first, right padding masked).
        batch_size: Chunks per body forward.
        positions_per_slice: Positions per head slice (memory: this × vocabulary floats).
        bos_id: A target equal to this id never counts (the chunk-start BOS never is one).
    """
    hidden = body_hidden(model, chunks.input_ids, chunks.attention_mask, batch_size=batch_size)
    return head_nll(model, hidden, chunks.input_ids, chunks.attention_mask, bos_id=bos_id,
                    positions_per_slice=positions_per_slice, item_index=chunks.item_index)


def evaluation_chunks(tokenizer, lang: str, *, seq_len: int = 128, max_tokens: int | None = None,
                      max_items: int | None = None, source: str = "builtin",
                      path: str | None = None) -> TokenChunks:
    """The held-out chunks of one language: its ``evaluation`` split only.

    ``max_items`` keeps the first N evaluation items (the same ids in every language);
    ``max_tokens`` cuts the token stream (fewer items where token fertility is high).
    ``source`` is a source name or a folder of the user's files (``exp.profile.corpus``); with
    ``source="files"``, ``path`` is that folder. A user's text has no split of its own: the
    evaluation items are those :func:`babel.data.corpus.split_of` holds out by item id.
    """
    items = load_items(lang, source=source, split="evaluation", max_items=max_items, path=path)
    return chunk_texts([it.text for it in items], tokenizer, seq_len=seq_len,
                       max_tokens=max_tokens)


def masked_perplexity(model: nn.Module, chunks: TokenChunks, keep_neurons=None, *,
                      batch_size: int = 8, positions_per_slice: int = 256,
                      bos_id: int | None = None, bias: np.ndarray | None = None) -> Perplexity:
    """:func:`perplexity` of the dense model with the neurons outside ``keep_neurons`` zeroed
    (and ``bias`` ``[L, d_model]`` added to every FFN output: compensation)."""

    if keep_neurons is None and bias is None:
        return perplexity(model, chunks, batch_size=batch_size,
                          positions_per_slice=positions_per_slice, bos_id=bos_id)
    stack = contextlib.ExitStack()
    if keep_neurons is not None:
        stack.enter_context(mask_neurons(model, torch.as_tensor(np.asarray(keep_neurons,
                                                                            dtype=bool))))
    if bias is not None:
        stack.enter_context(add_ffn_bias(model, torch.as_tensor(np.asarray(bias))))
    with stack:
        hidden = body_hidden(model, chunks.input_ids, chunks.attention_mask,
                             batch_size=batch_size)
    return head_nll(model, hidden, chunks.input_ids, chunks.attention_mask, bos_id=bos_id,
                    positions_per_slice=positions_per_slice, item_index=chunks.item_index)


def _digest(data: bytes, shape: tuple[int, ...]) -> str:
    """sha1 of an array's bytes and shape: the memo key of a mask or a bias."""
    return hashlib.sha1(data + str(shape).encode()).hexdigest()


class Evaluator:
    """Perplexity of one model on fixed per-language chunks under neuron masks, memoised.

    ``ev(keep_neurons, lang)`` runs the masked body once per distinct (mask content,
    language) and the head on its hidden states; a mask met again (the cross-language
    diagonal, the dense model) is a lookup. ``ev(keep_neurons, lang, bias=b)`` adds the
    compensation bias ``b`` ``[L, d_model]`` to every FFN output (memoised by its content too).
    """

    def __init__(self, model: nn.Module, chunks: Mapping[str, TokenChunks], *,
                 batch_size: int = 8, positions_per_slice: int = 256,
                 bos_id: int | None = None):
        self.model = model
        self.chunks = dict(chunks)
        self.batch_size = batch_size
        self.positions_per_slice = positions_per_slice
        self.bos_id = bos_id
        self.memo: dict[tuple[str, str], Perplexity] = {}
        self.seconds = 0.0
        self.runs = 0

    @staticmethod
    def mask_key(keep_neurons) -> str:
        if keep_neurons is None:
            return "dense"
        k = np.ascontiguousarray(np.asarray(keep_neurons, dtype=bool))
        return _digest(np.packbits(k).tobytes(), k.shape)

    @staticmethod
    def bias_key(bias) -> str:
        if bias is None:
            return ""
        b = np.ascontiguousarray(np.asarray(bias, dtype=np.float64))
        return "+b" + _digest(b.tobytes(), b.shape)

    def __call__(self, keep_neurons, lang: str, *, bias=None) -> Perplexity:
        if lang not in self.chunks:
            raise KeyError(f"no evaluation chunks for {lang!r}: the evaluator has "
                           f"{sorted(self.chunks)}")
        key = (self.mask_key(keep_neurons) + self.bias_key(bias), lang)
        if key not in self.memo:
            t0 = time.perf_counter()
            self.memo[key] = masked_perplexity(
                self.model, self.chunks[lang], keep_neurons, batch_size=self.batch_size,
                positions_per_slice=self.positions_per_slice, bos_id=self.bos_id, bias=bias)
            self.seconds += time.perf_counter() - t0
            self.runs += 1
        return self.memo[key]

    def rise(self, keep_neurons, lang: str, *, bias=None) -> float:
        """Relative perplexity rise over the dense model: ``ppl / ppl_dense - 1``."""
        return self(keep_neurons, lang, bias=bias).ppl / self(None, lang).ppl - 1.0


@torch.no_grad()
def _time(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _precise(times: Mapping[tuple[str, str], list[float]], *, dense: str,
             rel_half_width: float) -> bool:
    """Whether every speedup over ``dense`` has a 95% interval narrower than the target."""
    for (name, part), ts in times.items():
        if name == dense:
            continue
        iv = ratio_interval(times[(dense, part)], ts)
        if not iv.half_width < rel_half_width * iv.value:
            return False
    return True


def throughput(models: Mapping[str, nn.Module], input_ids: Tensor, *, repeats: int = 5,
               warmup: int = 1, end_to_end: bool = True, max_repeats: int | None = None,
               rel_half_width: float = 0.03, dense: str = "dense",
               time_fn: Callable[[Callable[[], object]], float] | None = None) -> pd.DataFrame:
    """Median forward time and tokens/s of the body (and end to end) of several models.

    All models see the same batch; each round times one body pass (and one full pass with
    logits on every position) of every model in turn, so slow drifts of the machine hit all
    of them alike. The first ``warmup`` rounds are discarded. Adaptive repeats: after
    ``repeats`` timed rounds, rounds go on until the 95% bootstrap interval
    (:func:`babel.prune.intervals.ratio_interval`, paired rounds) of every speedup over
    ``dense`` has a half-width below ``rel_half_width`` of its value, or ``max_repeats``
    rounds were timed.

    Args:
        models: ``{name: model}``; ``dense`` among them for adaptive repeats.
        input_ids: ``[B, T]`` token ids.
        repeats: Timed rounds at least.
        warmup: Untimed rounds first.
        end_to_end: Also time full passes (logits on every position).
        max_repeats: Timed rounds at most (None: ``repeats``, no adaptive rounds).
        rel_half_width: Target half-width of the speedups' intervals, relative.
        dense: The reference model of the speedups.
        time_fn: Seconds one call takes (default: a wall-clock timer); tests pass a fake.

    Returns:
        One row per (model, part): ``model``, ``part`` (``body``/``end_to_end``),
        ``median_s``, ``min_s``, ``tokens_per_s``, ``repeats`` (timed rounds) and ``times``
        (the seconds of every timed round, in order: paired across models).
    """
    max_repeats = repeats if max_repeats is None else max_repeats
    if repeats < 1 or warmup < 0 or max_repeats < repeats:
        raise ValueError("repeats must be >= 1, warmup >= 0 and max_repeats >= repeats")
    if max_repeats > repeats and dense not in models:
        raise ValueError(f"adaptive repeats need the reference model {dense!r} in models")
    time_fn = time_fn or _time
    am = torch.ones_like(input_ids)
    n_tok = int(input_ids.numel())
    times: dict[tuple[str, str], list[float]] = {}
    parts = ("body", "end_to_end") if end_to_end else ("body",)
    r = 0
    while True:
        for name, m in models.items():
            ids, mask = input_ids.to(_device(m)), am.to(_device(m))
            run = {"body": lambda m=m, i=ids, a=mask: body(m)(input_ids=i, attention_mask=a),
                   "end_to_end": lambda m=m, i=ids, a=mask: m(input_ids=i, attention_mask=a)}
            for part in parts:
                dt = time_fn(run[part])
                if r >= warmup:
                    times.setdefault((name, part), []).append(dt)
        r += 1
        done = r - warmup
        if done >= max_repeats or (done >= max(repeats, 2) and _precise(
                times, dense=dense, rel_half_width=rel_half_width)):
            break
    rows = []
    for (name, part), ts in times.items():
        med = float(np.median(ts))
        rows.append({"model": name, "part": part, "median_s": med, "min_s": float(min(ts)),
                     "tokens_per_s": n_tok / med, "repeats": len(ts), "times": list(ts)})
    return pd.DataFrame(rows)


def speedups(table: pd.DataFrame, *, dense: str = "dense",
             intervals: bool = False) -> pd.DataFrame:
    """Measured speedup of each model over ``dense`` per part (median time ratio).

    With ``intervals`` each speedup also gets ``_low``/``_high`` bounds: the 95% bootstrap
    interval over the paired timing rounds (:func:`babel.prune.intervals.ratio_interval`;
    NaN with fewer than 2 rounds).
    """
    t = table.pivot(index="model", columns="part", values="median_s")
    out = (t.loc[dense] / t).rename(columns=lambda c: f"speedup_{c}")
    if not intervals:
        return out
    ts = table.set_index(["model", "part"]).times
    for part in t.columns:
        ivs = {name: (ratio_interval(ts[(dense, part)], ts[(name, part)])
                      if len(ts[(name, part)]) >= 2 else None) for name in t.index}
        out[f"speedup_{part}_low"] = [iv.low if iv else np.nan for iv in ivs.values()]
        out[f"speedup_{part}_high"] = [iv.high if iv else np.nan for iv in ivs.values()]
    return out
