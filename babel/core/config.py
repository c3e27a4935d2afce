"""The leaf configs every stage shares: partition, selection rule, profiling, expert classes.

They are frozen dataclasses that validate on construction; their ``key`` properties name the
cache files, so two runs with equal configs share one artifact. The design choices they encode
are explained in :mod:`babel.construct.partition` and :mod:`babel.construct.selection`.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Literal

Method = Literal["kmeans", "random", "coactivation", "neurons", "kmeans_fast"]
Projection = Literal["gate", "up", "gate+up", "in"]
RuleKind = Literal["cross_layer", "per_layer_topk", "z_threshold"]
METHODS = ("kmeans", "random", "coactivation", "neurons", "kmeans_fast")
PROJECTIONS = ("gate", "up", "gate+up", "in")
RULES = ("cross_layer", "per_layer_topk", "z_threshold")


@dataclasses.dataclass(frozen=True)
class PartitionConfig:
    """How to split each layer's N neurons into E equal experts.

    Attributes:
        n_experts: Experts per layer ``E`` (must divide ``N``; the paper: 256).
        method: ``"kmeans"`` (balanced k-means, min-cost flow), ``"kmeans_fast"`` (balanced
            k-means with an auction assignment in torch, on a GPU when there is one),
            ``"random"``, ``"coactivation"`` or ``"neurons"`` (one neuron per expert, E = N:
            neuron-level analysis).
        projection: Weight rows clustered: ``"gate"``, ``"up"``, ``"gate+up"`` or ``"in"``.
        seed: Random seed (k-means initialisation, random partition).
        n_init: k-means restarts per layer.
        max_iter: k-means iterations.
    """

    n_experts: int = 256
    method: Method = "kmeans"
    projection: Projection = "gate"
    seed: int = 0
    n_init: int = 1
    max_iter: int = 30

    def __post_init__(self) -> None:
        if not isinstance(self.n_experts, int) or self.n_experts < 1:
            raise ValueError(f"n_experts must be a positive int, got {self.n_experts!r}")
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.projection not in PROJECTIONS:
            raise ValueError(f"projection must be one of {PROJECTIONS}, got {self.projection!r}")
        if self.n_init < 1 or self.max_iter < 1:
            raise ValueError("n_init and max_iter must be >= 1")

    @property
    def key(self) -> str:
        """A short name for file paths."""
        return f"{self.method}-E{self.n_experts}-{self.projection}-s{self.seed}"


@dataclasses.dataclass(frozen=True)
class SelectionRule:
    """Which experts count as "highly activated" for a token.

    Attributes:
        kind: ``"cross_layer"`` (paper), ``"per_layer_topk"`` (MoEfication) or
            ``"z_threshold"``.
        share: Selected share ``r`` of all L·E experts (cross_layer) or of each layer's E
            experts (per_layer_topk).
        z: z-score threshold (z_threshold).
    """

    kind: RuleKind = "cross_layer"
    share: float = 0.2
    z: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in RULES:
            raise ValueError(f"rule kind must be one of {RULES}, got {self.kind!r}")
        if not 0.0 < float(self.share) <= 1.0:
            raise ValueError(f"share must be in (0, 1], got {self.share!r}")

    @property
    def key(self) -> str:
        """A short name for file paths."""
        if self.kind == "z_threshold":
            return f"z{self.z:g}"
        return f"{self.kind}-r{self.share:g}"


@dataclasses.dataclass(frozen=True)
class ProfileConfig:
    """What text is profiled and how.

    Attributes:
        rule: The selection rule ("highly activated").
        source: Corpus source (``"builtin"``, ``"files"``, ``"flores_plus"``, ``"wikipedia"``).
        split: ``"profiling"`` (default), ``"evaluation"`` or ``"all"``.
        seq_len: Tokens per chunk (BOS included).
        batch_size: Chunks per forward pass.
        max_tokens: Token budget per language (``None``: no token budget). A token budget
            covers *different* items in each language (token fertility differs up to 2x):
            kept as an ablation; the default profiles the same items everywhere.
        max_items: Item budget: the first N items of the split, the same ids in every
            language (``None``: the whole split). Content-parallel.
        exclude_bos: Do not count the BOS position (it is the same token in every language).
        path: The folder of the user's files (``source="files"``); ``None`` otherwise. Left
            out of the saved config when ``None``, so built-in profiles keep their key and
            settings.
        compiled: Profile through ``torch.compile`` (:func:`babel.profile.profiler.run_batches`).
            Its fused arithmetic may flip a near-tie selection, so compiled profiles are
            cached apart (``_compiled`` in the key); left out of key and settings when off.
    """

    rule: SelectionRule = dataclasses.field(default_factory=SelectionRule)
    source: str = "builtin"
    split: str = "profiling"
    seq_len: int = 128
    batch_size: int = 8
    max_tokens: int | None = None
    exclude_bos: bool = True
    max_items: int | None = None
    path: str | None = None
    compiled: bool = False

    def __post_init__(self) -> None:
        if self.source == "files" and not self.path:
            raise ValueError('source="files" needs path= the folder of <code>.txt/.jsonl files')
        if self.split not in ("profiling", "evaluation", "all"):
            raise ValueError(f"split must be 'profiling', 'evaluation' or 'all', got "
                             f"{self.split!r}")
        if self.seq_len < 2 or self.batch_size < 1:
            raise ValueError("seq_len must be >= 2 and batch_size >= 1")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ValueError(f"max_tokens must be positive or None, got {self.max_tokens!r}")
        if self.max_items is not None and self.max_items < 1:
            raise ValueError(f"max_items must be positive or None, got {self.max_items!r}")

    @property
    def content_parallel(self) -> bool:
        """True when every language profiles the same items (no token budget)."""
        return self.max_tokens is None

    @property
    def corpus(self) -> str:
        """The corpus as ``load_items(source=…)`` takes it: the source name, or the folder."""
        return self.path if self.path is not None else self.source

    @property
    def key(self) -> str:
        budget = "all" if self.max_tokens is None else str(self.max_tokens)
        items = "" if self.max_items is None else f"_I{self.max_items}"
        source = self.source
        if self.path is not None:  # one cache folder per user folder (content: its digest)
            where = str(Path(self.path).expanduser().resolve())
            source += "-" + hashlib.sha256(where.encode("utf-8")).hexdigest()[:8]
        return (f"{self.rule.key}_{source}-{self.split}_L{self.seq_len}_T{budget}"
                f"_bos{int(not self.exclude_bos)}{items}{'_compiled' if self.compiled else ''}")

    def as_dict(self) -> dict:
        """The saved settings: every field, ``path`` only when set and ``compiled`` only when
        on (so built-in eager profiles keep the settings they were saved with)."""
        out = dataclasses.asdict(self)
        if out["path"] is None:
            del out["path"]
        if not out["compiled"]:
            del out["compiled"]
        return out


@dataclasses.dataclass(frozen=True)
class ExpertClassSpec:
    """The one definition of the expert classes, relative to the selection share ``r``.

    With ``f[a, l, e]`` the frequency of expert (l, e) in language a:

    - **co-activated**: ``f >= high_factor * r`` in every language;
    - **rare**: ``f < low_factor * r`` in every language;
    - **specific to a**: ``f[a] >= high_factor * r`` and the z-score of ``f[a]`` against the
      other languages' frequencies ``>= specific_z``.

    ``r`` is the expected frequency under uniform selection, so ``high_factor = 1`` means "at
    least as often as the average expert". Every notebook and every statistic uses this one
    spec, taken from the experiment config.

    Attributes:
        high_factor: "High" frequency as a multiple of ``r``.
        low_factor: "Rare" frequency as a multiple of ``r`` (below it in every language).
        specific_z: z-score against the other languages for "specific".
    """

    high_factor: float = 1.0
    low_factor: float = 0.25
    specific_z: float = 3.0

    def __post_init__(self) -> None:
        for name in ("high_factor", "low_factor", "specific_z"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{name} must be a number >= 0, got {value!r}")
        if self.low_factor > self.high_factor:
            raise ValueError(f"low_factor ({self.low_factor}) must not exceed high_factor "
                             f"({self.high_factor}): a rare expert cannot be highly activated")

    def thresholds(self, share: float) -> tuple[float, float]:
        """``(high, low)`` frequency thresholds for a selection share ``r``."""
        return self.high_factor * share, self.low_factor * share
