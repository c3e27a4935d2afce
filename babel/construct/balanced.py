"""Fast balanced k-means in torch (GPU when there is one): exact equal sizes, no min-cost flow.

Balanced k-means alternates two steps on L2-normalized rows ``x``:

- **assignment**: give every row a cluster so that each of the ``E`` clusters holds exactly
  ``S = N/E`` rows and the total squared distance to the centroids is smallest;
- **update**: each centroid becomes the mean of its rows.

``k-means-constrained`` solves the assignment as a min-cost flow (single-threaded, about half
a minute per iteration at Llama-2-7B's shape). Here it is an **auction** (:func:`auction`):
rows bid for clusters, a cluster keeps its ``S`` best bids, prices rise until every row is
seated. It ends with exact equal sizes and a total within ``N·ε`` of the optimum; every round
is a few vectorised operations over the unseated rows, on whatever device ``x`` is on, and the
prices carry over from one Lloyd iteration to the next. Seeding is scikit-learn's greedy
k-means++.

For unit rows the within-cluster sum of squares is ``N - S·Σ_j ||c_j||²`` and the mean
within-expert cosine (:func:`babel.construct.partition.cohesion`) is
``(S·||c_j||² - 1)/(S - 1)`` averaged over experts: lower inertia is higher cohesion.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor


def pick_device() -> torch.device:
    """The first GPU when there is one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _unit_rows(x: np.ndarray | Tensor, device: torch.device) -> Tensor:
    t = torch.as_tensor(x).to(device=device, dtype=torch.float32)
    return t / t.norm(dim=1, keepdim=True).clamp_min(1e-12)


def kmeans_pp(x: Tensor, n_clusters: int, gen: torch.Generator, *,
              trials: int | None = None) -> Tensor:
    """Greedy k-means++ seeding (as scikit-learn's: ``2 + ln k`` candidates per centre).

    Args:
        x: ``[N, d]`` unit rows.
        n_clusters: ``E``.
        gen: CPU generator (the draws are made on the CPU, so every device seeds alike).
        trials: Candidates per centre (default ``2 + ln E``; 1 is plain k-means++).

    Returns:
        ``[E, d]`` initial centroids (rows of ``x``).
    """
    n = x.shape[0]
    trials = trials or 2 + int(math.log(n_clusters))
    first = int(torch.randint(n, (1,), generator=gen))
    centers = [first]
    closest = (2.0 - 2.0 * (x @ x[first])).clamp_min_(0.0)  # squared distance, unit rows
    for _ in range(1, n_clusters):
        prob = closest.double().cpu()
        total = float(prob.sum())
        if total <= 0.0:  # fewer distinct rows than clusters: take any unused row
            cand = torch.randint(n, (trials,), generator=gen)
        else:
            cand = torch.multinomial(prob / total, trials, replacement=True, generator=gen)
        cand = cand.to(x.device)
        d = (2.0 - 2.0 * (x @ x[cand].T).T).clamp_min_(0.0)  # [trials, N]
        d = torch.minimum(d, closest)
        best = int(d.sum(1).argmin())
        centers.append(int(cand[best]))
        closest = d[best]
    return x[torch.as_tensor(centers, device=x.device)].clone()


