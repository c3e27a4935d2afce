"""Heatmap figures of notebook 02 and the explorer's redraw logic (no browser)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

from babel.figures import heatmaps
from babel.profile.classes import class_counts, classify_experts


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _freq(n_lang=3, n_layers=13, n_exp=6, seed=0):
    return np.random.default_rng(seed).uniform(0, 0.4, (n_lang, n_layers, n_exp))


def _panels(fig):
    return [ax for ax in fig.axes if ax.images]


def _yticks(ax):
    return [t.get_text() for t in ax.get_yticklabels()]


def test_expert_order_sorts_by_mean_frequency():
    f = np.zeros((2, 1, 3))
    f[:, 0] = [[0.1, 0.5, 0.3], [0.1, 0.3, 0.3]]
    assert heatmaps.expert_order(f).tolist() == [[1, 2, 0]]


def test_grids_have_one_panel_per_language_and_real_layer_ticks():
    f = _freq()
    fig = heatmaps.frequency_heatmaps(f, ["en", "fr", "ar"], model="m")
    panels = _panels(fig)
    assert [ax.get_title() for ax in panels] == ["en", "fr", "ar"]
    assert _yticks(panels[0]) == ["0", "12"]
    order = heatmaps.expert_order(f)
    assert np.array_equal(panels[1].images[0].get_array(), heatmaps.sort_experts(f[1], order))
    diff = heatmaps.difference_heatmaps(f, ["en", "fr", "ar"], model="m")
    lo, hi = _panels(diff)[0].images[0].get_clim()
    assert lo == -hi and hi > 0  # symmetric around "no deviation"


def test_explorer_view_labels_real_layers_of_a_range():
    f = _freq()
    fig = heatmaps.explorer_view(["en", "fr", "ar"], f, chosen=["fr"], layers=(5, 12),
                                 order="expert id")
    (ax,) = _panels(fig)
    assert ax.get_title() == "fr" and _yticks(ax) == ["5", "12"]
    assert np.array_equal(ax.images[0].get_array(), f[1, 5:13])  # expert id: unsorted
    one = heatmaps.explorer_view(["en", "fr", "ar"], f, chosen=["en"], layers=(7, 7))
    assert _yticks(_panels(one)[0]) == ["7"]


def test_explorer_view_difference_and_specificity_order():
    f = _freq()
    fig = heatmaps.explorer_view(["en", "fr", "ar"], f, chosen=["ar", "en"], layers=(0, 12),
                                 order="specificity of first language", mode="difference")
    panels = _panels(fig)
    assert [ax.get_title() for ax in panels] == ["ar", "en"]
    first = panels[0].images[0].get_array()
    assert (np.diff(first, axis=1) <= 1e-12).all()  # ar's deviations, decreasing per layer


def test_empty_selection_says_so_instead_of_drawing_english():
    assert heatmaps.explorer_view(["en", "fr"], _freq(2), chosen=[], layers=(0, 12)) \
        == heatmaps.NO_LANGUAGE
    assert not plt.get_fignums()


def test_explorer_widget_redraws_on_empty_selection(capsys):
    pytest.importorskip("ipywidgets")
    box = heatmaps.explorer(["en", "fr", "ar"], _freq())
    assert box.controls["languages"].value == ("en", "fr", "ar")
    assert box.controls["layers"].value == (0, 12)
    n_figs = len(plt.get_fignums())
    box.controls["languages"].value = ()
    assert heatmaps.NO_LANGUAGE in capsys.readouterr().out
    assert len(plt.get_fignums()) == n_figs  # nothing drawn


def test_classes_figure_stacks_specific_experts_by_language():
    f = np.full((2, 3, 4), 0.2)
    f[0, 1, 2] = 0.9
    c = classify_experts(f, high=0.2, low=0.05, z=0.5)
    fig = heatmaps.classes_figure(c, class_counts(c, ["en", "fr"]), ["en", "fr"])
    left, right = fig.axes[:2]
    assert [t.get_text() for t in left.get_legend().get_texts()] == [
        "co_activated", "specific_any", "rare"]
    assert left.get_lines()[0].get_ydata().tolist() == [4, 4, 4]  # all co-activated
    assert c.specific.sum(2).tolist() == [[0, 1, 0], [0, 0, 0]]  # en's one, at layer 1
    assert [t.get_text() for t in right.get_legend().get_texts()] == ["en", "fr"]


def test_headless_explorer_draws_the_first_view_without_widgets(monkeypatch):
    from babel.core.notebook import HEADLESS_ENV

    monkeypatch.setenv(HEADLESS_ENV, "1")
    calls = []
    real = heatmaps.explorer_view
    monkeypatch.setattr(heatmaps, "explorer_view",
                        lambda *a, **k: calls.append(k) or real(*a, **k))
    rng = np.random.default_rng(0)
    assert heatmaps.explorer(["en", "fr", "de"], rng.random((3, 4, 8)), initial=2) is None
    assert calls == [{"chosen": ["en", "fr"], "layers": (0, 3)}]  # drawn once, no widget
