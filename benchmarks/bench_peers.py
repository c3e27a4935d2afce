"""Benchmark: babel against the tools people would use instead, on the same statistic and tokens.

Every tool computes, on the same French chunks (BOS and padding not counted):

- per-expert selection counts ``[L, E]`` under the default rule (cross-layer, r = 0.2),
- per-neuron active counts ``[L, N]`` (gate pre-activation > 0),
- per-neuron ``Σ|h|`` ``[L, N]`` (``h`` = input of ``down_proj``).

Tools: ``babel`` (:func:`babel.profile.profiler.profile_chunks`); ``hooks`` (forward hooks
written the obvious way: membership matmul, per-layer z-score, ``topk`` over all L·E);
``nnsight`` (``model.trace`` saving ``mlp.gate_proj.output`` and ``mlp.down_proj.input``);
``transformer_lens`` (``TransformerBridge`` + ``run_with_cache`` with a names filter);
``babel_compiled`` (the same call with ``compiled=True``: the body and babel's hooks through
``torch.compile``; fused arithmetic moves ``h`` by a few ulps, so a handful of near-tie
selections may differ, reported in the check column). The
peers share one reduction (:class:`Reducer`), so their differences are the framework's.
``plain`` is a plain body forward (the bound for all of them).

Timing: all tools in one process; after the check pass (each tool's first call) one untimed
round in the timed order, then interleaved rounds; median wall (and process CPU) time. The
untimed round matters for ``babel_compiled``: dynamo guards on the modules, and the other
tools' hooks coming and going once made its first timed round recompile (×24 on Gemma).
Every tool's one-time setup is outside its timings: the peers' membership matrices and
TransformerLens' bridge, babel's reorder of the FFN weights into contiguous experts (paid
once per ``profile_languages`` run; measured separately and printed under each table, with
what a lone ``profile_chunks`` call, which pays it every call, would cost).
Peak memory: each tool in its own subprocess (model load, high-water mark reset, one pass):
VmHWM. Counts must equal babel's up to float rounding (:func:`compare`; ``Σ|h|`` to 1e-4
relative); the script exits 1 if not.

    make bench-peers          # creates .venv-peers (requirements-peers.txt) and runs this
    .venv-peers/bin/python benchmarks/bench_peers.py [--models gemma-3-270m smollm2-135m]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import psutil
import torch
from torch import Tensor

from babel.construct.partition import get_partition
from babel.construct.routing import contiguous_experts
from babel.core.config import PartitionConfig, ProfileConfig, SelectionRule
from babel.models.ffn import body, decoder_layers
from babel.models.loading import load_model, resolve
from babel.profile.cache import language_chunks
from babel.profile.profiler import profile_chunks
from babel.results import replace_block

TOOLS = ("plain", "babel", "babel_compiled", "hooks", "nnsight", "transformer_lens")
Stats = tuple[np.ndarray, np.ndarray, np.ndarray]  # counts [L,E], active [L,N], abs [L,N]


class Reducer:
    """The statistic written as a user would: membership matmul, z-score, topk over L·E."""

    def __init__(self, membership: list[Tensor], share: float):
        self.m = membership  # per layer [N, E] 0/1
        n_layers, (n, e) = len(membership), membership[0].shape
        self.k = max(1, round(share * n_layers * e))
        self.counts = torch.zeros(n_layers, e, dtype=torch.int64)
        self.active = torch.zeros(n_layers, n, dtype=torch.int64)
        self.abs = torch.zeros(n_layers, n, dtype=torch.float64)
        self.scores: list[Tensor | None] = [None] * n_layers
        self.valid: Tensor | None = None  # [B, T] bool

    def on_h(self, i: int, h: Tensor) -> None:
        a = h.detach().float().abs()  # [B, T, N]
        self.scores[i] = a @ self.m[i]  # [B, T, E]
        self.abs[i] += (a * self.valid[..., None]).sum((0, 1)).double()

    def on_pre(self, i: int, pre: Tensor) -> None:
        self.active[i] += ((pre.detach() > 0) & self.valid[..., None]).sum((0, 1))

    def end_batch(self) -> None:
        s = torch.stack(self.scores, dim=2)  # [B, T, L, E]
        z = (s - s.mean(-1, keepdim=True)) / s.std(-1, keepdim=True).clamp_min(1e-12)
        flat = z.flatten(2)
        sel = torch.zeros_like(flat, dtype=torch.bool).scatter_(
            -1, flat.topk(self.k, dim=-1).indices, True)
        sel &= self.valid[..., None]
        self.counts += sel.sum((0, 1)).reshape(self.counts.shape)

    def result(self) -> Stats:
        return self.counts.numpy(), self.active.numpy(), self.abs.numpy()


class Bench:
    """Model, tokens and partition of one model; one ``run_<tool>`` per tool."""

    def __init__(self, model: str, tokens: int, batch: int, seq_len: int):
        self.name, self.batch = model, batch
        self.lm, self.tok = load_model(model)
        self.part = get_partition(self.lm, PartitionConfig())
        self.rule = SelectionRule()
        ch, _ = language_chunks(self.tok, "fr", ProfileConfig(seq_len=seq_len, max_tokens=tokens))
        self.ids, self.am = ch.input_ids, ch.attention_mask
        self.valid = self.am.bool() & (self.ids != self.tok.bos_token_id)
        self.n_tokens = int(self.am.sum())
        _, self.layers = decoder_layers(self.lm)
        self.membership = [self.part.membership(i) for i in range(self.part.n_layers)]
        self._bridge = None

    def batches(self):
        for s in range(0, self.ids.shape[0], self.batch):
            sl = slice(s, s + self.batch)
            yield self.ids[sl], self.am[sl], self.valid[sl]

    def reducer(self) -> Reducer:
        return Reducer(self.membership, self.rule.share)

    @torch.no_grad()
    def run_plain(self) -> None:
        for ids, am, _ in self.batches():
            body(self.lm)(input_ids=ids, attention_mask=am)

    def prepared(self, tool: str):
        """babel's one-time setup, outside the timed call: the FFN weights reordered into
        contiguous experts (as :func:`babel.profile.cache.profile_languages` does once for all
        its languages; the call inside re-enters the block and reorders nothing). The peers'
        setup (membership matrices, the TransformerLens bridge) is outside their timings too."""
        if tool.startswith("babel"):
            return contiguous_experts(self.lm, self.part)
        return contextlib.nullcontext()

    def run_babel(self, compiled: bool = False) -> Stats:
        p = profile_chunks(self.lm, self.part, self.rule, self.ids, self.am,
                           batch_size=self.batch, bos_id=self.tok.bos_token_id, progress=False,
                           compiled=compiled)
        return p.counts, p.neuron_active, p.neuron_abs

    def run_babel_compiled(self) -> Stats:
        """babel's optional ``torch.compile`` path (the first call compiles: the warm-up)."""
        return self.run_babel(compiled=True)

    @torch.no_grad()
    def run_hooks(self) -> Stats:
        r = self.reducer()
        handles = []
        try:
            for i, layer in enumerate(self.layers):
                handles.append(layer.mlp.down_proj.register_forward_pre_hook(
                    lambda _m, args, i=i: r.on_h(i, args[0])))
                handles.append(layer.mlp.gate_proj.register_forward_hook(
                    lambda _m, _a, out, i=i: r.on_pre(i, out)))
            for ids, am, valid in self.batches():
                r.valid = valid
                body(self.lm)(input_ids=ids, attention_mask=am)
                r.end_batch()
        finally:
            for h in handles:
                h.remove()
        return r.result()

    @torch.no_grad()
    def run_nnsight(self) -> Stats:
        from nnsight import NNsight

        nm = NNsight(body(self.lm))
        r = self.reducer()
        for ids, am, valid in self.batches():
            saved: list = []  # filled inside the trace (nnsight keeps only saved values' names)
            with nm.trace(input_ids=ids, attention_mask=am):
                for layer in nm.layers:
                    saved.append((layer.mlp.gate_proj.output.save(),
                                  layer.mlp.down_proj.input.save()))
            r.valid = valid
            for i, (pre, h) in enumerate(saved):
                r.on_pre(i, pre)
                r.on_h(i, h)
            r.end_batch()
        return r.result()

    def bridge(self):
        if self._bridge is None:
            from transformer_lens.model_bridge import TransformerBridge

            self._bridge = TransformerBridge.boot_transformers(
                str(resolve(self.name)), device="cpu", dtype=torch.float32)
        return self._bridge

    @torch.no_grad()
    def run_transformer_lens(self) -> Stats:
        br = self.bridge()
        n_layers = len(self.layers)
        names = {f"blocks.{i}.mlp.{what}": (i, what) for i in range(n_layers)
                 for what in (TL_PRE, TL_POST)}
        r = self.reducer()
        for ids, am, valid in self.batches():
            _, cache = br.run_with_cache(ids, attention_mask=am, names_filter=list(names))
            r.valid = valid
            for i in range(n_layers):
                r.on_pre(i, cache[f"blocks.{i}.mlp.{TL_PRE}"])
                r.on_h(i, cache[f"blocks.{i}.mlp.{TL_POST}"])
            r.end_batch()
            del cache
        return r.result()


