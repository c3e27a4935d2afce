"""Data-parallel profiling on ``torch.distributed``: shard the chunks, count, sum the counts.

Under ``torchrun --nproc_per_node N`` (``WORLD_SIZE`` > 1 in the environment) every rank runs
the same program. :func:`babel.profile.cache.profile_language` then:

- lets rank 0 alone look at the cache (under the entry's lock) and tell the others whether it
  loaded the profile (they receive it) or everyone builds it (:func:`load_or_build`);
- shards the chunks by index in **contiguous blocks of whole batches** (rank ``r`` gets batches
  ``[r·B/N, (r+1)·B/N)`` of the ``B`` batches of ``batch_size`` chunks), so every forward pass
  sees exactly the batch a single process would: counts are bit-identical (:func:`sharded`);
- sums the neuron statistics and the ``[L, E]`` counts with ``all_reduce`` (int64, float64)
  and gathers the per-chunk counts back in chunk order (``all_gather``), so every rank ends with
  the whole profile;
- exchanges every rank's status before anything is combined: a rank that raised stops every
  rank with :class:`RankFailure` naming it and its error, and nothing is cached. Only rank 0
  writes, after that exchange.

The backend follows the model's device: NCCL for a CUDA model (load rank ``r``'s model on
:func:`local_device`), gloo on the CPU. A process group that is already initialised is used as
it is. In one process every function here is a no-op or a plain call.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor

from babel.core.cache import load_or_build as _load_or_build_one
from babel.profile.profiler import Profile

T = TypeVar("T")


class RankFailure(RuntimeError):
    """A rank failed during a distributed step; raised on every rank, naming the failed ones."""


class _State:
    exchanged = False  # whether the current build has exchanged the ranks' status


def world_size() -> int:
    """Processes in the run (1 outside ``torchrun``)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    """This process's rank (0 outside ``torchrun``)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0"))


def active() -> bool:
    """Whether this process is one of several (launched by ``torchrun`` or given a group)."""
    return dist.is_available() and world_size() > 1


def is_main() -> bool:
    """Whether this process writes caches, tables and figures (rank 0; always in one process)."""
    return rank() == 0


def local_device() -> torch.device:
    """The device this rank should load its model on: ``cuda:LOCAL_RANK`` when CUDA exists."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def init(device: torch.device | str | None = None) -> None:
    """Join the process group (``env://``, as ``torchrun`` sets it) if not done yet.

    Args:
        device: The model's device: CUDA chooses NCCL (and makes ``cuda:LOCAL_RANK`` current),
            anything else gloo.

    Raises:
        ValueError: A CUDA model on another GPU than this rank's ``LOCAL_RANK``.
    """
    if not active() or dist.is_initialized():
        return
    device = torch.device(device or "cpu")
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if device.index is not None and device.index != local:
            raise ValueError(f"rank {rank()} has its model on {device}, but its GPU is "
                             f"cuda:{local}: load it with device=local_device()")
        torch.cuda.set_device(local)
        dist.init_process_group("nccl")
    else:
        dist.init_process_group("gloo")
    atexit.register(_shutdown)


