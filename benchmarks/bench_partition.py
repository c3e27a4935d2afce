"""Benchmark: fast balanced k-means (auction, torch) against k-means-constrained (issue 18).

1. On real layers of ``--model`` (gemma-3-270m: 18 layers x 2048 neurons x 640 dims), E=256:
   per layer, the wall time of each method, the within-expert cohesion (mean cosine of gate
   rows, :func:`babel.construct.partition.cohesion`) of each and of a random partition, and
   the label agreement (adjusted Rand index) between the two methods, next to the agreement
   of k-means-constrained with itself under another seed (how much any two k-means runs
   agree on these rows).
2. Layers in parallel processes: k-means-constrained on the chosen layers with 1 and with
   ``--workers`` processes (the labels must be identical).
3. One random layer of Llama-2-7B's shape (11008 x 4096, E=256) on the CPU: the fast method's
   time (and, with ``--kmc-7b-iters``, k-means-constrained's for that many iterations), and
   the extrapolation to 32 such layers.

    .venv/bin/python benchmarks/bench_partition.py [--layers 0,4,8,12,17] [--workers 2]
        [--kmc-7b-iters 2] [--skip-7b]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from sklearn.metrics import adjusted_rand_score

from babel.construct.balanced import _lloyd, balanced_kmeans_fast, kmeans_pp, pick_device
from babel.construct.partition import (
    Partition,
    _map_layers,
    balanced_kmeans,
    cohesion,
    layer_rows,
    random_labels,
)
from babel.core.config import PartitionConfig
from babel.models import load_model
from babel.models.ffn import ffn_layers


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def real_layers(args) -> None:
    model, _ = load_model(args.model)
    views = ffn_layers(model)
    layers = [int(i) for i in args.layers.split(",")] if args.layers else range(len(views))
    n, e = views[0].n_neurons, args.experts
    labels = {m: np.stack([random_labels(n, e, seed=i) for i in range(len(views))])
              for m in ("random", "kmeans", "kmeans_fast")}
    rows_of = {}
    print(f"{args.model}: {len(views)} layers x {n} neurons, E={e}; CPU, "
          f"{torch.get_num_threads()} threads")
    print(f"{'layer':>5} {'kmc s':>7} {'fast s':>7} {'coh kmc':>8} {'coh fast':>8} "
          f"{'coh rand':>8} {'ARI k/f':>7} {'ARI k/k':>7}")
    tot = {"kmc": 0.0, "fast": 0.0}
    aris, self_aris = [], []
    for i in layers:
        x = rows_of[i] = layer_rows(views[i], "gate")
        kmc, t_k = timed(balanced_kmeans, x, e, seed=args.seed, max_iter=args.max_iter)
        fast, t_f = timed(balanced_kmeans_fast, x, e, seed=args.seed, max_iter=args.max_iter,
                          device="cpu")
        other = balanced_kmeans(x, e, seed=args.seed + 1, max_iter=args.max_iter)
        labels["kmeans"][i], labels["kmeans_fast"][i] = kmc, fast
        tot["kmc"] += t_k
        tot["fast"] += t_f
        aris.append(adjusted_rand_score(kmc, fast))
        self_aris.append(adjusted_rand_score(kmc, other))
        coh = {m: float(cohesion(model, _part(labels[m], m, e), layers=[i])[0])
               for m in labels}
        print(f"{i:>5} {t_k:7.2f} {t_f:7.2f} {coh['kmeans']:8.4f} {coh['kmeans_fast']:8.4f} "
              f"{coh['random']:8.4f} {aris[-1]:7.3f} {self_aris[-1]:7.3f}", flush=True)
    coh = {m: cohesion(model, _part(labels[m], m, e), layers=list(layers)).mean()
           for m in labels}
    print(f"total over {len(layers)} layers: k-means-constrained {tot['kmc']:.1f} s, fast "
          f"{tot['fast']:.1f} s ({tot['kmc'] / tot['fast']:.1f}x); mean cohesion kmc "
          f"{coh['kmeans']:.4f}, fast {coh['kmeans_fast']:.4f}, random {coh['random']:.4f}; "
          f"mean ARI kmc/fast {np.mean(aris):.3f}, kmc seed {args.seed}/{args.seed + 1} "
          f"{np.mean(self_aris):.3f}")
    if args.workers > 1:
        cfg = PartitionConfig(n_experts=e, method="kmeans", seed=args.seed,
                              max_iter=args.max_iter)
        jobs = [(rows_of[i], cfg, args.seed) for i in layers]
        one, t1 = timed(lambda: _map_layers(iter(jobs), len(jobs), 1))
        many, tw = timed(lambda: _map_layers(iter(jobs), len(jobs), args.workers))
        same = all(np.array_equal(a, b) for a, b in zip(one, many, strict=True))
        print(f"k-means-constrained, {len(jobs)} layers: 1 process {t1:.1f} s, {args.workers} "
              f"processes {tw:.1f} s ({t1 / tw:.2f}x); labels identical: {same}")


def _part(labels: np.ndarray, method: str, e: int) -> Partition:
    return Partition(PartitionConfig(n_experts=e, method=method), "bench", labels, "")


def llama_shape(args) -> None:
    n, d, e = 11008, 4096, args.experts
    x = np.random.default_rng(0).standard_normal((n, d), dtype=np.float32)
    dev = pick_device()
    if dev.type == "cuda":
        lab, t = timed(lambda: balanced_kmeans_fast(x, e, seed=0, max_iter=args.max_iter))
        print(f"random {n}x{d}, E={e}: fast on {torch.cuda.get_device_name()} {t:.1f} s")
    # balanced_kmeans_fast(x, e, seed=0, device="cpu"), in its two parts
    xt = torch.as_tensor(x) / torch.as_tensor(x).norm(dim=1, keepdim=True)
    centers, t_seed = timed(kmeans_pp, xt, e, torch.Generator().manual_seed(0))
    (lab, _), t_lloyd = timed(_lloyd, xt, centers, n // e, max_iter=args.max_iter, eps=1e-3)
    assert (torch.bincount(lab, minlength=e) == n // e).all()
    t = t_seed + t_lloyd
    print(f"random {n}x{d}, E={e}: fast on CPU ({torch.get_num_threads()} threads) {t:.1f} s "
          f"(k-means++ seeding {t_seed:.1f} s, balanced Lloyd {t_lloyd:.1f} s); "
          f"extrapolated to 32 layers: {32 * t / 60:.1f} min")
    if args.kmc_7b_iters:
        _, tk = timed(lambda: balanced_kmeans(x, e, seed=0, max_iter=args.kmc_7b_iters))
        print(f"k-means-constrained, {args.kmc_7b_iters} iterations: {tk:.1f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="gemma-3-270m")
    ap.add_argument("--experts", type=int, default=256)
    ap.add_argument("--layers", default="0,4,8,12,17", help="comma-separated; '' = all")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-iter", type=int, default=30)
    ap.add_argument("--workers", type=int, default=2, help="processes for the parallel run")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--kmc-7b-iters", type=int, default=0,
                    help="also time k-means-constrained on the 7B-shape layer")
    ap.add_argument("--skip-7b", action="store_true")
    ap.add_argument("--skip-real", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if not args.skip_real:
        real_layers(args)
    if not args.skip_7b:
        llama_shape(args)


if __name__ == "__main__":
    main()
