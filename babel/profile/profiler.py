"""Per-language expert activation frequencies: streamed through the body, counted, cached.

For each batch of token chunks, hooks on every FFN compute the expert scores (and per-neuron
statistics) on the fly; after the batch, the selection rule picks the highly activated
experts of each token and only **counts** are kept:

- ``chunk_counts`` ``[C, L, E]``: per chunk, how many of its tokens selected each expert
  (chunks allow bootstrap intervals later; their sum is the language's counts);
- ``chunk_tokens`` ``[C]``: counted tokens per chunk (padding never counts; BOS optional);
- ``neuron_active`` ``[L, N]``: tokens on which ``act(gate·x) > 0`` (LAPE's "active";
  ``h > 0`` for plain FFNs) — for GELU/SiLU/ReLU gates this is ``gate·x > 0``;
- ``neuron_abs`` ``[L, N]``: the sum of ``|h|``;
- ``neuron_sum`` / ``neuron_sq`` ``[L, N]``: the sums of ``h`` and ``h²`` (the first two
  moments: mean output for compensation, variance for FLAP-style fluctuation scores,
  :mod:`babel.prune.importance`).


Frequency = counts / tokens. Counts are additive over disjoint token sets. Memory is bounded
by one batch. Only the transformer body runs (no output head). A bf16/fp16 model keeps its
half-precision weights; ``h`` is cast to fp32 before scoring, so scores, z-scores, selection
and neuron statistics are fp32 (agreement with fp32: :mod:`babel.profile.precision`).
Across processes (``torchrun``): :mod:`babel.profile.distributed`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from babel.construct.partition import Partition
from babel.construct.routing import contiguous_experts
from babel.construct.selection import select
from babel.core.cache import CacheError, load_arrays, save_arrays
from babel.core.config import SelectionRule
from babel.models.ffn import body, ffn_layers
from babel.models.hooks import trace_ffn, trace_pre_activations


@dataclasses.dataclass
class Profile:
    """Activation counts of one language (sufficient statistics, never raw activations)."""

    lang: str
    chunk_counts: np.ndarray  # [C, L, E] int32
    chunk_tokens: np.ndarray  # [C] int64
    neuron_active: np.ndarray  # [L, N] int64
    neuron_abs: np.ndarray  # [L, N] float64
    items_sha256: str = ""  # which corpus items were profiled (ids, in order)
    neuron_sum: np.ndarray | None = None  # [L, N] float64: Σh (None: not recorded)
    neuron_sq: np.ndarray | None = None  # [L, N] float64: Σh²

    @property
    def has_moments(self) -> bool:
        """Whether Σh and Σh² were recorded (profiles written before they existed lack them)."""
        return self.neuron_sum is not None and self.neuron_sq is not None

    @property
    def neuron_mean(self) -> np.ndarray:
        """``[L, N]`` mean ``h`` per neuron over the counted tokens."""
        self._need_moments()
        return self.neuron_sum / max(self.tokens, 1)

    @property
    def neuron_var(self) -> np.ndarray:
        """``[L, N]`` variance of ``h`` per neuron over the counted tokens (population, ≥ 0)."""
        self._need_moments()
        t = max(self.tokens, 1)
        return np.maximum(self.neuron_sq / t - (self.neuron_sum / t) ** 2, 0.0)

    def _need_moments(self) -> None:
        if not self.has_moments:
            raise ValueError(f"the profile of {self.lang!r} has no Σh/Σh² statistics: profile "
                             f"it again with this version of babel")

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
                       self.neuron_abs + other.neuron_abs,
                       neuron_sum=_add(self.neuron_sum, other.neuron_sum),
                       neuron_sq=_add(self.neuron_sq, other.neuron_sq))

    def save(self, path: Path, meta: dict) -> None:
        """Write counts (``path``, ``.npz``), then the settings that made them (``.json``).

        The ``.json`` is written last and records the ``.npz``'s sha256, the array shapes and
        dtypes and the language (:func:`babel.core.cache.save_arrays`): a kill between the two
        writes is caught by :meth:`load`.
        """
        save_arrays(path, path.with_suffix(".json"), {**meta, "lang": meta.get("lang", self.lang)},
                    **self._arrays())

    def _arrays(self) -> dict[str, np.ndarray]:
        self._need_moments()
        return {"chunk_counts": self.chunk_counts, "chunk_tokens": self.chunk_tokens,
                "neuron_active": self.neuron_active, "neuron_abs": self.neuron_abs,
                "neuron_sum": self.neuron_sum, "neuron_sq": self.neuron_sq}

    @classmethod
    def load(cls, path: Path, lang: str, *, items_sha256: str = "",
             n_layers: int | None = None, n_experts: int | None = None,
             n_neurons: int | None = None) -> Profile:
        """Read a saved profile of ``lang`` and check it (see :mod:`babel.core.cache`).

        Args:
            path: The ``.npz``; its settings are the ``.json`` beside it.
            lang: The language asked for: the saved one must be the same.
            items_sha256: The items it covers (default: as saved).
            n_layers: Layers ``L`` the partition has (checked when given).
            n_experts: Experts per layer ``E`` (checked when given).
            n_neurons: Neurons per layer ``N`` (checked when given).

        Raises:
            babel.core.cache.CacheError: Missing or unreadable files, a sha256, shape or dtype
                that differs from the saved settings, another language, or other ``L, E, N``.
        """
        path = Path(path)
        z, meta = load_arrays(path, path.with_suffix(".json"), PROFILE_ARRAYS)
        if meta.get("lang") != lang:
            raise CacheError(f"{path} holds the profile of {meta.get('lang')!r}, not {lang!r}")
        cc, ct, act, ab, sm, sq = (z[k] for k in PROFILE_ARRAYS)
        ok = (cc.ndim == 3 and cc.dtype.kind in "iu" and ct.shape == cc.shape[:1]
              and ct.dtype.kind in "iu" and act.ndim == 2 and act.dtype.kind in "iu"
              and all(a.shape == act.shape and a.dtype.kind == "f" for a in (ab, sm, sq))
              and act.shape[0] == cc.shape[1])
        if not ok:
            raise CacheError(f"{path} has inconsistent arrays (counts {list(cc.shape)}, tokens "
                             f"{list(ct.shape)}, neurons {list(act.shape)})")
        for what, got, want in (("layers", cc.shape[1], n_layers),
                                ("experts per layer", cc.shape[2], n_experts),
                                ("neurons per layer", act.shape[1], n_neurons)):
            if want is not None and got != want:
                raise CacheError(f"{path} has {got} {what}, the partition has {want}")
        return cls(lang, cc, ct, act, ab, items_sha256 or str(meta.get("items_sha256", "")),
                   neuron_sum=sm, neuron_sq=sq)


PROFILE_ARRAYS = ("chunk_counts", "chunk_tokens", "neuron_active", "neuron_abs", "neuron_sum",
                  "neuron_sq")
#: What a saved profile holds (in its settings: profiles saved with other statistics are
#: computed again, never mixed).
STATISTICS = "counts,active,abs,sum,sq"


#: The ``torch.compile`` backend of the compiled path: inductor (fused code). The tests trace the
#: real model with ``"aot_eager"`` (dynamo's graph and functionalized hooks, run by eager
#: kernels: the same arithmetic as eager, and no code generation).
COMPILE_BACKEND = "inductor"


def _add(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
    return None if a is None or b is None else a + b


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
        self.sum = torch.zeros(n_layers, n, dtype=torch.float64, device=device)
        self.sq = torch.zeros(n_layers, n, dtype=torch.float64, device=device)
        self.scores: list[Tensor | None] = [None] * n_layers
        self.validf: Tensor | None = None  # [B*T] float

    def on_h(self, i: int, h: Tensor) -> None:
        flat = _at_least_fp32(h.detach().reshape(-1, h.shape[-1]))
        a = flat.abs()
        # pooled mean over each contiguous expert. avg_pool1d, not view(...).mean(-1): the
        # two round differently when the expert size is not a power of two (SmolLM2: 6), and
        # the saved counts must not move; the view is barely faster
        self.scores[i] = F.avg_pool1d(a.unsqueeze(1), self.partition.expert_size).squeeze(1)
        v = self.validf.to(a.dtype)
        if torch.compiler.is_compiling():
            # traced: masked column sums, which inductor fuses into one pass over h (the
            # matrix-vector products below are opaque library calls, one pass each)
            vc = v[:, None]
            self.abs[i] += (a * vc).sum(0)
            self.sum[i] += (flat * vc).sum(0)
            self.sq[i] += (flat * flat * vc).sum(0)
        else:
            self.abs[i] += v @ a
            self.sum[i] += v @ flat
            self.sq[i] += v @ (flat * flat)
        if self.views[i].kind == "plain":
            self._count_active(i, flat)

    def on_pre(self, i: int, pre: Tensor) -> None:
        self._count_active(i, _at_least_fp32(pre.reshape(-1, pre.shape[-1])))

    def _count_active(self, i: int, flat: Tensor) -> None:
        if torch.compiler.is_compiling():
            self.active[i] += (_positive(flat) * self.validf.to(flat.dtype)[:, None]).sum(0)
        else:
            self.active[i] += self.validf.to(flat.dtype) @ _positive(flat)

    def batch_selection(self, valid: Tensor) -> Tensor:
        """``[B, T, L, E]`` bool: the experts each counted token of the last batch selected."""
        b, t = valid.shape
        s = torch.stack(self.scores, dim=1).float()  # [B*T, L, E]
        sel = select(s, self.rule).reshape(b, t, *s.shape[1:])
        sel &= valid[:, :, None, None]
        return sel

    def batch_counts(self, valid: Tensor) -> Tensor:
        """``[B, L, E]`` per-chunk selection counts of the last batch."""
        return self.batch_selection(valid).sum(1, dtype=torch.int32).cpu()

    def neuron_stats(self, order: np.ndarray) -> dict[str, np.ndarray]:
        """Active counts, Σ|h|, Σh and Σh² (``neuron_*`` fields) in the original neuron order."""
        rows = np.arange(order.shape[0])[:, None]
        out = {}
        for name, acc in (("neuron_active", self.active), ("neuron_abs", self.abs),
                          ("neuron_sum", self.sum), ("neuron_sq", self.sq)):
            a = np.zeros(acc.shape, np.int64 if name == "neuron_active" else np.float64)
            vals = acc.cpu().numpy()
            a[rows, order] = vals.round().astype(np.int64) if name == "neuron_active" else vals
            out[name] = a
        return out


def _at_least_fp32(x: Tensor) -> Tensor:
    """``x`` in float32 when it is half precision (bf16/fp16 models): scores, z-scores, the
    selection and the neuron statistics are computed in fp32; the weights stay in half."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _positive(x: Tensor) -> Tensor:
    """0/1 indicator of ``x > 0`` (sign, clamped: cheaper than a comparison and a cast)."""
    return torch.sign(x).clamp_(min=0)


