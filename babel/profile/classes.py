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
    n = freq.shape[0]
    total = freq.sum(0, keepdims=True)
    sq = (freq ** 2).sum(0, keepdims=True)
    mean_o = (total - freq) / (n - 1)
    var_o = np.maximum((sq - freq ** 2) / (n - 1) - mean_o ** 2, 0.0)
    zs = (freq - mean_o) / np.sqrt(var_o + 1e-12)
    spec = (freq >= high) & (zs >= z)
    return ExpertClasses(co, rare, spec, high, low, z)


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