def auction(score: Tensor, size: int, *, eps: float, eps_start: float | None = None,
            prices: Tensor | None = None, factor: float = 4.0,
            max_rounds: int = 100_000) -> tuple[Tensor, Tensor]:
    """Equal-size assignment maximising the total ``score``: a Jacobi auction, ε-scaled.

    Each of the ``E`` clusters has ``size`` seats and a price. In every round, each unseated
    row bids for the cluster of best value ``score - price``, raising its price by the
    margin over its second-best value plus ``ε``; a cluster keeps its ``size`` highest bids
    and, once full, costs its lowest kept bid. The final assignment is within ``N·ε`` of the
    optimal total score (Bertsekas' auction for the transportation problem with similar
    objects); ``ε`` is lowered from ``eps_start`` to ``eps`` by ``factor``, keeping the prices.

    Args:
        score: ``[N, E]``, higher is better; ``N = E·size``.
        size: Seats per cluster.
        eps: Final bid increment (the optimality tolerance per row).
        eps_start: First bid increment (default ``eps``: one phase).
        prices: ``[E]`` prices to start from (a previous call's: warm start).
        factor: ``ε`` is divided by this between phases.
        max_rounds: A guard; rows still unseated after it are seated greedily by value.

    Returns:
        ``(labels [N] long, prices [E])``; every cluster has exactly ``size`` rows.
    """
    n, e = score.shape
    if n != e * size:
        raise ValueError(f"{n} rows cannot fill {e} clusters of {size}")
    dev = score.device
    price = torch.zeros(e, dtype=score.dtype, device=dev) if prices is None else prices.clone()
    step = max(eps_start or eps, eps)
    rounds = 0
    while True:
        label = torch.full((n,), -1, dtype=torch.long, device=dev)
        bid = torch.full((n,), -math.inf, dtype=score.dtype, device=dev)
        pending = torch.arange(n, device=dev)
        while pending.numel() and rounds < max_rounds:
            rounds += 1
            top = (score[pending] - price).topk(2, dim=1)
            want = top.indices[:, 0]
            offer = score[pending, want] - top.values[:, 1] + step
            hit = torch.zeros(e + 1, dtype=torch.bool, device=dev)  # slot e: unseated (-1)
            hit[want] = True
            held = hit[label].nonzero().squeeze(1)  # rows seated where a bid arrived
            rows = torch.cat([held, pending])
            cl = torch.cat([label[held], want])
            val = torch.cat([bid[held], offer])
            order = torch.sort(val, descending=True, stable=True).indices
            order = order[torch.sort(cl[order], stable=True).indices]  # by cluster, best first
            c = cl[order]
            rank = torch.arange(c.numel(), device=dev) - torch.searchsorted(c, c)
            keep = rank < size
            label[rows[order]] = torch.where(keep, c, -1)
            bid[rows[order]] = torch.where(keep, val[order], -math.inf)
            full = rank == size - 1
            price[c[full]] = val[order][full]
            pending = rows[order][~keep]
        if pending.numel():  # guard hit: seat the rest greedily where there is room
            room = size - torch.bincount(label[label >= 0], minlength=e)
            label[pending] = round_to_sizes(score[pending] - price, room)
            return label, price
        if step <= eps:
            return label, price
        step = max(step / factor, eps)


def round_to_sizes(score: Tensor, room: Tensor | int) -> Tensor:
    """Labels that fill every cluster's ``room`` exactly: proposals by score, capacity ``room``.

    Every unplaced row proposes to its best-scoring cluster that still has room; each
    cluster keeps its best proposers up to its room and the rest propose again. Each round
    fills a cluster or places every proposer, so it ends in at most ``E`` rounds. Ties go to
    the lower row index (stable sorts): deterministic.

    Args:
        score: ``[N, E]``, higher is preferred.
        room: Seats per cluster (an int, or ``[E]``); they must add up to ``N``.

    Returns:
        ``[N]`` long labels.
    """
    n, e = score.shape
    dev = score.device
    room = (torch.full((e,), room, dtype=torch.long, device=dev) if isinstance(room, int)
            else room.to(device=dev, dtype=torch.long).clone())
    if int(room.sum()) != n:
        raise ValueError(f"{n} rows cannot fill {int(room.sum())} seats")
    labels = torch.full((n,), -1, dtype=torch.long, device=dev)
    pending = torch.arange(n, device=dev)
    neg_inf = torch.tensor(float("-inf"), dtype=score.dtype, device=dev)
    while pending.numel():
        val, want = torch.where(room > 0, score[pending], neg_inf).max(dim=1)
        order = torch.sort(val, descending=True, stable=True).indices
        order = order[torch.sort(want[order], stable=True).indices]
        w = want[order]
        rank = torch.arange(w.numel(), device=dev) - torch.searchsorted(w, w)
        ok = rank < room[w]
        labels[pending[order[ok]]] = w[ok]
        room -= torch.bincount(w[ok], minlength=e)
        keep = torch.ones(pending.numel(), dtype=torch.bool, device=dev)
        keep[order[ok]] = False
        pending = pending[keep]
    return labels


