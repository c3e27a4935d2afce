"""Expert construction: equal-size partitions of each FFN layer's neurons (no weight changes).

Design choices the paper leaves open, taken here (each is a parameter):

- **Which rows are clustered.** Default: the rows of the *gate* projection (for a gated FFN
  the gate decides whether a neuron fires; MoEfication clusters the input projection of ReLU
  FFNs, which plays that role). ``"up"``, ``"gate+up"`` (concatenated rows) and ``"in"``
  (plain FFNs) are available. Rows are L2-normalized, so k-means groups neurons by the
  *direction* they read.
- **Balanced k-means.** ``k-means-constrained`` (min-cost-flow assignment with
  ``size_min = size_max = N/E``) as in MoEfication's code; exact equal sizes, deterministic
  for a seed. Layers of real size are clustered in parallel processes, one per core.
  ``"kmeans_fast"``: the same objective and k-means++ seeding with an auction assignment in
  torch (:mod:`babel.construct.balanced`), on a GPU when there is one; exact equal sizes,
  within-expert cohesion on par, minutes instead of hours at Llama-2-7B's shape.
  Baselines: a ``random`` equal-size partition, and ``coactivation`` clustering (neurons
  whose gates fire on the same calibration tokens; balanced k-means on the PCA-reduced,
  L2-normalized co-activation profiles — a cheap stand-in for MoEfication's METIS graph
  partition).
Scores and selection rules: :mod:`babel.construct.selection`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import multiprocessing
import os
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, as_completed, wait
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from babel.construct.balanced import balanced_kmeans_fast
from babel.core import paths
from babel.core.artifacts import config_dict
from babel.core.cache import CacheError, CacheStale, load_arrays, load_or_build, save_arrays
from babel.core.config import PartitionConfig, Projection
from babel.models.ffn import FFNLayer, body, ffn_layers
from babel.models.hooks import onloaded_layer, trace_pre_activations
from babel.models.loading import model_name as _name


class PartitionMismatch(ValueError):
    """A saved partition was built from other weights than the model's."""


