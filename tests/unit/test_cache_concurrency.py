"""Two processes asking for the same partition and profile at once: one builds, the other waits
and reads; both get the same arrays, and a killed writer's temp file is removed with a note."""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from pathlib import Path

import numpy as np

import babel.profile.cache as prof_cache
from babel.construct import partition
from babel.core.config import PartitionConfig, ProfileConfig

PCFG = PartitionConfig(n_experts=8, method="random", seed=2)
CFG = ProfileConfig(max_tokens=64, seq_len=32)


def _logged(kind: str, real, log: Path):
    def run(*a, **k):
        with open(log, "a") as fh:
            fh.write(f"{kind} {os.getpid()}\n")
        time.sleep(0.5)  # widen the window in which the other process asks
        return real(*a, **k)
    return run


def _ask(model, tok, out: str) -> None:
    import torch

    torch.set_num_threads(1)
    part = partition.get_partition(model, PCFG)
    prof = prof_cache.profile_language(model, tok, part, "en", CFG, progress=False)
    np.savez(out, labels=part.labels, counts=prof.chunk_counts, tokens=prof.chunk_tokens,
             active=prof.neuron_active, abs=prof.neuron_abs)


def test_two_processes_build_once_and_read_the_same(tiny_llama, byte_tokenizer, tmp_path,
                                                    monkeypatch):
    log = tmp_path / "builds.log"
    monkeypatch.setattr(partition, "build_partition",
                        _logged("partition", partition.build_partition, log))
    monkeypatch.setattr(prof_cache, "profile_chunks",
                        _logged("profile", prof_cache.profile_chunks, log))
    ctx = mp.get_context("fork")  # the patched builders and the tiny model are inherited
    procs = [ctx.Process(target=_ask, args=(tiny_llama, byte_tokenizer, str(tmp_path / f"{i}.npz")))
             for i in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    kinds = [line.split()[0] for line in log.read_text().splitlines()]
    assert sorted(kinds) == ["partition", "profile"]  # each artifact built exactly once
    with np.load(tmp_path / "0.npz") as a, np.load(tmp_path / "1.npz") as b:
        for k in a.files:
            assert np.array_equal(a[k], b[k]) and a[k].dtype == b[k].dtype, k
    assert not list((tmp_path / "cache").rglob("*.tmp"))
    assert not list((tmp_path / "cache").rglob("*.bad-*"))


def test_stale_temp_of_a_killed_writer_is_removed_with_a_note(tiny_llama, capsys):
    folder = partition.paths.partition_dir("tiny-llama", PCFG.key)
    folder.mkdir(parents=True)
    stale = folder / ".partition.npz.k1ll3d.tmp"
    stale.write_bytes(b"half")
    partition.get_partition(tiny_llama, PCFG)
    assert not stale.exists()
    err = capsys.readouterr().err
    assert f"note: removing {stale}" in err and err.count("\n") == 1
