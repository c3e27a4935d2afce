"""Heatmaps of per-language expert activation frequencies (notebook 02), and their explorer.

Input is a stack of frequency matrices ``freq[n_lang, L, E]``. Within each layer the experts
are drawn in one shared order (:func:`expert_order`: by mean frequency over all languages) so
panels can be compared by eye. Layer axes are labelled with real layer numbers: a panel of
layers 5–12 is ticked 5 and 12.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from babel.core.notebook import HEADLESS_ENV
from babel.profile.classes import ExpertClasses

#: Expert orders offered by the explorer.
ORDERS = ("mean frequency", "specificity of first language", "expert id")
#: What the explorer shows.
MODES = ("frequency", "difference")
#: The explorer's message when no language is selected.
NO_LANGUAGE = "No language selected: pick at least one language to draw its heatmap."


def expert_order(freq: np.ndarray) -> np.ndarray:
    """``[L, E]`` expert indices of each layer by decreasing mean frequency over languages."""
    return np.argsort(-freq.mean(0), axis=1)


def sort_experts(mat: np.ndarray, order: np.ndarray) -> np.ndarray:
    """``mat[L, E]`` with each layer's experts in ``order`` (``[L, E]`` indices)."""
    return np.take_along_axis(mat, order, axis=1)


def heatmap_grid(mats: Sequence[np.ndarray], titles: Sequence[str], *, cmap: str,
                 vmin: float, vmax: float, suptitle: str, label: str,
                 first_layer: int = 0) -> Figure:
    """One ``layers × experts`` heatmap panel per matrix, at most six per row.

    Args:
        mats: ``[layers, experts]`` matrices (the same shape).
        titles: Panel titles.
        cmap: Colormap name.
        vmin: Lower end of the color scale.
        vmax: Upper end of the color scale.
        suptitle: Figure title.
        label: Colorbar label.
        first_layer: Layer number of the matrices' first row (rows are consecutive layers).
    """
    n = len(mats)
    cols = min(6, n)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 1.9 * rows + 0.8),
                             squeeze=False, constrained_layout=True)
    for ax, mat, title in zip(axes.flat, mats, titles):
        im = ax.imshow(mat, aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax,
                       interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ticks = sorted({0, mat.shape[0] - 1})
        ax.set_yticks(ticks, [str(first_layer + t) for t in ticks])
        ax.set_ylabel("layer", fontsize=8, labelpad=-4)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.colorbar(im, ax=axes, shrink=0.6, label=label)
    fig.suptitle(suptitle)
    return fig


def frequency_heatmaps(freq: np.ndarray, langs: Sequence[str], *, model: str) -> Figure:
    """Frequency panels of every language (experts by mean frequency; color to the 99th
    percentile)."""
    order = expert_order(freq)
    return heatmap_grid([sort_experts(f, order) for f in freq], langs, cmap="viridis", vmin=0,
                        vmax=float(np.quantile(freq, 0.99)), label="activation frequency",
                        suptitle="Expert activation frequency (rows: layers; experts sorted by "
                                 f"mean) — {model}")


def difference_heatmaps(freq: np.ndarray, langs: Sequence[str], *, model: str) -> Figure:
    """Panels of frequency − mean over languages (same expert order; symmetric color scale
    to the 99.5th percentile of |difference|)."""
    order = expert_order(freq)
    diff = freq - freq.mean(0, keepdims=True)
    lim = float(np.quantile(np.abs(diff), 0.995))
    return heatmap_grid([sort_experts(d, order) for d in diff], langs, cmap="RdBu_r",
                        vmin=-lim, vmax=lim, label="frequency − mean over languages",
                        suptitle=f"Language-specific deviations (same expert order) — {model}")


def classes_figure(classes: ExpertClasses, counts: pd.DataFrame,
                   langs: Sequence[str]) -> Figure:
    """Left: class counts per layer; right: specific experts per layer, stacked by language.

    Args:
        classes: The expert classes.
        counts: :func:`babel.profile.classes.class_counts` of them.
        langs: Languages, in the order of ``classes.specific``.
    """
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
    counts.set_index("layer")[["co_activated", "specific_any", "rare"]].plot(
        ax=axes[0], marker="o", ms=3)
    axes[0].set(ylabel=f"experts (of {classes.co_activated.shape[1]})",
                title="expert classes by layer")
    spec = pd.DataFrame(classes.specific.sum(2).T, columns=list(langs))
    spec.plot.area(ax=axes[1], cmap="tab20", linewidth=0)
    axes[1].legend(ncol=2, fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                   frameon=False)
    axes[1].set(xlabel="layer", ylabel="specific experts",
                title="where the language-specific experts sit (stacked by language)")
    fig.tight_layout()
    return fig


def explorer_view(langs: Sequence[str], freq: np.ndarray, *, chosen: Sequence[str],
                  layers: tuple[int, int], order: str = ORDERS[0],
                  mode: str = MODES[0]) -> Figure | str:
    """What the explorer draws for one choice of its controls.

    Args:
        langs: Languages of ``freq``.
        freq: ``[n_lang, L, E]`` frequencies.
        chosen: Languages to draw (a subset of ``langs``).
        layers: First and last layer drawn (inclusive).
        order: One of :data:`ORDERS`: experts by mean frequency, by the first chosen
            language's deviation from the mean, or by id.
        mode: ``"frequency"`` or ``"difference"`` (from the mean over languages).

    Returns:
        The figure, or :data:`NO_LANGUAGE` when no language is chosen.
    """
    if order not in ORDERS or mode not in MODES:
        raise ValueError(f"order must be one of {ORDERS} and mode one of {MODES}")
    idx = [list(langs).index(x) for x in chosen]
    if not idx:
        return NO_LANGUAGE
    lo, hi = layers
    diff = freq - freq.mean(0, keepdims=True)
    mats = freq if mode == "frequency" else diff
    if order == "mean frequency":
        sort = expert_order(freq)
    elif order == "specificity of first language":
        sort = np.argsort(-diff[idx[0]], axis=1)
    else:
        sort = np.tile(np.arange(freq.shape[2]), (freq.shape[1], 1))
    v = float(np.quantile(np.abs(mats), 0.99))
    return heatmap_grid([sort_experts(mats[i], sort)[lo:hi + 1] for i in idx],
                        [langs[i] for i in idx],
                        cmap="viridis" if mode == "frequency" else "RdBu_r",
                        vmin=0 if mode == "frequency" else -v, vmax=v, label=mode,
                        suptitle=f"layers {lo}–{hi}", first_layer=lo)


def explorer(langs: Sequence[str], freq: np.ndarray, *, initial: int = 4) -> Any:
    """An ipywidgets explorer: pick languages, a layer range, the expert order and the mode;
    the heatmap (:func:`explorer_view`) redraws. Headless, its first drawing is the output.

    Args:
        langs: Languages of ``freq``.
        freq: ``[n_lang, L, E]`` frequencies.
        initial: Languages selected at first.

    Returns:
        The widget (a ``VBox``); its ``redraw()`` method redraws by hand. Run headless
        (``BABEL_HEADLESS`` set, as :func:`babel.core.notebook.run_notebook` does) no frontend
        will answer the widgets, so the first view is drawn as a plain figure (shown, not
        returned: None).
    """
    if os.environ.get(HEADLESS_ENV):
        explorer_view(langs, freq, chosen=list(langs[:initial]), layers=(0, freq.shape[1] - 1))
        plt.show()
        return None
    import ipywidgets as widgets

    n_layers = freq.shape[1]
    lang_pick = widgets.SelectMultiple(options=list(langs), value=tuple(langs[:initial]),
                                       description="languages", rows=8)
    layer_pick = widgets.IntRangeSlider(value=(0, n_layers - 1), min=0, max=n_layers - 1,
                                        description="layers")
    order_pick = widgets.Dropdown(options=ORDERS, description="order")
    mode_pick = widgets.ToggleButtons(options=MODES, description="show")
    out = widgets.Output()

    def redraw(*_: Any) -> None:
        with out:
            out.clear_output(wait=True)
            view = explorer_view(langs, freq, chosen=lang_pick.value, layers=layer_pick.value,
                                 order=order_pick.value, mode=mode_pick.value)
            if isinstance(view, str):
                print(view)
            else:
                plt.show()

    for w in (lang_pick, layer_pick, order_pick, mode_pick):
        w.observe(redraw, names="value")
    box = widgets.VBox([widgets.HBox([lang_pick, widgets.VBox([layer_pick, order_pick,
                                                               mode_pick])]), out])
    box.redraw = redraw
    box.controls = {"languages": lang_pick, "layers": layer_pick, "order": order_pick,
                    "mode": mode_pick}
    redraw()
    return box
