"""Benchmark: profiled pass vs plain body forward on the same tokens, in one process.

Target (issue 5): profiled <= 1.15x plain for gemma-3-270m at E=256 (cross-layer rule).
Prints tokens/s of both, the ratio (median of interleaved repeats) and peak memory.

    .venv/bin/python benchmarks/bench_profiling.py [--model gemma-3-270m] [--experts 256]
"""

from __future__ import annotations

import argparse
import statistics
import time

import psutil
import torch

from babel.construct.partition import get_partition
from babel.core.config import PartitionConfig, SelectionRule
from babel.data.chunking import chunk_texts
from babel.data.corpus import load_items
from babel.models.ffn import body
from babel.models.loading import load_model
from babel.profile.profiler import profile_chunks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="gemma-3-270m")
    ap.add_argument("--experts", type=int, default=256)
    ap.add_argument("--method", default="kmeans")
    ap.add_argument("--tokens", type=int, default=2048)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    torch.set_num_threads(2)
    proc = psutil.Process()
    lm, tok = load_model(args.model)
    part = get_partition(lm, PartitionConfig(n_experts=args.experts, method=args.method))
    texts = [it.text for lang in ("en", "fr", "zh-Hans", "ar", "hi", "ru")
             for it in load_items(lang, split="profiling")]
    ch = chunk_texts(texts, tok, seq_len=args.seq_len, max_tokens=args.tokens)
    ids, am = ch.input_ids, ch.attention_mask
    n_tok = int(am.sum())
    rss0 = proc.memory_info().rss

    @torch.no_grad()
    def plain() -> None:
        for s in range(0, ids.shape[0], args.batch):
            body(lm)(input_ids=ids[s:s + args.batch], attention_mask=am[s:s + args.batch])

    def profiled() -> None:
        profile_chunks(lm, part, SelectionRule(), ids, am, batch_size=args.batch,
                       bos_id=tok.bos_token_id, progress=False)

    def timed(fn) -> tuple[float, float]:
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        return time.perf_counter() - w0, time.process_time() - c0

    plain(), profiled()  # warm-up
    t_plain, t_prof, c_plain, c_prof, peak = [], [], [], [], rss0
    for _ in range(args.repeats):  # interleaved, so load drifts hit both
        w, c = timed(plain); t_plain.append(w); c_plain.append(c)
        w, c = timed(profiled); t_prof.append(w); c_prof.append(c)
        peak = max(peak, proc.memory_info().rss)
    mp, mq = statistics.median(t_plain), statistics.median(t_prof)
    cpu_ratio = statistics.median(c_prof) / statistics.median(c_plain)
    ratio = mq / mp
    print(f"model {args.model}, E={args.experts} ({args.method}), {n_tok} tokens in "
          f"{ids.shape[0]} chunks of {args.seq_len}, batch {args.batch}, {args.repeats} repeats")
    print(f"plain body : {n_tok / mp:8.1f} tokens/s  (median {mp:.2f} s)")
    print(f"profiled   : {n_tok / mq:8.1f} tokens/s  (median {mq:.2f} s)")
    print(f"ratio profiled/plain = {ratio:.3f}  (target <= 1.15: {'MET' if ratio <= 1.15 else 'NOT MET'})")
    print(f"per-repeat wall ratios: {[round(b / a, 3) for a, b in zip(t_plain, t_prof)]}")
    print(f"CPU-time ratio (process time, robust to other load) = {cpu_ratio:.3f}  "
          f"(target <= 1.15: {'MET' if cpu_ratio <= 1.15 else 'NOT MET'})")
    print(f"peak RSS {peak / 2**20:.0f} MiB (after model load {rss0 / 2**20:.0f} MiB)")


if __name__ == "__main__":
    main()
