"""Two gloo processes profile a tiny model: counts bit-identical to one process, float sums to
1e-9, only rank 0 writes, and a rank that raises stops both ranks with its rank and error and
leaves no cache."""

from __future__ import annotations

import os
import socket
import traceback
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as tmp_mp

import babel.profile.cache as prof_cache
from babel.construct.partition import build_partition
from babel.core.config import PartitionConfig, ProfileConfig
from babel.profile import distributed
from babel.profile.profiler import Profile

# 100 content tokens in chunks of 15 + BOS: 7 chunks (the last padded), 4 batches of 2 →
# rank 0 takes chunks 0-3, rank 1 chunks 4-6
CFG = ProfileConfig(max_tokens=100, seq_len=16, batch_size=2)
ARRAYS = ("chunk_counts", "chunk_tokens", "neuron_active", "neuron_abs")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, model, tok, part, out: str, port: int) -> None:
    """One rank, as torchrun would start it: env:// variables, then the ordinary call."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      LOCAL_RANK=str(rank), WORLD_SIZE="2")
    torch.set_num_threads(1)
    try:
        prof = prof_cache.profile_language(model, tok, part, "en", CFG, progress=False)
        np.savez(f"{out}/rank{rank}.npz", **prof._arrays())
    except Exception as err:  # noqa: BLE001 — recorded for the test; the rank ends cleanly
        Path(f"{out}/rank{rank}.err").write_text(f"{type(err).__name__}: {err}\n"
                                                 + traceback.format_exc())
    finally:
        distributed._shutdown()


def _launch(model, tok, part, out: Path) -> None:
    tmp_mp.start_processes(_rank_main, args=(model, tok, part, str(out), _free_port()),
                           nprocs=2, join=True, start_method="fork")  # inherits patches


def _log_saves(monkeypatch, log: Path) -> None:
    real = Profile.save

    def save(self, path, meta):
        with open(log, "a") as fh:
            fh.write(f"{distributed.rank()}\n")
        real(self, path, meta)

    monkeypatch.setattr(Profile, "save", save)


@pytest.fixture
def setup(tiny_llama, byte_tokenizer):
    part = build_partition(tiny_llama, PartitionConfig(n_experts=8, method="random", seed=1))
    return tiny_llama, byte_tokenizer, part


def test_shards_are_contiguous_whole_batches():
    shards = [distributed.shard(7, 2, r, 2) for r in range(2)]
    assert shards == [slice(0, 4), slice(4, 7)]
    assert [distributed.shard(3, 2, r, 4) for r in range(4)] == \
        [slice(0, 0), slice(0, 2), slice(2, 2), slice(2, 3)]  # more ranks than batches


def test_two_processes_equal_one(setup, tmp_path, monkeypatch):
    model, tok, part = setup
    one = prof_cache.profile_chunks  # the single-process reference, without the cache
    chunks, _ = prof_cache.language_chunks(tok, "en", CFG)
    assert chunks.n_chunks == 7 and chunks.attention_mask[-1].sum() < 16
    ref = one(model, part, CFG.rule, chunks.input_ids, chunks.attention_mask, lang="en",
              batch_size=CFG.batch_size, bos_id=tok.bos_token_id, progress=False)

    log = tmp_path / "saves.log"
    _log_saves(monkeypatch, log)
    _launch(model, tok, part, tmp_path)
    assert not list(tmp_path.glob("*.err")), [p.read_text() for p in tmp_path.glob("*.err")]
    assert log.read_text().split() == ["0"]  # only rank 0 wrote, once
    cached = Profile.load(prof_cache.profile_file_for("tiny-llama", part, CFG, "en"), "en")
    for r in range(2):
        with np.load(tmp_path / f"rank{r}.npz") as got:
            for k in ("chunk_counts", "chunk_tokens", "neuron_active"):
                assert np.array_equal(got[k], getattr(ref, k)), (r, k)
                assert got[k].dtype == getattr(ref, k).dtype, (r, k)
            np.testing.assert_allclose(got["neuron_abs"], ref.neuron_abs, rtol=1e-9)
    for k in ("chunk_counts", "chunk_tokens", "neuron_active"):
        assert np.array_equal(getattr(cached, k), getattr(ref, k)), k
    np.testing.assert_allclose(cached.neuron_abs, ref.neuron_abs, rtol=1e-9)

    again = tmp_path / "again"  # now cached: rank 0 reads it and hands it to rank 1
    again.mkdir()
    _launch(model, tok, part, again)
    assert not list(again.glob("*.err")) and log.read_text().split() == ["0"]
    for r in range(2):
        with np.load(again / f"rank{r}.npz") as got:
            assert all(np.array_equal(got[k], getattr(cached, k)) for k in ARRAYS), r


@pytest.mark.parametrize("where, bad_rank, error", [
    ("profile_chunks", 1, "ValueError: simulated failure"),  # inside the shared step
    ("language_chunks", 0, "ValueError: simulated failure"),  # before it, on rank 0
    ("save", 0, "OSError: disk full"),  # after it: rank 0's write fails
])
def test_a_failing_rank_stops_the_run_and_nothing_is_cached(setup, tmp_path, monkeypatch, where,
                                                            bad_rank, error):
    model, tok, part = setup
    if where == "save":
        def fail(self, path, meta):
            raise OSError("disk full")
        monkeypatch.setattr(Profile, "save", fail)
    else:
        real = getattr(prof_cache, where)

        def flaky(*a, **k):
            if distributed.rank() == bad_rank:
                raise ValueError("simulated failure")
            return real(*a, **k)
        monkeypatch.setattr(prof_cache, where, flaky)
    _launch(model, tok, part, tmp_path)
    for r in range(2):
        want = f"RankFailure: rank {bad_rank} of 2 failed: {error}; nothing was cached"
        if where == "save" and r == 0:
            want = error  # the writer raises its own error; the other rank is told
        msg = (tmp_path / f"rank{r}.err").read_text().splitlines()[0]
        assert msg == want, (r, msg)
    assert not list((tmp_path / "cache").rglob("*.npz"))
    assert not list((tmp_path / "cache").rglob("*.json"))


def test_one_process_is_unchanged(setup, monkeypatch):
    """Outside torchrun nothing distributed runs (no process group is created)."""
    model, tok, part = setup
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert not distributed.active() and distributed.is_main()
    prof = prof_cache.profile_language(model, tok, part, "en", CFG, progress=False)
    assert prof.chunk_counts.shape[0] == 7
    assert not torch.distributed.is_initialized()
