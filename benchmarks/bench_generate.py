"""Benchmark: greedy generation of pruned models as people run them (batch 1, KV cache).

For each model: a short French profile gives frequency masks (global ranking) at kept shares
k; :func:`babel.models.surgery.prune_model` slices the FFNs. Each variant runs greedy
``generate`` on a 64-token French prompt: ``max_new_tokens=1`` (prefill) and 128 new tokens;
decode time is the difference. Printed per variant, as pruned/dense speed ratios (median of
interleaved rounds; decode also as a process-CPU-time ratio): prefill and decode, the FLOP-predicted ratio beside each
(:func:`babel.prune.flops.flops_per_token`, head included, attention products at the mean
context), weight bytes. Also: the k=0.8 model saved with
:func:`babel.models.surgery.save_pruned` and loaded with plain
``AutoModelForCausalLM.from_pretrained`` (FFNs zero-padded to the largest kept layer) — its
speed, and in a fresh interpreter that never imports babel, its greedy continuation; and a
torch.profiler breakdown of one decode step of the dense model (attention / FFN / head / other).

    .venv/bin/python benchmarks/bench_generate.py [--models gemma-3-270m smollm2-135m]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from babel.construct.partition import get_partition
from babel.core.config import PartitionConfig, ProfileConfig, SelectionRule
from babel.models.ffn import decoder_layers
from babel.models.loading import load_model
from babel.models.surgery import prune_model, save_pruned
from babel.profile.cache import language_chunks
from babel.profile.profiler import profile_chunks
from babel.prune.flops import flops_per_token
from babel.prune.masks import keep_mask, neuron_keep_mask
from babel.results import replace_block

README = Path(__file__).resolve().parents[1] / "README.md"

STANDALONE = """
import json, sys, torch
from transformers import AutoModelForCausalLM
assert 'babel' not in sys.modules
m = AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.float32).eval()
ids = torch.tensor([json.loads(sys.argv[2])])
out = m.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=int(sys.argv[3]),
                 do_sample=False)
