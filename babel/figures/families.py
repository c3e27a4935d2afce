"""Figures of the language-family analysis (notebook 03): clustermap, layer curves, LAPE."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from babel.core import paths
from babel.families.similarity import language_labels
from babel.families.stats import cluster_tree


def _palette(values: Sequence[str], cmap: str) -> dict[str, tuple]:
    import matplotlib.pyplot as plt

    uniq = sorted(set(values))
    colours = plt.get_cmap(cmap, max(len(uniq), 2))
    return {v: colours(i) for i, v in enumerate(uniq)}


def clustermap(sim: np.ndarray, langs: Sequence[str], *, title: str = "",
               fields: Sequence[str] = ("family", "script"), tree: np.ndarray | None = None,
               centre: float | None = 0.0):
    """seaborn clustermap of a similarity matrix with family and script colour bars.

    Returns:
        The seaborn ``ClusterGrid`` (``.figure`` to save).
    """
    import matplotlib.patches as mpatches
    import seaborn as sns

    tree = cluster_tree(sim) if tree is None else tree
    df = pd.DataFrame(sim, index=list(langs), columns=list(langs))
    colour_bars, handles = {}, []
    for f, cmap in zip(fields, ("tab20", "Set3", "tab10")):
        lab = language_labels(langs, f)
        pal = _palette(lab, cmap)
        colour_bars[f] = pd.Series([pal[v] for v in lab], index=df.index)
        handles += [mpatches.Patch(color=c, label=f"{f}: {v}") for v, c in pal.items()]
    n = len(langs)
    g = sns.clustermap(df, row_linkage=tree, col_linkage=tree,
                       row_colors=pd.DataFrame(colour_bars), cmap="vlag", center=centre,
                       figsize=(max(6, 0.42 * n + 4), max(5, 0.42 * n + 2)),
                       dendrogram_ratio=(0.12, 0.12), cbar_pos=(0.02, 0.85, 0.03, 0.12))
    g.ax_heatmap.set_xlabel("")
    g.ax_heatmap.set_ylabel("")
    g.figure.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5),
                    fontsize=7, frameon=False)
    if title:
        g.figure.suptitle(title, y=1.02)
    return g


def save_figure(fig, content: str, model: str) -> str | None:
    """Save under :func:`babel.core.paths.figure_file`; return the file name (None: no figure)."""
    if fig is None:
        return None
    path = paths.figure_file(content, model)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path.name


def layer_separation_plot(tables: Mapping[str, pd.DataFrame], n_layers: Mapping[str, int], *,
                          threshold: float = 2.0):
    """Per-layer separation z (one panel per model, one line per labelling).

    Args:
        tables: ``{model: layer_separation table}`` (``layer, labelling, z``).
        n_layers: ``{model: number of layers}`` (depth is shown relative: layer / last).
        threshold: A dashed reference line (z = 2: roughly more than chance).

    Returns:
        The matplotlib figure (None when there is no table).
    """
    import matplotlib.pyplot as plt

    if not tables:
        return None
    fig, axes = plt.subplots(1, len(tables), figsize=(5.5 * len(tables), 3.8), sharey=True,
                             squeeze=False)
    for ax, (name, table) in zip(axes[0], tables.items()):
        for lab, grp in table.groupby("labelling"):
            ax.plot(grp.layer / max(n_layers[name] - 1, 1), grp.z, marker="o", ms=3, label=lab)
        ax.axhline(threshold, color="grey", lw=0.8, ls="--")
        ax.set(title=name, xlabel="relative depth (layer / last layer)")
    axes[0, 0].set_ylabel("separation z (vs label shuffles)")
    axes[0, 0].legend()
    fig.tight_layout()
    return fig


def lape_layers_plot(per_layer: Mapping[str, pd.Series]):
    """LAPE language-specific neurons per layer (all languages), one line per model.

    Args:
        per_layer: ``{model: counts indexed by layer}``.

    Returns:
        The matplotlib figure (None when there is no model).
    """
    import matplotlib.pyplot as plt

    if not per_layer:
        return None
    fig, ax = plt.subplots(figsize=(7, 3.2))
    for name, counts in per_layer.items():
        ax.plot(counts.index / max(len(counts) - 1, 1), counts.values, marker="o", ms=3,
                label=name)
    ax.set(xlabel="relative depth", ylabel="LAPE language-specific neurons",
           title="LAPE neurons per layer (all languages)")
    ax.legend()
    fig.tight_layout()
    return fig
