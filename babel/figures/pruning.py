"""Figures of notebook 04 (pruning): kept experts per layer, perplexity vs k, the
cross-language matrix and measured vs theoretical speedups. Each function returns a figure."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import pandas as pd

from babel.prune.experiments import MASK_METHODS


def kept_per_layer(alloc: pd.DataFrame, *, share: float, title: str = ""):
    """Share of each layer's experts kept, global vs adaptive (:func:`allocation_table`)."""
    fig, ax = plt.subplots(figsize=(7, 3.2))
    alloc.plot(x="layer", y=["global", "adaptive"], marker="o", ms=3, ax=ax)
    ax.axhline(share, color="grey", lw=0.8, ls="--")
    ax.set(ylabel="share of experts kept", title=title)
    fig.tight_layout()
    return fig


def perplexity_vs_k(sweep: pd.DataFrame, languages: Sequence[str], *, title: str = ""):
    """Perplexity / dense per language against k; bars: range over seeds of random masks."""
    fig, axes = plt.subplots(1, len(languages), figsize=(2.6 * len(languages), 3.2),
                             sharey=True, squeeze=False)
    for ax, lang in zip(axes[0], languages, strict=True):
        d = sweep[sweep.language == lang]
        for m, style in zip(MASK_METHODS, ["o-", "s--", "^:", "v:"], strict=True):
            g = (d[(d.method == m) | (d.k == 1.0)].assign(ratio=lambda x: 1 + x.rise)
                 .groupby("k").ratio)
            mean, lo, hi = g.mean(), g.min(), g.max()
            ax.errorbar(mean.index, mean, yerr=[mean - lo, hi - mean], fmt=style, ms=3,
                        capsize=2, label=m)
        ax.set(title=lang, xlabel="kept share k", yscale="log")
        ax.invert_xaxis()
    axes[0, 0].set_ylabel("perplexity / dense (log)")
    axes[0, -1].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def cross_language_matrix(cross: pd.DataFrame, *, title: str = ""):
    """Heatmap of rises (%) with the value in every cell: mask language x evaluated one."""
    n = cross.shape[1]
    fig, ax = plt.subplots(figsize=(1 + 0.8 * n, 1 + 0.7 * n))
    values = cross.values.astype(float)
    im = ax.imshow(100 * values, cmap="magma_r")
    ax.set_xticks(range(n), cross.columns)
    ax.set_yticks(range(len(cross.index)), cross.index)
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            ax.text(j, i, f"{100 * values[i, j]:.1f}", ha="center", va="center", fontsize=7,
                    color="white" if values[i, j] > values.mean() else "black")
    ax.set(xlabel="evaluated on", ylabel="mask from", title=title)
    fig.colorbar(im, ax=ax, shrink=0.8)
    fig.tight_layout()
    return fig


def speedups(speed: pd.DataFrame):
    """Measured and FLOP speedups against k, body and end to end, one line per model."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2), sharey=True)
    for ax, part in zip(axes, ["body", "end_to_end"], strict=True):
        for name, d in speed.groupby("model"):
            ax.plot(d.k, d[f"theoretical_{part}"], "--", marker="o", ms=3,
                    label=f"{name} (FLOPs)")
            ax.plot(d.k, d[f"measured_{part}"], "-", marker="s", ms=3,
                    label=f"{name} (measured)")
        ax.axhline(1, color="grey", lw=0.8)
        ax.set(title=part.replace("_", " "), xlabel="kept share k")
        ax.invert_xaxis()
    axes[0].set_ylabel("speedup over dense")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    return fig
