"""Expert importance scores for pruning, all from one profiling pass (no extra forward passes).

Each score is an ``[L, E]`` matrix for one language (higher = more important to keep), built
from that language's :class:`~babel.profile.profiler.Profile` (selection counts and the
per-neuron sums Σ|h|, Σh, Σh² over its ``T`` counted tokens) and the model's down-projection
column norms ``‖W_down[:, i]‖``:

========================  ===========================================================
``frequency``             the paper's: share of tokens that select the expert
``mass``                  mean ``|h|`` summed over the expert's neurons: Σ_i Σ|h_i| / T
``weighted``              output-weighted mass (Wanda-style): Σ_i (Σ|h_i| / T)·‖W_down[:, i]‖
``fluctuation``           FLAP's metric: Σ_i Var(h_i)·‖W_down[:, i]‖² — the output energy a
                          removed expert takes away *beyond its mean*, which compensation
                          (:mod:`babel.prune.compensation`) restores
``energy``                Σ_i E[h_i²]·‖W_down[:, i]‖² — the whole output energy a removed
                          expert takes away (mean² + variance): the matching metric when
                          nothing is compensated
``<score>-contrast``      the score against the mean over languages: ``s · s / s̄``
                          (``s̄`` the mean of ``s`` over the languages, each language's score
                          first divided by its own total)
========================  ===========================================================

Design choices (none of these are fixed by the papers):

- **Ranking across layers.** Selection frequency is comparable across layers (the cross-layer
  rule: every token selects the same share of all L·E experts), so it is ranked as it is.
  The magnitude scores are not (activation scales differ by orders of magnitude between
  layers, and Gemma 3 renormalises every FFN output), so for a global ranking each layer's
  scores are divided by the layer's total: an expert's *share of its layer's importance*
  (:func:`layer_shares`). A layer with evenly spread importance then loses few experts,
  a concentrated one many.
- **Contrast.** ``s · (s / s̄)`` keeps the scale of ``s`` for an expert every language uses
  alike (``s ≈ s̄``), lowers experts that other languages use more (``s < s̄``: they go
  first) and raises this language's own ones. The mean runs over every language given
  (the notebook: all the experiment's languages).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from torch import nn

from babel.construct.partition import Partition
from babel.models.ffn import ffn_layers
from babel.models.hooks import onloaded
from babel.profile.profiler import Profile

BASE_SCORES = ("frequency", "mass", "weighted", "fluctuation", "energy")
CONTRAST = "-contrast"


def score_names(base: Sequence[str] = BASE_SCORES, contrast: Sequence[str] = ()) -> list[str]:
    """The score names: the base scores, then ``<name>-contrast`` for each in ``contrast``."""
    return [*base, *(f"{c}{CONTRAST}" for c in contrast)]


def check_score(name: str) -> str:
    """``name`` if it is a known score, else a one-line error naming the known ones."""
    base = name.removesuffix(CONTRAST)
    if base not in BASE_SCORES:
        raise ValueError(f"unknown importance score {name!r}: use one of {BASE_SCORES} or "
                         f"'<score>{CONTRAST}'")
    return name


def down_norms(model: nn.Module) -> np.ndarray:
    """``[L, N]`` Euclidean norm of every FFN neuron's output column ``W_down[:, i]`` (float64)."""
    out = []
    for v in ffn_layers(model):
        with onloaded(v.down):
            out.append(v.out_weight().detach().double().norm(dim=0).cpu().numpy())
    return np.stack(out)


def pool_experts(neuron_values: np.ndarray, partition: Partition) -> np.ndarray:
    """``[L, E]`` sums of ``[L, N]`` neuron values over each expert's neurons."""
    v = np.asarray(neuron_values, dtype=np.float64)
    if v.shape != (partition.n_layers, partition.n_neurons):
        raise ValueError(f"neuron values {v.shape} do not match the partition "
                         f"({partition.n_layers}, {partition.n_neurons})")
    n_layers, n_exp = partition.n_layers, partition.n_experts
    idx = (np.arange(n_layers)[:, None] * n_exp + np.asarray(partition.labels)).ravel()
    return np.bincount(idx, weights=v.ravel(), minlength=n_layers * n_exp).reshape(n_layers,
                                                                                     n_exp)


