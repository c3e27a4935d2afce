"""Figures of notebook 00: FFN gate activity per layer."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure


def gate_activity_figure(table: pd.DataFrame, *, model: str) -> Figure:
    """One line per language (columns of ``table``) over layers (its index)."""
    fig, ax = plt.subplots(figsize=(7, 4))
    table.plot(ax=ax, marker="o", ms=3)
    ax.set(xlabel="layer", ylabel="share of neurons with gate·x > 0",
           title=f"FFN gate activity by layer — {model}")
    ax.legend(ncol=3, fontsize=8)
    fig.tight_layout()
    return fig
