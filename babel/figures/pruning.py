"""Figures of notebook 04 (pruning): kept experts per layer, perplexity vs k, the
cross-language matrix and measured vs theoretical speedups, with 95% bootstrap intervals
where the numbers have them. Each function returns a figure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import pandas as pd

from babel.prune.experiments import LAYER_COUNTS, MASK_METHODS


def kept_per_layer(alloc: pd.DataFrame, *, share: float, title: str = ""):
    """Share of each layer's experts kept, global vs adaptive (:func:`allocation_table`)."""
    fig, ax = plt.subplots(figsize=(7, 3.2))
    alloc.plot(x="layer", y=["global", "adaptive"], marker="o", ms=3, ax=ax)
    ax.axhline(share, color="grey", lw=0.8, ls="--")
    ax.set(ylabel="share of experts kept", title=title)
    fig.tight_layout()
    return fig


def _label(method: str) -> str:
    return f"{method} — diagnostic" if method == LAYER_COUNTS else method


def perplexity_vs_k(sweep: pd.DataFrame, languages: Sequence[str], *,
                    intervals: pd.DataFrame | None = None, title: str = ""):
    """Perplexity / dense per language against k, with error bars.

    Bars: the 95% bootstrap interval over evaluation items of each rise (``intervals``: the
    per-language table of :func:`babel.prune.experiments.sweep_intervals`; random masks: of
    the mean over seeds); without it, the range over seeds of the random masks. The
    layer-counts random mask is drawn faint and labelled a diagnostic.
    """
    fig, axes = plt.subplots(1, len(languages), figsize=(2.6 * len(languages), 3.2),
                             sharey=True, squeeze=False)
    styles = ["o-", "s--", "v:", "D-.", "^:"]
    for ax, lang in zip(axes[0], languages, strict=True):
        d = sweep[sweep.language == lang]
        for m, style in zip(MASK_METHODS, styles, strict=True):
            g = (d[(d.method == m) | (d.k == 1.0)].assign(ratio=lambda x: 1 + x.rise)
                 .groupby("k").ratio)
            mean, lo, hi = g.mean(), g.min(), g.max()
            if intervals is not None:
                iv = intervals[(intervals.language == lang) & (intervals.method == m)]
                iv = iv.set_index("k").reindex(mean.index)
                lo, hi = (1 + iv.low).fillna(mean), (1 + iv.high).fillna(mean)
            if mean.size <= 1:  # the method is absent at every pruned k
                continue
            ax.errorbar(mean.index, mean, yerr=[(mean - lo).clip(lower=0),
                                                (hi - mean).clip(lower=0)],
                        fmt=style, ms=3, capsize=2, label=_label(m),
                        alpha=0.45 if m == LAYER_COUNTS else 1.0)
        ax.set(title=lang, xlabel="kept share k", yscale="log")
        ax.invert_xaxis()
    axes[0, 0].set_ylabel("perplexity / dense (log)")
    axes[0, -1].legend(fontsize=6)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def cross_language_matrix(cross: pd.DataFrame, *, intervals: Mapping | None = None,
                          title: str = ""):
    """Heatmap of rises (%) with the value in every cell: mask language x evaluated one.

    With ``intervals`` (``{mask language: {evaluated language: [low, high]}}``, the cross
    summary's) each cell also shows its 95% interval (%).
    """
    n = cross.shape[1]
    fig, ax = plt.subplots(figsize=(1 + 0.8 * n, 1 + 0.7 * n))
    values = cross.values.astype(float)
    im = ax.imshow(100 * values, cmap="magma_r")
    ax.set_xticks(range(n), cross.columns)
    ax.set_yticks(range(len(cross.index)), cross.index)
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            txt = f"{100 * values[i, j]:.1f}"
            iv = (intervals or {}).get(cross.index[i], {}).get(cross.columns[j])
            if iv is not None:
                txt += f"\n[{100 * iv[0]:.1f}, {100 * iv[1]:.1f}]"
            ax.text(j, i, txt, ha="center", va="center", fontsize=7 if iv is None else 5,
                    color="white" if values[i, j] > values.mean() else "black")
    ax.set(xlabel="evaluated on", ylabel="mask from", title=title)
    fig.colorbar(im, ax=ax, shrink=0.8)
    fig.tight_layout()
    return fig


def speedups(speed: pd.DataFrame):
    """Measured (95% bootstrap intervals over timing rounds) and FLOP speedups against k."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2), sharey=True)
    for ax, part in zip(axes, ["body", "end_to_end"], strict=True):
        for name, d in speed.groupby("model"):
            ax.plot(d.k, d[f"theoretical_{part}"], "--", marker="o", ms=3,
                    label=f"{name} (FLOPs)")
            v = d[f"measured_{part}"]
            lo, hi = (d.get(f"measured_{part}_low", v).fillna(v),
                      d.get(f"measured_{part}_high", v).fillna(v))
            ax.errorbar(d.k, v, yerr=[(v - lo).clip(lower=0), (hi - v).clip(lower=0)],
                        fmt="-s", ms=3, capsize=2, label=f"{name} (measured, 95% CI)")
        ax.axhline(1, color="grey", lw=0.8)
        ax.set(title=part.replace("_", " "), xlabel="kept share k")
        ax.invert_xaxis()
    axes[0].set_ylabel("speedup over dense")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def methods_frontier(table: pd.DataFrame, *, title: str = ""):
    """Median perplexity rise over languages against measured body speedup, one point per
    (method, k) of the pruning-methods frontier (:func:`babel.prune.methods.run_frontier`),
    one line per method; the random floor dashed."""
    keys = ["method", "compensation", "allocation"]
    med = (table.groupby([*keys, "k"], sort=False)
           .agg(rise=("rise", "median"), speed=("body_speedup", "first")).reset_index())
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for (m, c, a), g in med.groupby(keys, sort=False):
        g = g.sort_values("k", ascending=False)
        x = g.speed if g.speed.notna().all() else 1.0 / g.k
        ax.plot(x, 100 * g.rise, marker="o", ms=3, ls="--" if m == "random" else "-",
                label=f"{m} · {c} · {a}", alpha=0.9 if m != "random" else 0.6)
    ax.set_yscale("symlog", linthresh=10)
    ax.set(xlabel="measured body speedup (×)", ylabel="median perplexity rise (%)",
           title=title)
    ax.legend(fontsize=6, ncol=2, loc="upper left")
    fig.tight_layout()
    return fig