TL_PRE, TL_POST = "gate.hook_out", "out.hook_in"  # TransformerBridge names (gate_proj out, down_proj in)


def compare(ref: Stats, got: Stats) -> tuple[str, bool]:
    """What differs from babel's statistics, and whether it is within float rounding.

    babel runs on a model whose FFN rows are reordered into contiguous experts; the matmuls
    then round differently in the last bit, which flips a value lying on a threshold (a gate
    pre-activation at 0, a z-score tied at the top-k boundary) once in 10^5-10^6 (the hook
    reduction on babel's reordered weights gives identical counts). Allowed:
    a total |difference| of at most ``ROUNDING`` of the total count, for both counts.
    """
    c0, a0, s0 = ref
    c1, a1, s1 = got
    out, ok = [], True
    for what, x, y in (("selection counts", c0, c1), ("active counts", a0, a1)):
        d = int(np.abs(x.astype(np.int64) - y).sum())
        if d:
            out.append(f"{what} differ by {d} of {int(x.sum())} ({d / max(int(x.sum()), 1):.1e})")
            ok &= d <= ROUNDING * int(x.sum())
    if not np.allclose(s0, s1, rtol=1e-4, atol=1e-6):
        out.append(f"sum|h| differs (max rel {float(np.max(np.abs(s0 - s1) / (np.abs(s0) + 1e-9))):.2e})")
        ok = False
    return "; ".join(out), ok


