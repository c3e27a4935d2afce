"""Benchmark: data-parallel profiling, 1 vs N processes (issue 18, data parallelism).

Profiles a fixed slice of the built-in corpus (a few languages, ``--tokens`` content tokens
each) with a random partition (no k-means build, nothing cached) once in one process and once
in ``--procs`` processes launched by ``torchrun`` (gloo on the CPU, NCCL on GPUs), each with
``--threads`` threads. Prints tokens/s of both runs, the speedup, and the cost of the
distributed steps as a share of the run, timed by wrapping the module's functions (the module is
not edited):

- ``status``: :func:`babel.profile.distributed._agree`, the exchange of every rank's status
  (``all_gather_object``). It is the first collective after the forward passes, so it also holds
  the time the faster rank waits for the slower one (load imbalance);
- ``combine``: :func:`babel.profile.distributed._combine`, the ``all_reduce`` of the counts and
  neuron statistics and the ``all_gather`` of the per-chunk counts. The ranks enter it together
  (after ``status``), so this is the communication itself.

Exits non-zero unless the N-process integer counts (``[L, E]`` counts, per-chunk counts and
tokens, neuron activation counts) equal the one-process counts bit for bit and the float sums
Σ|h| agree to a relative 1e-9.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_distributed.py \
        [--model gemma-3-270m] [--procs 2] [--threads 1] [--tokens 252] [--device cpu]

``--device cuda`` loads each rank's model on its own GPU (``cuda:LOCAL_RANK``; NCCL); with
``--dtype bfloat16`` it is the multi-GPU part of ``benchmarks/gpu_check.sh``.
The script re-runs itself under ``torchrun`` (``--worker``) for both runs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

LANGS = ("en", "fr", "zh-Hans", "ar")


def _args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="gemma-3-270m")
    ap.add_argument("--procs", type=int, default=2, help="processes of the parallel run")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per process")
    ap.add_argument("--tokens", type=int, default=252,
                    help="content tokens per language (252: 4 chunks of 63 + BOS; 0: no budget)")
    ap.add_argument("--langs", default=",".join(LANGS),
                    help="comma-separated codes, or 'all' (every built-in language)")
    ap.add_argument("--split", default="profiling", choices=["profiling", "evaluation", "all"])
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--experts", type=int, default=256)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def _langs(spec: str) -> list[str]:
    if spec == "all":
        from babel.data.languages import available_languages
        return available_languages()
    return spec.split(",")


def worker(args: argparse.Namespace) -> None:
    """One rank: load, chunk, profile (sharded when WORLD_SIZE > 1); rank 0 saves the result."""
    import torch

    torch.set_num_threads(args.threads)
    from babel.construct.partition import build_partition
    from babel.core.config import PartitionConfig, ProfileConfig, SelectionRule
    from babel.models.loading import load_model
    from babel.profile import distributed
    from babel.profile.cache import language_chunks
    from babel.profile.profiler import profile_chunks

    timers = {"status": 0.0, "combine": 0.0}

    def timed(name, fn):
        def wrapped(*a, **kw):
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                timers[name] += time.perf_counter() - t0
        return wrapped

    distributed._agree = timed("status", distributed._agree)
    distributed._combine = timed("combine", distributed._combine)

    device = distributed.local_device() if args.device == "cuda" else torch.device("cpu")
    model, tok = load_model(args.model, dtype=getattr(torch, args.dtype), device=device)
    part = build_partition(model, PartitionConfig(n_experts=args.experts, method="random"))
    cfg = ProfileConfig(rule=SelectionRule("cross_layer", share=0.2), seq_len=args.seq_len,
                        batch_size=args.batch_size, max_tokens=args.tokens or None,
                        split=args.split)
    ids, am = [], []
    for lang in _langs(args.langs):
        ch, _ = language_chunks(tok, lang, cfg)
        ids.append(ch.input_ids)
        am.append(ch.attention_mask)
    ids, am = torch.cat(ids), torch.cat(am)
    world = distributed.world_size()
    run = distributed.sharded(profile_chunks) if distributed.active() else profile_chunks
    distributed.init(device)
    if distributed.active():
        torch.distributed.barrier()  # start the clock together
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    prof = run(model, part, cfg.rule, ids, am, batch_size=cfg.batch_size,
               bos_id=tok.bos_token_id, exclude_bos=cfg.exclude_bos, progress=False)
    if device.type == "cuda":
        torch.cuda.synchronize()
    secs = time.perf_counter() - t0
    mine = distributed.shard(ids.shape[0], cfg.batch_size, distributed.rank(), world)
    stats = {"seconds": secs, **timers, "chunks": mine.stop - mine.start,
             "tokens": int(am[mine].sum())}
    if distributed.active():
        every: list = [None] * world
        torch.distributed.all_gather_object(every, stats)
    else:
        every = [stats]
    if distributed.is_main():
        np.savez(args.out, counts=prof.counts, chunk_counts=prof.chunk_counts,
                 chunk_tokens=prof.chunk_tokens, neuron_active=prof.neuron_active,
                 neuron_abs=prof.neuron_abs)
        Path(args.out).with_suffix(".json").write_text(json.dumps({
            "world": world, "chunks": int(ids.shape[0]), "tokens": int(am.sum()),
            "counted": int(prof.tokens), "ranks": every}))


def launch(args: argparse.Namespace, procs: int, out: Path) -> dict:
    """Run this script under ``torchrun --nproc_per_node procs``; the rank-0 record."""
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun), "--standalone", "--nproc_per_node", str(procs), __file__, "--worker",
           "--out", str(out), "--model", args.model, "--threads", str(args.threads),
           "--tokens", str(args.tokens), "--langs", args.langs, "--split", args.split,
           "--seq-len", str(args.seq_len),
           "--batch-size", str(args.batch_size), "--experts", str(args.experts),
           "--device", args.device, "--dtype", args.dtype]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads),
           "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE"),
           "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1"),
           "BABEL_CACHE_DIR": os.environ.get("BABEL_CACHE_DIR", str(out.parent / "cache"))}
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-3000:] + done.stderr[-6000:])
        raise SystemExit(f"torchrun with {procs} process(es) failed (exit {done.returncode})")
    rec = json.loads(out.with_suffix(".json").read_text())
    rec["launch_seconds"] = time.perf_counter() - t0
    return rec


def compare(one: Path, many: Path) -> list[str]:
    """What differs between the two runs' profiles (empty: identical)."""
    a, b = np.load(one), np.load(many)
    bad = []
    for k in ("counts", "chunk_counts", "chunk_tokens", "neuron_active"):
        if a[k].shape != b[k].shape or a[k].dtype != b[k].dtype or not np.array_equal(a[k], b[k]):
            bad.append(f"{k} differ")
    x, y = a["neuron_abs"], b["neuron_abs"]
    if x.shape != y.shape or not np.allclose(x, y, rtol=1e-9, atol=0.0):
        bad.append("neuron_abs differ beyond a relative 1e-9")
    return bad


