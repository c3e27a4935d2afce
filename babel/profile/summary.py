"""Summaries of the per-language profiles (notebook 02): tokens, deviations, class findings.

- :func:`language_summary`: tokens counted, profiling time and speed per language (from the
  settings saved beside each cached profile), with family and script.
- :func:`mean_abs_deviation`: per language, the mean |frequency − mean over languages|.
- :func:`class_findings` / :func:`specific_per_language`: the counts of co-activated, rare
  and language-specific experts (the one class definition, :mod:`babel.profile.classes`).
- :func:`paper_comparison`: those counts set against what the paper reports for Llama-2-7B.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from babel.construct.partition import Partition
from babel.core.config import ExpertClassSpec, ProfileConfig
from babel.data.languages import get_language
from babel.profile.cache import load_meta, profile_file_for
from babel.profile.classes import ExpertClasses

#: The paper's Llama-2-7B numbers: about half of the experts co-activated, >1000 of 8192 rare.
PAPER_CO_ACTIVATED_SHARE = 0.5
PAPER_RARE = 1000
PAPER_EXPERTS = 8192
#: Co-activated shares counted as "about half".
ABOUT_HALF = (0.35, 0.65)


def language_summary(model_name: str, partition: Partition, cfg: ProfileConfig,
                     langs: Sequence[str]) -> pd.DataFrame:
    """Items, tokens and timing of each cached profile, with family and script.

    Args:
        model_name: The model name the profiles were cached under.
        partition: The partition they were computed with.
        cfg: Their profile settings.
        langs: Language codes (profiles must exist).

    Returns:
        Index ``language``; columns ``items`` (corpus items profiled), ``items_sha256`` (the
        first 12 hex digits of the hash of their ids: equal in every language when the
        profiles are content-parallel), ``tokens``, ``seconds``, ``tokens_per_second``,
        ``family``, ``script``.
    """
    keys = ("items", "items_sha256", "tokens", "seconds", "tokens_per_second")
    rows = []
    for lang in langs:
        meta = load_meta(profile_file_for(model_name, partition, cfg, lang))
        info = get_language(lang)
        meta["items_sha256"] = (meta.get("items_sha256") or "")[:12]
        rows.append({**{k: meta.get(k) for k in keys}, "language": lang,
                     "family": info.family, "script": info.script})
    return pd.DataFrame(rows).set_index("language")


def mean_abs_deviation(freq: np.ndarray, langs: Sequence[str]) -> pd.Series:
    """Per language, the mean over experts of ``|f[a] − mean_b f[b]|``, largest first."""
    dev = np.abs(freq - freq.mean(0, keepdims=True)).mean((1, 2))
    return pd.Series(dev, index=list(langs), name="mean |deviation|").sort_values(
        ascending=False)


def class_findings(classes: ExpertClasses) -> dict[str, Any]:
    """Counts and shares of the expert classes over all ``L × E`` experts, and thresholds."""
    return {
        "experts": int(classes.co_activated.size),
        "co_activated": int(classes.co_activated.sum()),
        "co_activated_share": float(classes.co_activated.mean()),
        "rare": int(classes.rare.sum()),
        "rare_share": float(classes.rare.mean()),
        "specific_any": int(classes.specific_any.sum()),
        "high": classes.high, "low": classes.low, "specific_z": classes.z,
    }


def specific_per_language(classes: ExpertClasses, langs: Sequence[str]) -> dict[str, int]:
    """Number of experts specific to each language."""
    return {lang: int(classes.specific[i].sum()) for i, lang in enumerate(langs)}


def paper_comparison(findings: dict[str, Any], *, model: str, n_languages: int) -> str:
    """Three sentences setting :func:`class_findings` against the paper's Llama-2-7B numbers.

    The co-activated share is "about half, as in the paper" within :data:`ABOUT_HALF`, else
    "far fewer" or "more" than the paper's ~half.
    """
    co = findings["co_activated_share"]
    lo, hi = ABOUT_HALF
    verdict = ("about half, as in the paper" if lo <= co <= hi
               else "far fewer than the paper's ~half" if co < lo
               else "more than the paper's ~half")
    lines = [
        (f"{model}: {findings['co_activated']} of {findings['experts']} experts ({co:.1%}) "
         f"are co-activated (frequency ≥ {findings['high']:.3f} in all {n_languages} "
         f"languages): {verdict}."),
        (f"{findings['rare']} experts ({findings['rare_share']:.1%}) are rare (frequency < "
         f"{findings['low']:.3f} in every language); the paper's >{PAPER_RARE} of "
         f"{PAPER_EXPERTS} is {PAPER_RARE / PAPER_EXPERTS:.1%}."),
        (f"{findings['specific_any']} experts are specific to at least one language "
         f"(z ≥ {findings['specific_z']})."),
    ]
    return "\n".join(lines)


def cutoff_text(cutoffs: Mapping[str, float], spec: ExpertClassSpec) -> str:
    """Where this model would show the paper's counts, against this run's cut-offs."""
    return (f"About half of the experts would be co-activated at high = "
            f"{cutoffs['co_activated_high_factor']:.2f}·r (this run: {spec.high_factor:g}·r); "
            f"1000/8192 would be rare at low = {cutoffs['rare_low_factor']:.2f}·r (this run: "
            f"{spec.low_factor:g}·r).")
