"""Language-specific neurons by LAPE (Tang et al. 2024), and their overlap with our experts.

LAPE (language activation probability entropy), following the reference implementation:

1. ``p[a, l, i]`` = probability that neuron i of layer l is active (``act(gate·x) > 0``) on a
   token of language a (``Profile.neuron_frequency``).
2. Normalise over languages, ``q = p / Σ_a p``; entropy ``H[l, i] = -Σ_a q log q``.
3. Threshold ``τ`` = the 95th percentile of all ``p`` values (k-th smallest, k = round(0.95·n)).
   Candidates: neurons whose largest ``p`` exceeds ``τ``.
4. Keep the lowest-entropy candidates: ``round(rate · L·N)`` of them (``rate_of="all"``, as the
   reference code, 1% of *all* neurons) or ``round(rate · #candidates)``
   (``rate_of="candidates"``); never more than there are candidates.
5. A kept neuron is specific to every language whose ``p`` exceeds ``τ`` (so one neuron can
   belong to a few languages).

Our language-specific *experts* (:func:`babel.profile.classify_experts`) are expanded to
their neurons through ``Partition.labels``; the overlap table compares the two neuron sets
per language, with the overlap expected by chance for sets of those sizes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd

from babel.construct.partition import expand_to_neurons


@dataclasses.dataclass(frozen=True)
class LapeResult:
    """LAPE's selection.

    Attributes:
        langs: Languages (order of the first axis).
        entropy: ``[L, N]`` entropy of the normalised activation probabilities.
        candidates: ``[L, N]`` neurons whose largest probability exceeds ``threshold``.
        selected: ``[L, N]`` the kept low-entropy candidates.
        specific: ``[n_lang, L, N]`` kept neurons of each language.
        threshold: The probability threshold τ.
    """

    langs: tuple[str, ...]
    entropy: np.ndarray
    candidates: np.ndarray
    selected: np.ndarray
    specific: np.ndarray
    threshold: float

    def counts(self) -> pd.DataFrame:
        """Per language: number of specific neurons and share of all neurons."""
        n = self.specific.sum((1, 2))
        return pd.DataFrame({"language": list(self.langs), "neurons": n,
                             "share": n / self.selected.size})

    def layer_counts(self) -> pd.DataFrame:
        """``[layer x language]`` numbers of specific neurons."""
        return pd.DataFrame(self.specific.sum(2).T, columns=list(self.langs)).rename_axis("layer")


def _kth_smallest(x: np.ndarray, q: float) -> float:
    flat = x.ravel()
    k = min(max(round(flat.size * q), 1), flat.size)
    return float(np.partition(flat, k - 1)[k - 1])


def lape(probability: np.ndarray, langs: Sequence[str], *, quantile: float = 0.95,
         rate: float = 0.01, rate_of: Literal["all", "candidates"] = "all") -> LapeResult:
    """LAPE language-specific neurons from activation probabilities ``[n_lang, L, N]``.

    Args:
        probability: Per language, ``[L, N]`` share of tokens on which each neuron is active.
        langs: Language codes (first axis).
        quantile: Percentile of all probabilities that defines τ (0.95).
        rate: Share of neurons kept by entropy (0.01).
        rate_of: ``"all"`` (reference code: ``rate`` of all L·N neurons) or ``"candidates"``.
    """
    p = np.asarray(probability, dtype=np.float64)
    if p.ndim != 3 or p.shape[0] != len(langs):
        raise ValueError(f"probability must be [n_lang={len(langs)}, L, N], got {p.shape}")
    if rate_of not in ("all", "candidates"):
        raise ValueError(f"rate_of must be 'all' or 'candidates', got {rate_of!r}")
    total = p.sum(0, keepdims=True)
    q = np.divide(p, total, out=np.zeros_like(p), where=total > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.where(q > 0, q * np.log(q), 0.0).sum(0)
    tau = _kth_smallest(p, quantile)
    above = p > tau
    candidates = above.any(0)
    n_cand = int(candidates.sum())
    k = round(rate * (entropy.size if rate_of == "all" else n_cand))
    k = min(k, n_cand)
    selected = np.zeros(entropy.shape, dtype=bool)
    if k > 0:
        score = np.where(candidates, entropy, np.inf).ravel()
        selected.ravel()[np.argpartition(score, k - 1)[:k]] = True
    return LapeResult(tuple(langs), entropy, candidates, selected, above & selected[None], tau)


def expert_neurons(specific: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Expand expert flags ``[n_lang, L, E]`` to neuron flags ``[n_lang, L, N]``.

    Args:
        specific: e.g. ``classify_experts(...).specific``.
        labels: ``Partition.labels`` ``[L, N]`` (expert id of each neuron).
    """
    return expand_to_neurons(np.asarray(specific, dtype=bool), labels)


def overlap_table(lape_specific: np.ndarray, expert_specific: np.ndarray,
                  langs: Sequence[str]) -> pd.DataFrame:
    """Per language: LAPE neurons, expert neurons, their overlap, and the overlap by chance.

    Columns: ``lape``, ``experts`` (neuron counts), ``both``, ``jaccard``,
    ``share_of_lape`` (of LAPE's neurons, the share inside specific experts),
    ``share_of_experts``, ``expected_both`` (``lape · experts / (L·N)``, two random sets of
    those sizes) and ``enrichment`` (``both / expected_both``).
    """
    a = np.asarray(lape_specific, dtype=bool).reshape(len(langs), -1)
    b = np.asarray(expert_specific, dtype=bool).reshape(len(langs), -1)
    na, nb = a.sum(1), b.sum(1)
    both = (a & b).sum(1)
    union = (a | b).sum(1)
    expected = na * nb / a.shape[1]
    with np.errstate(invalid="ignore", divide="ignore"):
        return pd.DataFrame({
            "language": list(langs), "lape": na, "experts": nb, "both": both,
            "jaccard": np.where(union > 0, both / np.maximum(union, 1), np.nan),
            "share_of_lape": np.where(na > 0, both / np.maximum(na, 1), np.nan),
            "share_of_experts": np.where(nb > 0, both / np.maximum(nb, 1), np.nan),
            "expected_both": expected,
            "enrichment": np.where(expected > 0, both / np.where(expected > 0, expected, 1),
                                   np.nan),
        })