def run_batches(model: nn.Module, tally: _Tally, input_ids: Tensor, attention_mask: Tensor, *,
                batch_size: int, bos_id: int | None, exclude_bos: bool,
                compiled: bool = False) -> Iterator[tuple[Tensor, Tensor]]:
    """Run the model body over the chunks, ``batch_size`` at a time, with the tally's hooks
    attached by the caller; yield each batch's ``(valid, attention_mask)`` once its forward
    pass has filled the tally (the one batching loop of profiling and of
    :func:`babel.profile.precision.token_selections`).

    ``compiled``: run the body through ``torch.compile`` (hooks included: dynamo traces them
    into the graph, so the reductions fuse with the forward pass). The first batch of each
    shape compiles (about a minute per shape for Gemma 3 270M on 2 CPU cores, cached in the
    process); the arithmetic is fused, so ``h`` differs from eager in the last bits and a
    token whose k-th and (k+1)-th z-scores are that close may select another expert
    (``benchmarks/bench_peers.py`` counts how many on the real models). The hooks are traced
    by their code, not their identity: later calls with a new tally reuse the graph.
    """
    run = body(model)
    if compiled:
        run = torch.compile(run, backend=COMPILE_BACKEND)
    device = next(model.parameters()).device
    for s in range(0, input_ids.shape[0], batch_size):
        ids = input_ids[s:s + batch_size].to(device)
        am = attention_mask[s:s + batch_size].to(device)
        valid = valid_mask(ids, am, bos_id=bos_id, exclude_bos=exclude_bos)
        tally.validf = valid.reshape(-1).float()
        run(input_ids=ids, attention_mask=am)
        yield valid, am