ROUNDING = 1e-4


def worker_memory(args) -> None:
    """One tool, one pass, in a fresh process: RSS after load and high-water mark."""
    torch.set_num_threads(args.threads)
    b = Bench(args.model, args.tokens, args.batch, args.seq_len)
    if args.tool == "transformer_lens":
        b.bridge()
    rss0 = psutil.Process().memory_info().rss
    try:  # reset the high-water mark to now (Linux), so the load's transient peak is not counted
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    getattr(b, f"run_{args.tool}")()
    peak = _vm_hwm() or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print("RESULT " + json.dumps({"rss_loaded": rss0, "peak": peak}))


def _vm_hwm() -> int | None:
    """Peak RSS (bytes) since the last reset, from /proc (Linux); None elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def memory(args, model: str, tool: str) -> dict | str:
    cmd = [sys.executable, __file__, "--worker", "--tool", tool, "--model", model,
           "--tokens", str(args.tokens), "--batch", str(args.batch),
           "--seq-len", str(args.seq_len), "--threads", str(args.threads)]
    p = subprocess.run(cmd, check=False, capture_output=True, text=True)
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return (p.stderr.strip().splitlines() or ["no output"])[-1]


def timed(fn: Callable) -> tuple[float, float]:
    """(wall, process CPU) seconds of ``fn()``; CPU time is steadier under other load."""
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w0, time.process_time() - c0


def timed_tool(b: Bench, tool: str) -> tuple[float, float]:
    """:func:`timed` of one tool's call, its one-time setup done outside (:meth:`Bench.prepared`)."""
    with b.prepared(tool):
        return timed(getattr(b, f"run_{tool}"))


