"""Expert classes across languages: co-activated, language-specific and rare (one definition)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import pandas as pd

from babel.core.config import ExpertClassSpec


@dataclasses.dataclass(frozen=True)
class ExpertClasses:
    """Boolean ``[L, E]`` classes of experts across languages, with the thresholds used.

    Definitions (``f[a, l, e]`` = frequency of expert (l, e) in language a; ``r`` = the
    expected frequency if selection were uniform, i.e. the rule's share):

    - co-activated: ``f >= high`` in every language;
    - rare: ``f < low`` in every language;
    - specific to language a: ``f[a] >= high`` and ``(f[a] - mean_b f[b]) / std_b f[b] >= z``
      over the other languages b (high in a, unusually so against the rest).
    """

    co_activated: np.ndarray
    rare: np.ndarray
    specific: np.ndarray  # [n_lang, L, E]
    high: float
    low: float
    z: float

    @property
    def specific_any(self) -> np.ndarray:
        return self.specific.any(0)


def classify_experts(freq: np.ndarray, *, high: float, low: float,
                     z: float = 3.0) -> ExpertClasses:
    """Co-activated, language-specific and rare experts from ``[n_lang, L, E]`` frequencies."""
    co = (freq >= high).all(0)
    rare = (freq < low).all(0)
    spec = (freq >= high) & (specificity_z(freq) >= z)
    return ExpertClasses(co, rare, spec, high, low, z)


def specificity_z(freq: np.ndarray) -> np.ndarray:
    """``[n_lang, L, E]``: z-score of each language's frequency against the other languages'.

    ``(f[a] - mean_{b≠a} f[b]) / std_{b≠a} f[b]`` (population std of the others), vectorised.
    """
    n = freq.shape[0]
    total = freq.sum(0, keepdims=True)
    sq = (freq ** 2).sum(0, keepdims=True)
    mean_o = (total - freq) / (n - 1)
    var_o = np.maximum((sq - freq ** 2) / (n - 1) - mean_o ** 2, 0.0)
    return (freq - mean_o) / np.sqrt(var_o + 1e-12)


def class_counts(classes: ExpertClasses, langs: Sequence[str]) -> pd.DataFrame:
    """Per layer: numbers of co-activated, rare and language-specific experts."""
    df = pd.DataFrame({
        "layer": np.arange(classes.co_activated.shape[0]),
        "co_activated": classes.co_activated.sum(1),
        "rare": classes.rare.sum(1),
        "specific_any": classes.specific_any.sum(1),
    })
    for i, lang in enumerate(langs):
        df[f"specific_{lang}"] = classes.specific[i].sum(1)
    return df


def classify(freq: np.ndarray, spec: ExpertClassSpec, share: float) -> ExpertClasses:
    """:func:`classify_experts` under the experiment's one class definition ``spec``."""
    high, low = spec.thresholds(share)
    return classify_experts(freq, high=high, low=low, z=spec.specific_z)


#: The paper's counts for Llama-2-7B (32 layers x 256 experts): "about half" of the experts
#: highly activated in all languages, "over 1000" with low frequency in all languages.
PAPER_EXPERTS, PAPER_CO_ACTIVATED_SHARE, PAPER_RARE = 8192, 0.5, 1000


def class_sensitivity(freq: np.ndarray, share: float, spec: ExpertClassSpec, *,
                      high_factors: Sequence[float] = tuple(np.round(np.arange(0.25, 2.51, 0.05), 2)),
                      low_factors: Sequence[float] = tuple(np.round(np.arange(0.05, 1.01, 0.05), 2)),
                      zs: Sequence[float] = tuple(np.round(np.arange(1.0, 5.01, 0.25), 2)),
                      ) -> pd.DataFrame:
    """Class counts as curves over their cut-offs (the other cut-offs at ``spec``'s values).

    - co-activated against ``high_factor`` (frequency >= high_factor·r in every language);
    - rare against ``low_factor`` (frequency < low_factor·r in every language);
    - specific (to at least one language) against ``specific_z`` (high at spec.high_factor).

    Returns:
        Long table: ``class, cutoff, value, experts, share``; one row per (class, cut-off).
    """
    lo, hi = freq.min(0).ravel(), freq.max(0).ravel()
    n = lo.size
    z = specificity_z(freq)
    best_z = np.where(freq >= spec.high_factor * share, z, -np.inf).max(0).ravel()
    rows = [("co_activated", "high_factor", h, int((lo >= h * share).sum())) for h in high_factors]
    rows += [("rare", "low_factor", f, int((hi < f * share).sum())) for f in low_factors]
    rows += [("specific_any", "specific_z", v, int((best_z >= v).sum())) for v in zs]
    df = pd.DataFrame(rows, columns=["class", "cutoff", "value", "experts"])
    df["share"] = df.experts / n
    return df


def paper_cutoffs(freq: np.ndarray, share: float) -> dict[str, float]:
    """The cut-offs at which this model would show the paper's counts.

    ``co_activated_high_factor``: the largest high factor at which at least half of the experts
    are co-activated; ``rare_low_factor``: the smallest low factor at which at least
    1000/8192 of the experts are rare. (Shares, so models of other sizes compare.)
    """
    lo, hi = np.sort(freq.min(0).ravel()), np.sort(freq.max(0).ravel())
    n = lo.size
    k_co = int(np.ceil(PAPER_CO_ACTIVATED_SHARE * n))
    k_rare = int(np.ceil(PAPER_RARE / PAPER_EXPERTS * n))
    return {"co_activated_high_factor": float(lo[n - k_co] / share),
            "rare_low_factor": float(np.nextafter(hi[k_rare - 1], np.inf) / share)}