@torch.no_grad()
def profile_chunks(model: nn.Module, partition: Partition, rule: SelectionRule,
                   input_ids: Tensor, attention_mask: Tensor, *, lang: str = "",
                   batch_size: int = 8, bos_id: int | None = None, exclude_bos: bool = True,
                   progress: bool = True, compiled: bool = False) -> Profile:
    """Profile token chunks ``[C, T]`` (padding marked 0 in ``attention_mask``).

    ``compiled``: the optional ``torch.compile`` path (:func:`run_batches`); off by default,
    since it needs a C++ compiler (CPU) or Triton (GPU) and a compile per batch shape.

    The model's neurons are reordered in place into contiguous experts for the duration of
    the call (restored exactly on exit): see :func:`babel.construct.routing.contiguous_experts`.
    Inside :func:`babel.construct.routing.hold_contiguous` (as in
    :func:`babel.profile.cache.profile_languages`) one reorder serves every call.
    """
    from tqdm.auto import tqdm

    chunk_counts, chunk_tokens = [], []
    bar = tqdm(total=int(attention_mask.sum()), unit="tok", desc=f"profile {lang}",
               disable=not progress, leave=False)
    with contiguous_experts(model, partition) as cpart:
        tally = _Tally(model, cpart, rule)
        try:
            with trace_ffn(model, tally.on_h), \
                    trace_pre_activations(model, tally.on_pre, gated_only=True):
                for valid, am in run_batches(model, tally, input_ids, attention_mask,
                                             batch_size=batch_size, bos_id=bos_id,
                                             exclude_bos=exclude_bos, compiled=compiled):
                    chunk_counts.append(tally.batch_counts(valid))
                    chunk_tokens.append(valid.sum(1).cpu())
                    bar.update(int(am.sum()))
        finally:
            bar.close()
    n_layers, n_exp = partition.n_layers, partition.n_experts
    cc = (torch.cat(chunk_counts).numpy() if chunk_counts
          else np.zeros((0, n_layers, n_exp), np.int32))
    ct = torch.cat(chunk_tokens).numpy().astype(np.int64) if chunk_tokens else np.zeros(0, np.int64)
    return Profile(lang, cc, ct, **tally.neuron_stats(partition.order))
