"""Figure of the expert-class counts as curves over their cut-offs (notebook 02)."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from babel.core.config import ExpertClassSpec

_PANELS = (("co_activated", "high_factor", "co-activated: f ≥ high·r in every language"),
           ("rare", "low_factor", "rare: f < low·r in every language"),
           ("specific_any", "specific_z", "specific to ≥ 1 language: z ≥ cut-off"))


def class_sensitivity_figure(table: pd.DataFrame, spec: ExpertClassSpec, *,
                             paper: Mapping[str, float] | None = None,
                             title: str = "") -> Figure:
    """Three panels: each class's share of experts against its cut-off.

    The dashed line marks the experiment's cut-off; the dotted line (when ``paper`` is given,
    from :func:`babel.profile.classes.paper_cutoffs`) marks where this model would show the
    paper's counts (about half co-activated, 1000/8192 rare).
    """
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    ours = {"high_factor": spec.high_factor, "low_factor": spec.low_factor,
            "specific_z": spec.specific_z}
    theirs = {"high_factor": (paper or {}).get("co_activated_high_factor"),
              "low_factor": (paper or {}).get("rare_low_factor")}
    for ax, (cls, cutoff, label) in zip(axes, _PANELS, strict=True):
        part = table[table["class"] == cls]
        ax.plot(part.value, 100 * part.share, marker="o", ms=3)
        ax.axvline(ours[cutoff], color="k", ls="--", lw=0.8, label="this run")
        if theirs.get(cutoff) is not None:
            ax.axvline(theirs[cutoff], color="tab:red", ls=":", lw=1.2,
                       label="paper's count reached")
        ax.set(xlabel=cutoff, ylabel="% of experts", title=label)
        ax.title.set_fontsize(9)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