def neuron_score(profile: Profile, name: str, norms: np.ndarray | None = None) -> np.ndarray:
    """``[L, N]`` per-neuron value of a magnitude score (``mass``, ``weighted``, ``fluctuation``,
    ``energy``)."""
    t = max(profile.tokens, 1)
    if name == "mass":
        return profile.neuron_abs / t
    if norms is None:
        raise ValueError(f"score {name!r} needs the down-projection norms: pass norms="
                         f"down_norms(model)")
    if name == "weighted":
        return profile.neuron_abs / t * norms
    if name == "fluctuation":
        return profile.neuron_var * norms ** 2
    if name == "energy":
        profile._need_moments()
        return profile.neuron_sq / t * norms ** 2
    raise ValueError(f"{name!r} is not a neuron score: use 'mass', 'weighted', 'fluctuation' "
                     f"or 'energy'")


def expert_score(profile: Profile, name: str, partition: Partition,
                 norms: np.ndarray | None = None) -> np.ndarray:
    """``[L, E]`` importance of every expert for one language under a base score.

    Args:
        profile: The language's profile (profiling split).
        name: One of :data:`BASE_SCORES`.
        partition: The expert partition the profile was made with.
        norms: ``[L, N]`` down-projection column norms (:func:`down_norms`), for the
            output-weighted scores.
    """
    if name == "frequency":
        return profile.frequency.astype(np.float64)
    return pool_experts(neuron_score(profile, name, norms), partition)


def layer_shares(score: np.ndarray) -> np.ndarray:
    """Each expert's share of its layer's total score (a uniform layer where the total is 0)."""
    s = np.asarray(score, dtype=np.float64)
    tot = s.sum(1, keepdims=True)
    return np.where(tot > 0, s / np.where(tot > 0, tot, 1.0), 1.0 / s.shape[1])


def contrast(scores: Mapping[str, np.ndarray], lang: str) -> np.ndarray:
    """``s · s / s̄`` of ``lang`` (module docstring); ``scores`` by language, same base score.

    Each language's score is divided by its own total first, so that no language dominates
    the mean by scale; an expert with ``s̄ = 0`` scores 0.
    """
    if lang not in scores:
        raise KeyError(f"no score for {lang!r}: contrast needs it among {sorted(scores)}")
    norm = {k: np.asarray(v, dtype=np.float64) / max(float(np.sum(v)), 1e-300)
            for k, v in scores.items()}
    s = norm[lang]
    mean = np.mean(np.stack(list(norm.values())), axis=0)
    return np.where(mean > 0, s * s / np.where(mean > 0, mean, 1.0), 0.0)


def ranking_score(name: str, score: np.ndarray) -> np.ndarray:
    """The ``[L, E]`` values a global ranking compares: frequency as it is, the magnitude
    scores (and contrasts) as each expert's share of its layer (module docstring)."""
    return np.asarray(score, dtype=np.float64) if name == "frequency" else layer_shares(score)


def importance(profiles: Mapping[str, Profile], name: str, partition: Partition, *,
               norms: np.ndarray | None = None,
               languages: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """``{lang: [L, E]}`` importance under score ``name`` for ``languages`` (default: all).

    A ``-contrast`` score takes its mean over **every** language in ``profiles``.
    """
    check_score(name)
    base = name.removesuffix(CONTRAST)
    langs = list(profiles) if languages is None else list(languages)
    need = list(profiles) if name.endswith(CONTRAST) else langs
    raw = {lang: expert_score(profiles[lang], base, partition, norms) for lang in need}
    if not name.endswith(CONTRAST):
        return {lang: raw[lang] for lang in langs}
    return {lang: contrast(raw, lang) for lang in langs}