print(json.dumps({"tokens": out[0, ids.shape[1]:].tolist(), "babel": 'babel' in sys.modules}))
"""


def weight_bytes(model: nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())  # tied counted once


@torch.no_grad()
def generate(model: nn.Module, ids: torch.Tensor, new: int) -> torch.Tensor:
    return model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new,
                          min_new_tokens=new, do_sample=False, top_p=None, top_k=None,
                          temperature=None)


def timed(fn) -> tuple[float, float]:
    """(wall, process CPU) seconds of ``fn()``; CPU time is steadier under other load."""
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w0, time.process_time() - c0


@torch.no_grad()
def decode_breakdown(model: nn.Module, ids: torch.Tensor, steps: int) -> dict[str, float]:
    """Mean ms per decode step in attention, FFN, head and the rest (torch.profiler)."""
    from torch.profiler import ProfilerActivity, profile, record_function

    _, layers = decoder_layers(model)
    parts = [(layer.self_attn, "attention") for layer in layers] + \
            [(layer.mlp, "ffn") for layer in layers] + [(model.get_output_embeddings(), "head")]
    handles, open_ = [], []
    for mod, label in parts:
        def pre(_m, _a, label=label):
            rf = record_function(label)
            rf.__enter__()
            open_.append(rf)

        def post(_m, _a, _o):
            open_.pop().__exit__(None, None, None)

        handles += [mod.register_forward_pre_hook(pre), mod.register_forward_hook(post)]
    try:
        out = model(input_ids=ids, use_cache=True)
        past, nxt = out.past_key_values, out.logits[:, -1:].argmax(-1)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(steps):
                with record_function("step"):
                    out = model(input_ids=nxt, past_key_values=past, use_cache=True)
                past, nxt = out.past_key_values, out.logits[:, -1:].argmax(-1)
    finally:
        for h in handles:
            h.remove()
    tot = {e.key: e.cpu_time_total / 1e3 / steps for e in prof.key_averages()
           if e.key in ("step", "attention", "ffn", "head")}
    res = {k: tot.get(k, 0.0) for k in ("attention", "ffn", "head")}
    res["other"] = tot["step"] - sum(res.values())
    res["step"] = tot["step"]
    return res


def bench_model(args, name: str) -> bool:
    lm, tok = load_model(name)
    part = get_partition(lm, PartitionConfig())
    ch, _ = language_chunks(tok, "fr", ProfileConfig(max_tokens=args.profile_tokens))
    prof = profile_chunks(lm, part, SelectionRule(), ch.input_ids, ch.attention_mask,
                          bos_id=tok.bos_token_id, progress=False)
    ev, _ = language_chunks(tok, "fr", ProfileConfig(split="evaluation", seq_len=args.prompt,
                                                     max_tokens=4 * args.prompt))
    ids = ev.input_ids[:1, :args.prompt]
    variants: dict[str, nn.Module] = {"dense": lm}
    keeps = {}
    for k in args.shares:
        keeps[k] = neuron_keep_mask(keep_mask(prof.frequency, k), part)
        variants[f"k={k:g}"] = prune_model(lm, keeps[k])
    tmp = Path(tempfile.mkdtemp(prefix="bench-generate-"))
    k_hf = 0.8 if 0.8 in keeps else args.shares[-1]
    folder = save_pruned(variants[f"k={k_hf:g}"], tmp / "pruned")
    from transformers import AutoModelForCausalLM
    hf = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
    variants[f"k={k_hf:g} HF folder (padded)"] = hf

    ctx = args.prompt + args.new // 2
    fl = {v: (flops_per_token(m, seq_len=args.prompt).total,
              flops_per_token(m, seq_len=2 * ctx).total) for v, m in variants.items()}
    for m in variants.values():
        generate(m, ids, 4)  # warm-up
    pre = {v: [] for v in variants}
    full = {v: [] for v in variants}
    for _ in range(args.repeats):  # interleaved rounds
        for v, m in variants.items():
            pre[v].append(timed(lambda m=m: generate(m, ids, 1)))
            full[v].append(timed(lambda m=m: generate(m, ids, args.new)))
    t_pre = {v: statistics.median(w for w, _ in x) for v, x in pre.items()}
    t_dec = {v: statistics.median(f[0] - p[0] for f, p in zip(full[v], pre[v])) for v in variants}
    c_dec = {v: statistics.median(f[1] - p[1] for f, p in zip(full[v], pre[v])) for v in variants}
    print(f"\n== {name}: prompt {args.prompt} French tokens, {args.new} new tokens, greedy, "
          f"batch 1, KV cache; masks from {prof.tokens} profiled French tokens (E="
          f"{part.n_experts}, global); median of {args.repeats} interleaved rounds, "
          f"{torch.get_num_threads()} threads")
    print(f"{'variant':28s} {'prefill t/s':>11s} {'ratio':>6s} {'FLOP':>6s} {'decode t/s':>10s} "
          f"{'ratio':>6s} {'CPU':>6s} {'FLOP':>6s} {'weights MiB':>11s}")
    rows = []
    for v, m in variants.items():
        rp, rd = t_pre["dense"] / t_pre[v], t_dec["dense"] / t_dec[v]
        fp, fd = fl["dense"][0] / fl[v][0], fl["dense"][1] / fl[v][1]
        rows.append({"variant": v, "prefill_tps": args.prompt / t_pre[v], "prefill_ratio": rp,
                     "prefill_flop": fp, "decode_tps": (args.new - 1) / t_dec[v],
                     "decode_ratio": rd, "decode_cpu_ratio": c_dec["dense"] / c_dec[v],
                     "decode_flop": fd, "weights_mib": weight_bytes(m) / 2**20})
        print(f"{v:28s} {args.prompt / t_pre[v]:11.1f} {rp:6.3f} {fp:6.3f} "
              f"{(args.new - 1) / t_dec[v]:10.1f} {rd:6.3f} {c_dec['dense'] / c_dec[v]:6.3f} {fd:6.3f} "
              f"{weight_bytes(m) / 2**20:11.1f}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10
    print(f"peak RSS of this process so far: {peak:.0f} MiB")

    # the saved folder without babel: same greedy continuation as the in-memory pruned model
    want = generate(variants[f"k={k_hf:g}"], ids, args.check_tokens)[0, ids.shape[1]:].tolist()
    p = subprocess.run([sys.executable, "-c", STANDALONE, str(folder),
                        json.dumps(ids[0].tolist()), str(args.check_tokens)],
                       check=False, capture_output=True, text=True)
    got = json.loads(p.stdout.strip().splitlines()[-1]) if p.returncode == 0 else None
    same = got is not None and got["tokens"] == want and not got["babel"]
    print(f"k={k_hf:g} folder {folder.name}/ in a fresh interpreter without babel, plain "
          f"AutoModelForCausalLM.from_pretrained: greedy {args.check_tokens} tokens "
          + ("IDENTICAL to the in-memory pruned model" if same else
             f"DIFFER (error: {p.stderr.strip().splitlines()[-1:] if p.returncode else got})"))

    shutil.rmtree(tmp, ignore_errors=True)
    notes = [f"k={k_hf:g} folder loaded by plain `AutoModelForCausalLM.from_pretrained` in a "
             f"fresh interpreter without babel: greedy {args.check_tokens} tokens "
             + ("identical to the in-memory pruned model" if same else "DIFFER"),
             f"peak RSS of the benchmark process: {peak:.0f} MiB"]
    if name == args.profile_model:
        bd = decode_breakdown(lm, ids, args.profile_steps)
        line = (f"torch.profiler, dense {name}, one decode step (mean of {args.profile_steps}, "
                f"context {args.prompt}+): {bd['step']:.2f} ms = " + ", ".join(
                    f"{k} {bd[k]:.2f} ms ({100 * bd[k] / bd['step']:.0f}%)"
                    for k in ("attention", "ffn", "head", "other")))
        print(line)
        notes.append(line)
    return same, rows, notes


def markdown(args, tables: dict[str, tuple[list[dict], list[str]]]) -> str:
    """The measured tables as markdown, with the command and the commit that made them."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, check=False).stdout.strip() or "unknown"
    out = [(f"Measured by `make bench-peers` (`benchmarks/bench_generate.py --repeats "
           f"{args.repeats}`, commit `{commit}`, {args.threads} threads, "
           f"{time.strftime('%Y-%m-%d')}): greedy `generate`, batch 1, KV cache, "
           f"{args.prompt}-token French prompt, {args.new} new tokens; pruned/dense ratios, "
           f"median of interleaved rounds (decode CPU: process CPU time, steadier under load); "
           f"FLOP: the predicted ratio (head included).")]
    head = ("| variant | prefill tok/s | prefill × | FLOP × | decode tok/s | decode × "
            "| decode CPU × | FLOP × | weights |")
    for model, (rows, notes) in tables.items():
        out += ["", f"**{model}**", "", head, "|---|---|---|---|---|---|---|---|---|"]
        out += [f"| {r['variant']} | {r['prefill_tps']:.0f} | {r['prefill_ratio']:.2f} | "
                f"{r['prefill_flop']:.2f} | {r['decode_tps']:.1f} | {r['decode_ratio']:.2f} | "
                f"{r['decode_cpu_ratio']:.2f} | {r['decode_flop']:.2f} | "
                f"{r['weights_mib']:.0f} MiB |" for r in rows]
        out += [""] + [f"- {n}" for n in notes]
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=["gemma-3-270m", "smollm2-135m"])
    ap.add_argument("--shares", nargs="+", type=float, default=[0.9, 0.8, 0.7])
    ap.add_argument("--prompt", type=int, default=64)
    ap.add_argument("--new", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--profile-tokens", type=int, default=1024)
    ap.add_argument("--check-tokens", type=int, default=32)
    ap.add_argument("--profile-model", default="gemma-3-270m")
    ap.add_argument("--profile-steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--readme", action="store_true",
                    help="write the tables into README.md's bench-generate block")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    results = {m: bench_model(args, m) for m in args.models}  # every model, no short cut
    ok = all(r[0] for r in results.values())
    text = markdown(args, {m: (r[1], r[2]) for m, r in results.items()})
    print("\n" + text)
    if args.readme and ok:
        replace_block(README, "bench-generate", text)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