@dataclasses.dataclass(frozen=True)
class Partition:
    """Expert membership of every neuron, with the settings and weights it was built from.

    Attributes:
        config: The partition settings.
        model: Model name.
        labels: ``[L, N]`` expert id of each neuron.
        weights_sha256: Hash of the FFN input weights the partition was built from.
        seconds: Build time.
    """

    config: PartitionConfig
    model: str
    labels: np.ndarray
    weights_sha256: str
    seconds: float = 0.0

    @property
    def n_layers(self) -> int:
        return int(self.labels.shape[0])

    @property
    def n_neurons(self) -> int:
        return int(self.labels.shape[1])

    @property
    def n_experts(self) -> int:
        return self.config.n_experts

    @property
    def expert_size(self) -> int:
        return self.n_neurons // self.n_experts

    @property
    def order(self) -> np.ndarray:
        """``[L, N]`` neuron indices sorted by expert: expert e is ``order[l, e*S:(e+1)*S]``."""
        return np.argsort(self.labels, axis=1, kind="stable")

    def order_tensor(self, device: torch.device | str | None = None) -> Tensor:
        """:attr:`order` as a LongTensor (cached per device)."""
        cache = self.__dict__.setdefault("_order_cache", {})
        key = str(device)
        if key not in cache:
            cache[key] = torch.as_tensor(self.order, dtype=torch.long, device=device)
        return cache[key]

    def labels_tensor(self, device: torch.device | str | None = None) -> Tensor:
        """:attr:`labels` as a LongTensor (cached per device)."""
        cache = self.__dict__.setdefault("_labels_cache", {})
        key = str(device)
        if key not in cache:
            cache[key] = torch.as_tensor(self.labels, dtype=torch.long, device=device)
        return cache[key]

    def membership(self, layer: int) -> Tensor:
        """``[N, E]`` 0/1 membership matrix of one layer (for references and figures)."""
        m = torch.zeros(self.n_neurons, self.n_experts)
        m[torch.arange(self.n_neurons), torch.as_tensor(self.labels[layer]).long()] = 1.0
        return m

    def save(self, folder: Path) -> None:
        """Write ``partition.npz``, then ``config.json`` (settings, weights hash, its sha256)."""
        folder.mkdir(parents=True, exist_ok=True)
        save_arrays(folder / DATA_FILE, folder / META_FILE, {
            "config": config_dict(self.config), "model": self.model,
            "weights_sha256": self.weights_sha256, "seconds": self.seconds,
            "n_layers": self.n_layers, "n_neurons": self.n_neurons,
        }, labels=self.labels.astype(np.int32))

    @classmethod
    def load(cls, folder: Path, *, expect_sha256: str | None = None,
             n_layers: int | None = None, n_neurons: int | None = None) -> Partition:
        """Read a saved partition and check it (see :mod:`babel.core.cache`).

        Args:
            folder: The partition's folder.
            expect_sha256: The model's weights hash (:func:`weights_sha256`), checked when given.
            n_layers: The model's FFN layer count, checked when given.
            n_neurons: The model's neurons per layer, checked when given.

        Raises:
            babel.core.cache.CacheError: Missing or unreadable files, a sha256/shape/dtype that
                differs from ``config.json``, unbalanced labels (every expert of every layer
                must hold ``N/E`` neurons) or another layer/neuron count.
            PartitionMismatch: A sound partition built from other weights.
        """
        folder = Path(folder)
        z, meta = load_arrays(folder / DATA_FILE, folder / META_FILE, ("labels",))
        labels = z["labels"]
        try:
            cfg = PartitionConfig(**meta["config"])
            model, sha = str(meta["model"]), str(meta["weights_sha256"])
        except (KeyError, TypeError, ValueError) as err:
            raise CacheError(f"{folder / META_FILE} has no valid settings ({err})") from None
        _check_labels(folder / DATA_FILE, labels, cfg.n_experts)
        for what, got, want in (("layers", labels.shape[0], n_layers),
                                ("neurons per layer", labels.shape[1], n_neurons)):
            if want is not None and got != want:
                raise CacheError(f"{folder / DATA_FILE} has {got} {what}, the model has {want}")
        if expect_sha256 is not None and sha != expect_sha256:
            raise PartitionMismatch(
                f"partition in {folder} was built for other weights (sha256 "
                f"{sha[:12]}…, model has {expect_sha256[:12]}…): rebuild it "
                f"with get_partition(..., rebuild=True) or delete that folder"
            )
        return cls(cfg, model, labels, sha, float(meta.get("seconds", 0.0)))


DATA_FILE = "partition.npz"
META_FILE = "config.json"


def _check_labels(path: Path, labels: np.ndarray, n_experts: int) -> None:
    """:class:`CacheError` unless ``labels [L, N]`` put exactly ``N/E`` neurons in every expert."""
    if labels.ndim != 2 or labels.dtype.kind not in "iu" or labels.shape[1] % n_experts:
        raise CacheError(f"{path}: labels {labels.dtype}{list(labels.shape)} cannot hold "
                         f"{n_experts} equal experts per layer")
    size = labels.shape[1] // n_experts
    for i, row in enumerate(labels):
        if row.min(initial=0) < 0 or row.max(initial=0) >= n_experts or \
                not (np.bincount(row, minlength=n_experts) == size).all():
            raise CacheError(f"{path}: layer {i} is unbalanced (every one of the {n_experts} "
                             f"experts must hold {size} neurons)")


def layer_rows(layer: FFNLayer, projection: Projection) -> np.ndarray:
    """The weight rows ``[N, d]`` clustered for one layer (fp32 numpy; offloaded layers too)."""
    with onloaded_layer(layer):
        if projection == "gate+up" and layer.kind == "gated":
            w = torch.cat([layer.in_weight("gate"), layer.in_weight("up")], dim=1)
        elif projection == "gate+up":
            w = layer.in_weight("in")
        else:
            w = layer.in_weight(projection)
        return w.detach().float().cpu().numpy()