def balanced_kmeans_fast(x: np.ndarray | Tensor, n_clusters: int, *, seed: int,
                         n_init: int = 1, max_iter: int = 30, eps: float = 1e-3,
                         device: torch.device | str | None = None) -> np.ndarray:
    """Equal-size k-means labels of the rows of ``x`` (L2-normalized first), in torch.

    Args:
        x: ``[N, d]`` rows (one per neuron).
        n_clusters: ``E``; must divide ``N``.
        seed: Seeds the k-means++ draws (deterministic for a seed, a device and a thread
            count).
        n_init: Restarts; the one with the lowest within-cluster sum of squares is kept.
        max_iter: Lloyd iterations (stops earlier once no label changes).
        eps: Auction tolerance per row, as a share of the spread (standard deviation) of the
            assignment scores.
        device: Where to compute (default: the first GPU, else the CPU).

    Returns:
        ``[N]`` int32 labels, each cluster exactly ``N/E`` times.
    """
    n = int(x.shape[0])
    if n % n_clusters:
        raise ValueError(f"{n_clusters} clusters do not divide {n} rows")
    size = n // n_clusters
    if n_clusters == 1:
        return np.zeros(n, dtype=np.int32)
    if size == 1:
        return np.arange(n, dtype=np.int32)
    dev = torch.device(device) if device is not None else pick_device()
    xt = _unit_rows(x, dev)
    gen = torch.Generator().manual_seed(int(seed))
    best, best_sse = None, math.inf
    for _ in range(n_init):
        labels, sse = _lloyd(xt, kmeans_pp(xt, n_clusters, gen), size, max_iter=max_iter,
                             eps=eps)
        if sse < best_sse:
            best, best_sse = labels, sse
    return best.cpu().numpy().astype(np.int32)


def _lloyd(x: Tensor, centers: Tensor, size: int, *, max_iter: int,
           eps: float) -> tuple[Tensor, float]:
    """Balanced Lloyd iterations from ``centers``; returns labels and their sum of squares.

    The first assignment lowers the auction's ``ε`` from ``100·eps`` (cold prices); later
    ones start from the previous prices at ``10·eps`` (the centroids moved a little).
    """
    labels, prices = None, None
    for it in range(max_iter):
        score = 2.0 * (x @ centers.T) - (centers * centers).sum(1)  # 1 - ||x - c||²
        spread = float(score.std()) or 1.0
        new, prices = auction(score, size, eps=eps * spread, prices=prices,
                              eps_start=(100.0 if it == 0 else 10.0) * eps * spread)
        if labels is not None and torch.equal(new, labels):
            break
        labels = new
        centers = torch.zeros_like(centers).index_add_(0, labels, x) / size
    sse = float(x.shape[0] - size * (centers * centers).sum())
    return labels, sse


def inertia(x: np.ndarray | Tensor, labels: np.ndarray, n_clusters: int) -> float:
    """Within-cluster sum of squared distances of the L2-normalized rows (lower is better)."""
    xt = _unit_rows(x, torch.device("cpu")).double()
    lab = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    sums = torch.zeros(n_clusters, xt.shape[1], dtype=xt.dtype).index_add_(0, lab, xt)
    counts = torch.bincount(lab, minlength=n_clusters).clamp_min(1).to(xt.dtype)
    return float(xt.shape[0] - ((sums * sums).sum(1) / counts).sum())
