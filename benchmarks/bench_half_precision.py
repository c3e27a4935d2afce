"""Benchmark: agreement of bf16 profiling with fp32 on the same tokens (issue 18, half precision).

Loads the model twice (fp32 and ``--dtype``), scores the same few hundred tokens of several
languages with one partition, and prints the share of identical (token, expert) selections, the
share of tokens with an identical selection, the largest expert-frequency difference and both
runs' tokens/s. The partition is random by default (no k-means build, nothing is cached): the
agreement concerns numerics, not which neurons form an expert.

    .venv/bin/python benchmarks/bench_half_precision.py [--model gemma-3-270m] [--tokens 512]
"""

from __future__ import annotations

import argparse
import time

import torch

from babel.construct.partition import build_partition
from babel.core.config import PartitionConfig, SelectionRule
from babel.data.chunking import chunk_texts
from babel.data.corpus import load_items
from babel.models.loading import load_model
from babel.profile.precision import selection_agreement, token_selections

LANGS = ("en", "fr", "zh-Hans", "ar", "hi", "ru")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="gemma-3-270m")
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16"])
    ap.add_argument("--experts", type=int, default=256)
    ap.add_argument("--method", default="random")
    ap.add_argument("--share", type=float, default=0.2)
    ap.add_argument("--tokens", type=int, default=64, help="content tokens per language")
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    ref, tok = load_model(args.model)
    half, _ = load_model(args.model, dtype=getattr(torch, args.dtype))
    part = build_partition(ref, PartitionConfig(n_experts=args.experts, method=args.method))
    rule = SelectionRule("cross_layer", share=args.share)
    ids, am = [], []
    for lang in LANGS:
        ch = chunk_texts([it.text for it in load_items(lang, split="profiling")], tok,
                         seq_len=args.seq_len, max_tokens=args.tokens)
        ids.append(ch.input_ids)
        am.append(ch.attention_mask)
    ids, am = torch.cat(ids), torch.cat(am)
    sel, speed = {}, {}
    for name, model in (("fp32", ref), (args.dtype, half)):
        t0 = time.perf_counter()
        sel[name] = token_selections(model, part, rule, ids, am, batch_size=8,
                                     bos_id=tok.bos_token_id)
        speed[name] = int(am.sum()) / (time.perf_counter() - t0)
    got = selection_agreement(sel["fp32"], sel[args.dtype])
    print(f"model {args.model}, {args.dtype} vs fp32 on CPU ({args.threads} threads), "
          f"{args.method} partition E={args.experts}, cross-layer r={args.share}, "
          f"{got.tokens} counted tokens of {', '.join(LANGS)}")
    print(f"identical (token, expert) selections: {got.selection_overlap:.4f}")
    print(f"tokens with an identical selection:   {got.identical_tokens:.4f}")
    print(f"largest expert-frequency difference:  {got.max_frequency_diff:.4f} "
          f"({got.max_frequency_diff * got.tokens:.0f} tokens)")
    print("tokens/s: " + ", ".join(f"{k} {v:.0f}" for k, v in speed.items()))


if __name__ == "__main__":
    main()