def _report(tag: str, rec: dict) -> float:
    wall = max(r["seconds"] for r in rec["ranks"])
    print(f"{tag}: {rec['tokens']} tokens in {wall:.2f} s = {rec['tokens'] / wall:.1f} tokens/s "
          f"(torchrun launch to exit {rec['launch_seconds']:.1f} s)")
    if rec["world"] > 1:
        for i, r in enumerate(rec["ranks"]):
            fwd = r["seconds"] - r["status"] - r["combine"]
            print(f"  rank {i}: {r['chunks']} chunks, {r['tokens']} tokens; forward passes "
                  f"{fwd:.2f} s, status exchange {r['status'] * 1e3:.1f} ms "
                  f"({r['status'] / r['seconds']:.1%}), combine {r['combine'] * 1e3:.1f} ms "
                  f"({r['combine'] / r['seconds']:.1%} of the run)")
    return wall


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    if args.worker:
        worker(args)
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-distributed-") as tmp:
        one, many = Path(tmp) / "one.npz", Path(tmp) / "many.npz"
        r1 = launch(args, 1, one)
        rn = launch(args, args.procs, many)
        print(f"model {args.model} ({args.dtype}, {args.device}), random partition "
              f"E={args.experts}, cross-layer r=0.2, {args.langs} ({args.split} split): "
              f"{r1['chunks']} chunks of {args.seq_len} tokens, batch {args.batch_size}, "
              f"{r1['counted']} counted tokens; {args.threads} thread(s) per process")
        w1 = _report("1 process ", r1)
        wn = _report(f"{args.procs} processes", rn)
        print(f"speedup 1 -> {args.procs}: {w1 / wn:.2f}x "
              f"(parallel efficiency {w1 / wn / args.procs:.0%})")
        bad = compare(one, many)
        if bad:
            print("MISMATCH: " + "; ".join(bad))
            return 1
        a, b = np.load(one), np.load(many)
        exact = np.array_equal(a["neuron_abs"], b["neuron_abs"])
        print(f"counts from {args.procs} processes equal 1 process bit for bit: yes "
              f"(Σ|h| {'bit-identical too' if exact else 'within a relative 1e-9'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