def bench_model(args, model: str) -> tuple[bool, list[dict], str]:
    b = Bench(model, args.tokens, args.batch, args.seq_len)
    print(f"\n== {model}: {b.n_tokens} French tokens ({int(b.valid.sum())} counted) in "
          f"{b.ids.shape[0]} chunks of {args.seq_len}, batch {args.batch}, "
          f"E={b.part.n_experts}, rule {b.rule.key}, {args.repeats} interleaved rounds, "
          f"{torch.get_num_threads()} threads")
    ref = b.run_babel()
    tools, notes, ok = ["plain", "babel"], {}, True
    for tool in TOOLS[2:]:
        if tool not in args.tools:
            continue
        try:
            got = getattr(b, f"run_{tool}")()  # also the warm-up
        except Exception as err:  # noqa: BLE001 - a peer that cannot run is reported, not fatal
            notes[tool] = f"cannot run: {type(err).__name__}: {str(err).splitlines()[0][:160]}"
            continue
        diff, same = compare(ref, got)
        notes[tool] = ("counts equal babel's" if not diff else
                       f"within rounding: {diff}" if same else f"counts DIFFER: {diff}")
        ok &= same
        tools.append(tool)
    # one untimed round in the timed order: each tool then runs after the others have attached
    # and removed their hooks, as in the timed rounds (torch.compile re-checks its guards on
    # the modules after another tool touched them, and may compile once more: here, untimed)
    warm = {t: timed_tool(b, t)[0] for t in tools}
    times: dict[str, list[float]] = {t: [] for t in tools}
    cpu: dict[str, list[float]] = {t: [] for t in tools}
    for _ in range(args.repeats):
        for t in tools:
            w, c = timed_tool(b, t)
            times[t].append(w)
            cpu[t].append(c)
    med = {t: statistics.median(v) for t, v in times.items()}
    mcpu = {t: statistics.median(v) for t, v in cpu.items()}
    print(f"{'tool':18s} {'tokens/s':>9s} {'x plain':>8s} {'x babel':>8s} {'CPU x plain':>11s} "
          f"{'RSS loaded':>10s} {'peak RSS':>9s} {'extra':>7s}  check")
    rows = []
    for t in tools + [t for t in notes if t not in tools]:
        mem = memory(args, model, t) if not args.no_memory else "skipped"
        rows.append({"tool": t, "tokens_per_s": b.n_tokens / med[t] if t in med else None,
                     "x_plain": med[t] / med["plain"] if t in med else None,
                     "x_babel": med[t] / med["babel"] if t in med else None,
                     "cpu_x_plain": mcpu[t] / mcpu["plain"] if t in med else None,
                     "peak_mib": mem["peak"] / 2**20 if isinstance(mem, dict) else None,
                     "extra_mib": (mem["peak"] - mem["rss_loaded"]) / 2**20
                     if isinstance(mem, dict) else None,
                     "check": notes.get(t, "reference")})
        mtxt = (f"{mem['rss_loaded'] / 2**20:8.0f}Mi {mem['peak'] / 2**20:7.0f}Mi "
                f"{(mem['peak'] - mem['rss_loaded']) / 2**20:6.0f}Mi" if isinstance(mem, dict)
                else f"{'':28s}")
        if t in med:
            print(f"{t:18s} {b.n_tokens / med[t]:9.1f} {med[t] / med['plain']:8.3f} "
                  f"{med[t] / med['babel']:8.3f} {mcpu[t] / mcpu['plain']:11.3f} {mtxt}  {notes.get(t, 'reference')}")
        else:
            print(f"{t:18s} {'-':>9s} {'-':>8s} {'-':>8s} {'-':>11s} {mtxt}  {notes[t]}")
        if isinstance(mem, str) and mem != "skipped":
            print(f"{'':18s} memory run failed: {mem[:200]}")
    print("untimed warm-up round, x plain: " + ", ".join(
        f"{t} {warm[t] / warm['plain']:.2f}" for t in tools[1:]))
    # babel's one-time cost, outside its timings (Bench.prepared): the FFN weights reordered
    # into contiguous experts and back, once per profile_languages run, whatever the number of
    # languages and tokens; a lone profile_chunks call pays it every call
    reorder = []
    for _ in range(args.repeats):
        w0 = time.perf_counter()
        with contiguous_experts(b.lm, b.part):
            pass
        reorder.append(time.perf_counter() - w0)
    fixed = statistics.median(reorder)
    lone = ", ".join(f"{t} {(med[t] + fixed) / med['plain']:.2f}x" for t in tools
                     if t.startswith("babel"))
    note = (f"babel's one-time cost, not in its rows: reordering the FFN weights into contiguous "
            f"experts and back, {fixed:.3f} s (median of {args.repeats}), paid once per "
            f"`profile_languages` run whatever the number of languages. A lone `profile_chunks` "
            f"call pays it every call: over these {b.n_tokens} tokens that would be {lone} the "
            f"plain forward.")
    print(note)
    print("per-round x plain: " + ", ".join(
        f"{t} {[round(a / p, 3) for a, p in zip(times[t], times['plain'])]}" for t in tools[1:]))
    return ok, rows, note