def weights_sha256(model: nn.Module) -> str:
    """sha256 over every layer's FFN input and output weights (identifies the model)."""
    h = hashlib.sha256()
    for v in ffn_layers(model):
        with onloaded_layer(v):
            for w in (v.in_weight("gate"), v.in_weight("up"), v.out_weight()):
                h.update(w.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _check_divides(n: int, e: int) -> None:
    if n % e:
        divisors = [d for d in (8, 16, 32, 64, 128, 256, 512, 1024) if n % d == 0]
        raise ValueError(
            f"n_experts={e} does not divide the {n} neurons per layer: use a divisor such as "
            f"{divisors}"
        )


def balanced_kmeans(x: np.ndarray, n_clusters: int, *, seed: int, n_init: int = 1,
                    max_iter: int = 30) -> np.ndarray:
    """Equal-size k-means labels of the rows of ``x`` (L2-normalized first)."""
    n = x.shape[0]
    size = n // n_clusters
    if n_clusters == 1:
        return np.zeros(n, dtype=np.int32)
    if size == 1:
        return np.arange(n, dtype=np.int32)
    from k_means_constrained import KMeansConstrained

    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    km = KMeansConstrained(n_clusters=n_clusters, size_min=size, size_max=size,
                           random_state=seed, n_init=n_init, max_iter=max_iter)
    return km.fit_predict(x.astype(np.float64)).astype(np.int32)


def random_labels(n: int, n_clusters: int, *, seed: int) -> np.ndarray:
    """A uniformly random equal-size assignment of ``n`` items to ``n_clusters`` groups."""
    rng = np.random.default_rng(seed)
    return (rng.permutation(n) % n_clusters).astype(np.int32)


@torch.no_grad()
def coactivation_features(model: nn.Module, input_ids: Tensor, attention_mask: Tensor,
                          *, batch_size: int = 8) -> list[np.ndarray]:
    """Per layer, ``[N, N]`` counts of calibration tokens on which two gates both fire."""
    views = ffn_layers(model)
    acc = [torch.zeros(v.n_neurons, v.n_neurons, dtype=torch.float64) for v in views]
    state: dict[str, Tensor] = {}

    def count(i: int, pre: Tensor) -> None:
        a = (pre > 0).reshape(-1, pre.shape[-1])[state["valid"]].to(torch.float32)
        acc[i] += (a.T @ a).double()

    run = body(model)
    with trace_pre_activations(model, count):
        for s in range(0, input_ids.shape[0], batch_size):
            ids, am = input_ids[s:s + batch_size], attention_mask[s:s + batch_size]
            state["valid"] = am.reshape(-1).bool()
            run(input_ids=ids, attention_mask=am)
    return [a.numpy() for a in acc]


def cluster_rows(rows: np.ndarray, cfg: PartitionConfig, *, seed: int,
                 device: torch.device | str | None = None) -> np.ndarray:
    """Equal-size labels of one layer's feature rows by ``cfg.method``'s balanced k-means.

    ``"kmeans_fast"`` runs :func:`babel.construct.balanced.balanced_kmeans_fast` (on
    ``device``, default the first GPU, else the CPU); every other method that clusters
    (``"kmeans"``, ``"coactivation"``) runs k-means-constrained (:func:`balanced_kmeans`).
    """
    if cfg.method == "kmeans_fast":
        return balanced_kmeans_fast(rows, cfg.n_experts, seed=seed, n_init=cfg.n_init,
                                    max_iter=cfg.max_iter, device=device)
    return balanced_kmeans(rows, cfg.n_experts, seed=seed, n_init=cfg.n_init,
                           max_iter=cfg.max_iter)


def _cluster_job(job: tuple[np.ndarray, PartitionConfig, int, int]) -> np.ndarray:
    """One layer in a worker process, with ``threads`` CPU threads (torch and BLAS)."""
    from threadpoolctl import threadpool_limits

    rows, cfg, seed, threads = job
    torch.set_num_threads(threads)
    with threadpool_limits(threads):
        return cluster_rows(rows, cfg, seed=seed, device="cpu")


def available_cores() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _default_workers(cfg: PartitionConfig, n_layers: int, n: int, d: int) -> int:
    """Processes for the layers when ``workers=None`` (see :func:`build_partition`)."""
    if cfg.method not in ("kmeans", "coactivation") or n * d < PARALLEL_MIN_VALUES:
        return 1
    return max(1, min(available_cores(), n_layers))


PARALLEL_MIN_VALUES = 1 << 20  # rows x dims of a layer worth a process of its own


def _map_layers(jobs: Iterator[tuple[np.ndarray, PartitionConfig, int]], n_layers: int,
                workers: int) -> list[np.ndarray]:
    """Cluster every layer's rows, in ``workers`` processes (in order; at most ``workers``
    layers' rows held at once), or in this process when ``workers`` is 1."""
    if workers <= 1:
        return [cluster_rows(rows, cfg, seed=seed) for rows, cfg, seed in jobs]
    threads = max(1, available_cores() // workers)
    out: list[np.ndarray | None] = [None] * n_layers
    ctx = multiprocessing.get_context("spawn")  # no fork of a process holding threads
    with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        running: dict[Future, int] = {}
        for i, (rows, cfg, seed) in enumerate(jobs):
            if len(running) >= workers:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for f in done:
                    out[running.pop(f)] = f.result()
            running[pool.submit(_cluster_job, (rows, cfg, seed, threads))] = i
        for f in as_completed(running):
            out[running[f]] = f.result()
    return out  # type: ignore[return-value]


def build_partition(model: nn.Module, cfg: PartitionConfig, *, model_name: str = "model",
                    calibration: tuple[Tensor, Tensor] | None = None,
                    workers: int | None = None) -> Partition:
    """Split every FFN layer of ``model`` into ``cfg.n_experts`` equal experts.

    Args:
        model: A causal LM (or its body); offloaded layers (accelerate) are read too.
        cfg: Partition settings.
        model_name: Recorded beside the partition.
        calibration: ``(input_ids, attention_mask)`` for ``method="coactivation"``.
        workers: Processes that cluster layers side by side (each with its share of the
            cores); the labels are the same for any number. ``None``: one per core (at most
            one per layer) for k-means-constrained on layers of at least 2^20 values, else 1
            (``"kmeans_fast"`` already uses every core, or the GPU, in this process; with
            ``workers > 1`` it runs on the CPU).

    Returns:
        The partition (weights untouched).
    """
    t0 = time.perf_counter()
    views = ffn_layers(model)
    n = views[0].n_neurons
    _check_divides(n, cfg.n_experts)
    labels = np.zeros((len(views), n), dtype=np.int32)
    if cfg.method == "neurons" and cfg.n_experts != n:
        raise ValueError(f"method='neurons' means one neuron per expert: set n_experts={n}")
    if cfg.method in ("neurons", "random"):
        for v in views:
            labels[v.index] = (np.arange(n, dtype=np.int32) if cfg.method == "neurons"
                               else random_labels(n, cfg.n_experts, seed=cfg.seed + v.index))
    else:
        if cfg.method == "coactivation":
            if calibration is None:
                raise ValueError("method='coactivation' needs calibration=(input_ids, "
                                 "attention_mask): pass chunks of calibration text")
            co = coactivation_features(model, *calibration)
            jobs = ((_coactivation_rows(c), cfg, cfg.seed) for c in co)
            d = min(n, 64)
        else:
            jobs = ((layer_rows(v, cfg.projection), cfg, cfg.seed) for v in views)
            d = views[0].in_weight("up").shape[1] * (
                2 if cfg.projection == "gate+up" and views[0].kind == "gated" else 1)
        if workers is None:
            workers = _default_workers(cfg, len(views), n, d)
        for i, lab in enumerate(_map_layers(jobs, len(views), workers)):
            labels[i] = lab
    return Partition(cfg, model_name, labels, weights_sha256(model),
                     round(time.perf_counter() - t0, 2))


def _coactivation_rows(c: np.ndarray) -> np.ndarray:
    """Features of one layer's co-activation counts: top 64 principal components of the
    centred, cosine-normalised co-firing profiles."""
    diag = np.sqrt(np.maximum(np.diag(c), 1.0))
    prof = c / diag[:, None] / diag[None, :]  # cosine-like co-firing profile
    prof = prof - prof.mean(0, keepdims=True)
    u, s, _ = np.linalg.svd(prof, full_matrices=False)
    return u[:, :64] * s[:64]


def get_partition(model: nn.Module, cfg: PartitionConfig | None = None, *,
                  model_name: str | None = None, rebuild: bool = False,
                  calibration: tuple[Tensor, Tensor] | None = None,
                  workers: int | None = None) -> Partition:
    """The cached partition of ``model`` for ``cfg``; built and saved on first use.

    ``workers``: processes for the layers (:func:`build_partition`).

    A cached partition whose weights hash differs from the model's is refused
    (:class:`PartitionMismatch`) unless ``rebuild=True``. One that fails a check
    (:meth:`Partition.load`) is moved aside with a warning and built again; another process
    building the same partition is waited for, then read.
    """

    cfg = cfg or PartitionConfig()
    name = model_name or _name(model)
    folder = paths.partition_dir(name, cfg.key)
    sha = weights_sha256(model)
    views = ffn_layers(model)

    def load() -> Partition:
        part = Partition.load(folder, expect_sha256=sha, n_layers=len(views),
                              n_neurons=views[0].n_neurons)
        if part.config != cfg:
            raise CacheStale(f"{folder} was built with other settings ({part.config})")
        return part

    def build() -> Partition:
        part = build_partition(model, cfg, model_name=name, calibration=calibration,
                               workers=workers)
        part.save(folder)
        return part

    return load_or_build(folder / DATA_FILE, folder / META_FILE, load, build, rebuild=rebuild)


def single_neuron_partition(model: nn.Module, *, model_name: str = "model") -> Partition:
    """The trivial partition with one neuron per expert (E = N): neuron-level analysis."""
    n = ffn_layers(model)[0].n_neurons
    return build_partition(model, PartitionConfig(n_experts=n, method="neurons"),
                           model_name=model_name)


def cohesion(model: nn.Module, partition: Partition, *, projection: Projection = "gate",
             layers: Sequence[int] | None = None) -> np.ndarray:
    """Mean within-expert cosine similarity of weight rows, per layer ``[L]``."""
    views = ffn_layers(model)
    out = []
    for v in views if layers is None else [views[i] for i in layers]:
        x = torch.as_tensor(layer_rows(v, projection))
        x = x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)
        g = x[torch.as_tensor(partition.order[v.index])].reshape(
            partition.n_experts, partition.expert_size, -1)
        sim = g @ g.transpose(1, 2)  # [E, S, S]
        s = partition.expert_size
        if s == 1:
            out.append(1.0)
            continue
        off = (sim.sum((1, 2)) - sim.diagonal(dim1=1, dim2=2).sum(-1)) / (s * (s - 1))
        out.append(float(off.mean()))
    return np.asarray(out)


def expand_to_neurons(flags: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Expert flags ``[..., L, E]`` to neuron flags ``[..., L, N]`` through ``labels [L, N]``.

    The one expert→neuron expansion of the numpy side (keep-masks, language-specific sets);
    leading axes (e.g. languages) are kept.
    """
    flags = np.asarray(flags)
    lab = np.asarray(labels, dtype=np.int64)
    return np.take_along_axis(flags, np.broadcast_to(lab, (*flags.shape[:-2], *lab.shape)),
                              axis=-1)
