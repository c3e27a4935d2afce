"""Figures of notebook 01: expert cohesion per layer, expert scores and selections per layer."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure
from torch import Tensor


def cohesion_figure(table: pd.DataFrame, *, title: str) -> Figure:
    """Mean within-expert cosine per layer, one line per column of ``table``."""
    fig, ax = plt.subplots(figsize=(7, 3.5))
    table.plot(ax=ax, marker="o", ms=3)
    ax.set(ylabel="mean within-expert cosine", title=title)
    fig.tight_layout()
    return fig


def scores_and_selection_figure(scores: Tensor, per_layer: pd.DataFrame, *,
                                layers: Sequence[int], uniform: float,
                                title: str) -> Figure:
    """Left: score histograms of some layers; right: selected experts per token by layer.

    Args:
        scores: ``[T, L, E]`` expert scores.
        per_layer: :func:`babel.construct.diagnostics.selection_per_layer`.
        layers: Layers whose score distribution is drawn (those past the last layer skipped).
        uniform: Experts per layer under uniform selection (``r * E``), drawn as a line.
        title: Title of the right panel.
    """
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for layer in [x for x in layers if x < scores.shape[1]]:
        axes[0].hist(scores[:, layer].flatten().numpy(), bins=60, histtype="step",
                     density=True, label=f"layer {layer}")
    axes[0].set(xlabel="expert score Σ|h|", ylabel="density", yscale="log",
                title="score distribution")
    axes[0].legend(fontsize=8)
    per_layer["selected experts / token"].plot.bar(ax=axes[1], color="tab:blue")
    axes[1].axhline(uniform, color="k", ls="--", lw=1, label="uniform share")
    axes[1].set(ylabel="experts selected per token", title=title)
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    return fig
