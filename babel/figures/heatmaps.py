"""Heatmaps of per-language expert activation frequencies (notebook 02), and their explorer.

Input is a stack of frequency matrices ``freq[n_lang, L, E]``. Within each layer the experts
are drawn in one shared order (:func:`expert_order`: by mean frequency over all languages) so
panels can be compared by eye. Layer axes are labelled with real layer numbers: a panel of
layers 5–12 is ticked 5 and 12.

The explorer's views are figures outside pyplot, rendered to PNG bytes with the Agg canvas and
set as an ``ipywidgets.Image`` value: nothing is "shown", so a redraw cannot land anywhere but
in the widget (a pyplot figure made in a widget callback is flushed by the inline backend at
the next cell run, or into JupyterLab's log console).
"""

from __future__ import annotations

import html
import io
import os
from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
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
                 first_layer: int = 0, pyplot: bool = True) -> Figure:
    """One ``layers × experts`` heatmap panel per matrix, at most six per row.

    The layer axis is ticked at the first and last layer drawn (one tick for one layer), with
    real layer numbers; its label sits left of the tick labels.

    Args:
        mats: ``[layers, experts]`` matrices (the same shape).
        titles: Panel titles.
        cmap: Colormap name.
        vmin: Lower end of the color scale.
        vmax: Upper end of the color scale.
        suptitle: Figure title.
        label: Colorbar label.
        first_layer: Layer number of the matrices' first row (rows are consecutive layers).
        pyplot: Make the figure through pyplot (a notebook cell shows it); otherwise a bare
            :class:`~matplotlib.figure.Figure` that nothing shows (:func:`figure_png`).
    """
    n = len(mats)
    cols = min(6, n)
    rows = int(np.ceil(n / cols))
    size = (2.6 * cols, 1.9 * rows + 0.8)
    fig = (plt.figure(figsize=size, layout="constrained") if pyplot
           else Figure(figsize=size, layout="constrained"))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, mat, title in zip(axes.flat, mats, titles):
        im = ax.imshow(mat, aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax,
                       interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ticks = sorted({0, mat.shape[0] - 1})
        ax.set_yticks(ticks, [str(first_layer + t) for t in ticks])
        ax.set_ylabel("layer", fontsize=8)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.colorbar(im, ax=axes, shrink=0.6, label=label)
    fig.suptitle(suptitle, wrap=True)  # one panel is narrower than the title
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
        The figure (outside pyplot: see :func:`figure_png`), or :data:`NO_LANGUAGE` when no
        language is chosen.
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
    span = f"layer {lo}" if lo == hi else f"layers {lo}–{hi}"
    return heatmap_grid([sort_experts(mats[i], sort)[lo:hi + 1] for i in idx],
                        [langs[i] for i in idx],
                        cmap="viridis" if mode == "frequency" else "RdBu_r",
                        vmin=0 if mode == "frequency" else -v, vmax=v, label=mode,
                        suptitle=f"{span} · experts by {order} · {mode}",
                        first_layer=lo, pyplot=False)


def figure_png(fig: Figure, *, dpi: int = 90) -> bytes:
    """The figure as PNG bytes, drawn by the Agg canvas (no pyplot, no display)."""
    FigureCanvasAgg(fig)  # attaches itself as fig.canvas
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def describe(fig: Figure) -> str:
    """A view's panel titles and figure title, read back from the figure: the explorer's
    caption under the image (``"fr, ar · layers 5–12 · experts by expert id · frequency"``)."""
    titles = [ax.get_title() for ax in fig.axes if ax.images]
    head = fig.get_suptitle()
    return " · ".join([", ".join(titles)] + ([head] if head else []))


def explorer(langs: Sequence[str], freq: np.ndarray, *, initial: int = 4) -> Any:
    """An ipywidgets explorer: pick languages, a layer range, the expert order and the mode;
    the heatmap (:func:`explorer_view`) redraws. Headless, its first drawing is the output.

    Every redraw sets the PNG bytes of an ``Image`` widget and a caption of the panels drawn
    (:func:`describe`); no language, or a view that fails, shows a message in the explorer
    instead of the image.

    Args:
        langs: Languages of ``freq``.
        freq: ``[n_lang, L, E]`` frequencies.
        initial: Languages selected at first.

    Returns:
        The widget (a ``VBox``); its ``redraw()`` method redraws by hand and ``controls``
        holds the four controls. Run headless (``BABEL_HEADLESS`` set, as
        :func:`babel.core.notebook.run_notebook` does) no frontend will answer the widgets, so
        the first view is displayed as a PNG image (returns None).
    """
    first = {"chosen": list(langs[:initial]), "layers": (0, freq.shape[1] - 1)}
    if os.environ.get(HEADLESS_ENV):
        from IPython.display import Image, display

        display(Image(data=figure_png(explorer_view(langs, freq, **first))))
        return None
    import ipywidgets as widgets

    n_layers = freq.shape[1]
    lang_pick = widgets.SelectMultiple(options=list(langs), value=tuple(first["chosen"]),
                                       description="languages", rows=8)
    layer_pick = widgets.IntRangeSlider(value=first["layers"], min=0, max=n_layers - 1,
                                        description="layers", continuous_update=False)
    order_pick = widgets.Dropdown(options=ORDERS, description="order")
    mode_pick = widgets.ToggleButtons(options=MODES, description="show")
    # not stretched to the column's width: a one-panel view keeps its size
    image = widgets.Image(format="png",
                          layout=widgets.Layout(max_width="100%", align_self="flex-start"))
    caption = widgets.HTML()
    message = widgets.HTML()
    for w, name in ((image, "image"), (caption, "caption"), (message, "message")):
        w.add_class(f"babel-explorer-{name}")

    def redraw(*_: Any) -> None:
        try:
            view = explorer_view(langs, freq, chosen=lang_pick.value, layers=layer_pick.value,
                                 order=order_pick.value, mode=mode_pick.value)
            png = None if isinstance(view, str) else figure_png(view)
        except Exception as err:  # noqa: BLE001 - from a callback it would reach only the log
            view, png = f"Could not draw this view: {type(err).__name__}: {err}", None
        if png is None:
            message.value = f"<b>{html.escape(view)}</b>"
            caption.value = ""
            image.layout.display = "none"
            return
        image.value = png
        caption.value = html.escape(describe(view))
        message.value = ""
        image.layout.display = None

    for w in (lang_pick, layer_pick, order_pick, mode_pick):
        w.observe(redraw, names="value")
    controls = widgets.HBox([lang_pick, widgets.VBox([layer_pick, order_pick, mode_pick])])
    box = widgets.VBox([controls, message, image, caption])
    box.add_class("babel-explorer")
    box.redraw = redraw
    box.controls = {"languages": lang_pick, "layers": layer_pick, "order": order_pick,
                    "mode": mode_pick}
    box.views = {"image": image, "caption": caption, "message": message}
    redraw()
    return box
