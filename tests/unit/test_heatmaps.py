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


def _overlaps(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


@pytest.mark.parametrize("layers", [(7, 7), (5, 6), (0, 12)])
def test_layer_tick_labels_do_not_overlap_the_axis_label(layers):
    fig = heatmaps.explorer_view(["en", "fr", "ar"], _freq(), chosen=["en"], layers=layers)
    heatmaps.figure_png(fig)  # lays the figure out as the explorer draws it
    (ax,) = _panels(fig)
    renderer = fig.canvas.get_renderer()
    label = ax.yaxis.label.get_window_extent(renderer)
    ticks = [t.get_window_extent(renderer) for t in ax.get_yticklabels()]
    assert ticks and not any(_overlaps(label, t) for t in ticks)


def test_explorer_views_stay_out_of_pyplot():
    fig = heatmaps.explorer_view(["en", "fr"], _freq(2), chosen=["fr"], layers=(5, 12))
    assert not plt.get_fignums()  # nothing for the inline backend to flush into the log
    png = heatmaps.figure_png(fig)
    assert png.startswith(b"\x89PNG")
    assert heatmaps.describe(fig) == "fr · layers 5–12 · experts by mean frequency · frequency"


def _widget(**kw):
    pytest.importorskip("ipywidgets")
    return heatmaps.explorer(["en", "fr", "ar"], _freq(), **kw)


def test_explorer_widget_redraws_its_image_on_every_control():
    box = _widget(initial=2)
    image, caption = box.views["image"], box.views["caption"]
    assert bytes(image.value).startswith(b"\x89PNG")
    assert caption.value.startswith("en, fr · layers 0–12")
    seen = [bytes(image.value)]
    changes = [("languages", ("fr", "ar")), ("layers", (5, 12)),
               ("order", "specificity of first language"), ("mode", "difference"),
               ("layers", (7, 7))]
    for control, value in changes:
        box.controls[control].value = value
        assert bytes(image.value) not in seen, f"{control} = {value!r} did not redraw"
        seen.append(bytes(image.value))
        assert box.views["message"].value == ""
    assert caption.value == ("fr, ar · layer 7 · experts by specificity of first language"
                             " · difference")
    assert not plt.get_fignums()


def test_explorer_widget_says_so_on_empty_selection():
    box = _widget()
    assert box.controls["languages"].value == ("en", "fr", "ar")
    assert box.controls["layers"].value == (0, 12)
    box.controls["languages"].value = ()
    assert heatmaps.NO_LANGUAGE in box.views["message"].value
    assert box.views["image"].layout.display == "none" and box.views["caption"].value == ""
    box.controls["languages"].value = ("ar",)
    assert box.views["message"].value == "" and box.views["image"].layout.display is None
    assert box.views["caption"].value.startswith("ar · ")


def test_explorer_widget_shows_a_failing_view_instead_of_raising(monkeypatch):
    box = _widget()

    def fail(*a, **k):
        raise RuntimeError("boom")

    monkeypatch.setattr(heatmaps, "explorer_view", fail)
    box.controls["mode"].value = "difference"
    assert "RuntimeError: boom" in box.views["message"].value


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
    assert not plt.get_fignums()  # displayed as a PNG, not left to pyplot