def _shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def _comm_device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def shard(n_chunks: int, batch_size: int, rank_: int, world: int) -> slice:
    """The chunks of one rank: a contiguous block of whole batches (possibly empty)."""
    n_batches = -(-n_chunks // batch_size)
    lo, hi = rank_ * n_batches // world, (rank_ + 1) * n_batches // world
    return slice(min(lo * batch_size, n_chunks), min(hi * batch_size, n_chunks))


def _describe(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"


def _agree(error: str | None, digest: str | None) -> None:
    """Exchange every rank's status; raise :class:`RankFailure` on every rank if one failed.

    Ranks whose input ``digest`` differs from rank 0's count as failed (they tokenized
    different text: a different file or tokenizer).
    """
    _State.exchanged = True
    got: list[Any] = [None] * world_size()
    dist.all_gather_object(got, (error, digest))
    failed = [(r, e) for r, (e, _) in enumerate(got) if e is not None]
    if not failed:
        failed = [(r, "its chunks differ from rank 0's (other text or tokenizer)")
                  for r, (_, d) in enumerate(got) if d != got[0][1]]
    if failed:
        n = len(got)
        raise RankFailure("; ".join(f"rank {r} of {n} failed: {e}" for r, e in failed)
                          + "; nothing was cached")


def _digest(*tensors: Tensor) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def sharded(fn: Callable[..., Profile]) -> Callable[..., Profile]:
    """Wrap :func:`babel.profile.profiler.profile_chunks` to run on this rank's shard.

    The wrapper has the same signature and returns the whole profile on every rank: per-chunk
    counts in chunk order, summed neuron statistics. Only rank 0 shows progress.
    """

    @functools.wraps(fn)
    def run(model, partition, rule, input_ids: Tensor, attention_mask: Tensor, *,
            batch_size: int = 8, progress: bool = True, **kw) -> Profile:
        init(next(model.parameters()).device)
        n = world_size()
        part = shard(input_ids.shape[0], batch_size, rank(), n)
        digest = _digest(input_ids, attention_mask)
        try:
            local = fn(model, partition, rule, input_ids[part], attention_mask[part],
                       batch_size=batch_size, progress=progress and is_main(), **kw)
        except Exception as err:
            traceback.print_exc(file=sys.stderr)
            _agree(_describe(err), digest)  # raises RankFailure on every rank
            raise  # unreachable: _agree raised
        _agree(None, digest)
        shards = [shard(input_ids.shape[0], batch_size, r, n) for r in range(n)]
        return _combine(local, [s.stop - s.start for s in shards])

    return run


def _combine(local: Profile, sizes: list[int]) -> Profile:
    """Sum the neuron statistics and counts, gather the per-chunk counts (in rank order)."""
    dev = _comm_device()

    def summed(a: np.ndarray, dtype: torch.dtype) -> np.ndarray:
        t = torch.as_tensor(np.ascontiguousarray(a)).to(device=dev, dtype=dtype)
        dist.all_reduce(t)
        return t.cpu().numpy()

    def gathered(a: np.ndarray) -> np.ndarray:
        pad = torch.zeros((max(sizes), *a.shape[1:]), dtype=torch.as_tensor(a).dtype, device=dev)
        pad[:a.shape[0]] = torch.as_tensor(a).to(dev)
        parts = [torch.empty_like(pad) for _ in sizes]
        dist.all_gather(parts, pad)
        return np.concatenate([p[:s].cpu().numpy() for p, s in zip(parts, sizes)])

    active = summed(local.neuron_active, torch.int64)
    abs_sum = summed(local.neuron_abs, torch.float64)
    sum_h = summed(local.neuron_sum, torch.float64)
    sum_sq = summed(local.neuron_sq, torch.float64)
    counts = summed(local.counts, torch.int64)
    chunk_counts, chunk_tokens = gathered(local.chunk_counts), gathered(local.chunk_tokens)
    if not np.array_equal(chunk_counts.sum(0, dtype=np.int64), counts):
        raise RuntimeError("gathered per-chunk counts do not add up to the summed counts")
    return Profile(local.lang, chunk_counts, chunk_tokens, active, abs_sum, local.items_sha256,
                   neuron_sum=sum_h, neuron_sq=sum_sq)


def _broadcast(obj: Any = None) -> Any:
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _guarded(build: Callable[[], T]) -> T:
    """``build()`` on this rank; a failure before the status exchange is exchanged now."""
    _State.exchanged = False
    try:
        return build()
    except RankFailure:
        raise
    except Exception as err:
        if not _State.exchanged:
            traceback.print_exc(file=sys.stderr)
            _agree(_describe(err), None)
        raise


def load_or_build(data, meta_path, load: Callable[[], T], build: Callable[[], T], *,
                  rebuild: bool = False, device: torch.device | str | None = None) -> T:
    """:func:`babel.core.cache.load_or_build` across ranks; every rank returns the same entry.

    Rank 0 loads or builds under the entry's lock and tells the others which; ``build`` runs on
    every rank (its collective step shards the work, :func:`sharded`) and must write only on
    rank 0 (:func:`is_main`). A failure on any rank raises :class:`RankFailure` on every rank.

    Args:
        data: The entry's data file.
        meta_path: Its metadata file.
        load: Reads the cached entry (rank 0 only).
        build: Computes it on every rank and saves it on rank 0.
        rebuild: Build even when a sound entry exists.
        device: The model's device (chooses the backend, :func:`init`).
    """
    init(device)
    if is_main():
        return _lead(data, meta_path, load, build, rebuild)
    return _follow(build)


def _lead(data, meta_path, load, build, rebuild: bool):
    announced = False

    def announce_and_build():
        nonlocal announced
        _broadcast(("build", None))
        announced = True
        return _guarded(build)

    try:
        result = _load_or_build_one(data, meta_path, load, announce_and_build, rebuild=rebuild)
    except RankFailure:
        raise  # every rank raised it
    except Exception as err:
        why = f"rank 0 of {world_size()} failed: {_describe(err)}; nothing was cached"
        _broadcast(("error", why))
        raise
    _broadcast(("built", None) if announced else ("loaded", result))
    return result


def _follow(build):
    kind, payload = _broadcast()
    if kind == "error":
        raise RankFailure(payload)
    if kind == "loaded":
        return payload
    result = _guarded(build)
    kind, payload = _broadcast()
    if kind == "error":
        raise RankFailure(payload)
    return result