def _fmt(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def markdown(args, tables: dict[str, list[dict]], notes: dict[str, str] | None = None) -> str:
    """The measured tables as markdown, with the command and the commit that made them."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, check=False).stdout.strip() or "unknown"
    out = [(f"Measured by `make bench-peers` (`benchmarks/bench_peers.py --tokens {args.tokens} "
            f"--repeats {args.repeats}`, commit `{commit}`, {args.threads} threads, "
            f"{time.strftime('%Y-%m-%d')}); median wall time over interleaved rounds after one untimed "
            f"round, peak RSS "
            f"of each tool in its own process (`extra`: above the loaded model).")]
    head = ("| tool | tokens/s | × plain forward | × babel | CPU × plain | peak RSS | extra "
            "| counts |")
    for model, rows in tables.items():
        out += ["", f"**{model}**", "", head, "|---|---|---|---|---|---|---|---|"]
        for r in rows:
            out.append(f"| {r['tool']} | {_fmt(r['tokens_per_s'], '.0f')} | "
                       f"{_fmt(r['x_plain'], '.2f')} | {_fmt(r['x_babel'], '.2f')} | "
                       f"{_fmt(r['cpu_x_plain'], '.2f')} | {_fmt(r['peak_mib'], '.0f')} MiB | "
                       f"{_fmt(r['extra_mib'], '.0f')} MiB | {r['check']} |")
        if notes and notes.get(model):
            out += ["", notes[model]]
    return "\n".join(out)


README = Path(__file__).resolve().parents[1] / "README.md"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=["gemma-3-270m", "smollm2-135m"])
    ap.add_argument("--tools", nargs="+", default=list(TOOLS[2:]), choices=TOOLS[2:])
    ap.add_argument("--tokens", type=int, default=2048)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-memory", action="store_true", help="skip the per-tool memory runs")
    ap.add_argument("--readme", action="store_true",
                    help="write the tables into README.md's bench-peers block")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--tool", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--model", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.worker:
        worker_memory(args)
        return
    results = {m: bench_model(args, m) for m in args.models}  # every model, no short cut
    ok = all(r[0] for r in results.values())
    text = markdown(args, {m: r[1] for m, r in results.items()},
                    {m: r[2] for m, r in results.items()})
    print("\n" + text)
    if args.readme and ok:
        replace_block(README, "bench-peers", text)
    print("\nall counts equal babel's" if ok else "\nFAILED: some tool's counts differ from babel's")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
