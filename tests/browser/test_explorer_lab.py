"""Notebook 02's heatmap explorer, clicked in JupyterLab by headless Chromium.

JupyterLab starts from .venv-lab as ``make lab`` starts it, serving a temporary folder that
holds a copy of ``notebooks/02_activation_profiling.py`` with the smoke parameters in a cell
after the parameters cell (papermill's way). The copy is a jupytext ``.py``: it must open as a
notebook (the shipped default viewer), on the ``babel`` kernel. The test runs all cells from
the Run menu, then changes the languages, the layer range, the expert order and the mode in
the explorer and asserts that each change redraws the heatmap (new PNG bytes, the caption read
back from the figure's titles names the chosen languages and layers), that 30 quick changes
each redraw, that an empty selection says so, and that nothing reaches an error output or
JupyterLab's log console. Lab never saves the copy (autosave is off). Screenshots go to
``build/screenshots/explorer-*.png``.

One notebook run: about 2 minutes on 2 cores (gemma-3-270m, 8 items per language).
"""

from __future__ import annotations

import ast
import base64
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from babel.core import paths
from babel.core.notebook import load_params
from babel.figures import heatmaps

NOTEBOOK = "02_activation_profiling"
#: Notebook 02 on smoke parameters in Lab: loading the model, profiling, the figures.
RUN_TIMEOUT_S = 900
REDRAW_TIMEOUT_S = 30
STDERR = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
ERROR_TEXT = re.compile(r"Traceback|^\w*(Error|Exception)\b", re.MULTILINE)


def smoke_copy(folder: Path) -> Path:
    """``notebooks/02_activation_profiling.py`` with the smoke parameters injected after its
    parameters cell, written to ``folder`` as a jupytext py:percent file."""
    import jupytext
    from nbformat.v4 import new_code_cell

    nb = jupytext.read(paths.NOTEBOOKS_DIR / f"{NOTEBOOK}.py")
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    declared = [t.id for node in ast.parse(nb.cells[at].source).body
                if isinstance(node, ast.Assign) for t in node.targets if isinstance(t, ast.Name)]
    values = load_params("smoke", NOTEBOOK)
    source = "# Parameters: the smoke set\n" + "\n".join(
        f"{k} = {values[k]!r}" for k in declared if k in values)
    nb.cells.insert(at + 1, new_code_cell(source, metadata={"tags": ["injected-parameters"]}))
    out = folder / f"{NOTEBOOK}_smoke.py"
    jupytext.write(nb, out, fmt="py:percent")
    return out


@dataclass
class View:
    """What the explorer should show: the state of its four controls."""

    langs: list[str]
    layers: tuple[int, int]
    order: str = heatmaps.ORDERS[0]
    mode: str = heatmaps.MODES[0]

    def caption(self) -> str:
        lo, hi = self.layers
        span = f"layer {lo}" if lo == hi else f"layers {lo}–{hi}"
        return f"{', '.join(self.langs)} · {span} · experts by {self.order} · {self.mode}"


@dataclass
class Explorer:
    """The explorer widget in the page, and the images it has shown."""

    driver: object
    all_langs: list[str]
    view: View
    images: list[bytes] = field(default_factory=list)
    redraw_s: list[float] = field(default_factory=list)

    def find(self, css: str):
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, f".babel-explorer {css}")

    def finds(self, css: str) -> list:
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, f".babel-explorer {css}")

    def text(self, name: str) -> str:
        return self.find(f".babel-explorer-{name}").text.strip()

    def src(self) -> str:
        return self.find("img.babel-explorer-image").get_attribute("src") or ""

    def png(self) -> bytes:
        """The bytes of the image shown (its blob URL, fetched in the page)."""
        b64 = self.driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "fetch(arguments[0].src).then(r => r.arrayBuffer()).then(b => {"
            " let s = ''; const u = new Uint8Array(b);"
            " for (let i = 0; i < u.length; i++) s += String.fromCharCode(u[i]);"
            " done(btoa(s)); }).catch(e => done('ERROR ' + e));",
            self.find("img.babel-explorer-image"))
        assert not b64.startswith("ERROR"), b64
        return base64.b64decode(b64)

    def change(self, what: str, act) -> bytes:
        """Do ``act`` (which updates :attr:`view`), wait for the redraw, return the PNG."""
        before = self.src()
        t0 = time.perf_counter()
        act()
        want = self.view.caption()
        deadline = t0 + REDRAW_TIMEOUT_S
        while time.perf_counter() < deadline:
            if self.src() != before and self.text("caption") == want:
                break
            time.sleep(0.05)
        else:
            raise AssertionError(f"{what}: no redraw within {REDRAW_TIMEOUT_S} s (caption "
                                 f"{self.text('caption')!r}, wanted {want!r}; message "
                                 f"{self.text('message')!r})")
        self.redraw_s.append(time.perf_counter() - t0)
        png = self.png()
        assert png.startswith(b"\x89PNG") and png not in self.images[-1:], \
            f"{what}: the image did not change"
        assert self.text("message") == "", f"{what}: {self.text('message')}"
        self.images.append(png)
        return png

    # the controls, as a user works them
    def toggle_language(self, lang: str) -> None:
        from selenium.webdriver.common.by import By

        def act():
            # a click on an option of a multiple select toggles it (as ctrl+click does)
            self.find("select[multiple]").find_element(
                By.CSS_SELECTOR, f'option[value="{lang}"]').click()
            chosen = set(self.view.langs) ^ {lang}
            self.view.langs = [x for x in self.all_langs if x in chosen]
        if set(self.view.langs) == {lang}:  # the last one: the message, no image
            act()
            return
        self.change(f"toggle {lang}", act)

    def layer_key(self, handle: str, key: str, step: int) -> None:
        def act():
            self.find(f".noUi-handle-{handle}").send_keys(key)
            lo, hi = self.view.layers
            self.view.layers = (lo + step, hi) if handle == "lower" else (lo, hi + step)
        self.change(f"layers {handle} {step:+d}", act)

    def set_order(self, order: str) -> None:
        from selenium.webdriver.support.ui import Select

        def act():
            Select(self.find(".widget-dropdown select")).select_by_value(order)
            self.view.order = order
        self.change(f"order {order}", act)

    def set_mode(self, mode: str) -> None:
        def act():
            next(b for b in self.finds("button") if b.text.strip() == mode).click()
            self.view.mode = mode
        self.change(f"mode {mode}", act)

    def shot(self, folder: Path, name: str) -> Path:
        from selenium.webdriver.common.by import By

        box = self.driver.find_element(By.CSS_SELECTOR, ".babel-explorer")
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'start'})", box)
        time.sleep(0.3)
        out = folder / f"explorer-{name}.png"
        box.screenshot(str(out))
        return out


def _errors(driver) -> list[str]:
    from selenium.webdriver.common.by import By

    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, STDERR)
            if ERROR_TEXT.search(e.text)]


def _log_entries(driver) -> str:
    """The log console's badge: hidden while nothing was logged (else '1 new messages…')."""
    from selenium.webdriver.common.by import By

    item = driver.find_element(By.CSS_SELECTOR, ".jp-LogConsoleStatusItem")
    if "lm-mod-hidden" in (item.get_attribute("class") or ""):
        return ""
    return item.get_attribute("title") or item.get_attribute("innerHTML")[:300]


def _run_all(driver) -> None:
    from selenium.webdriver.common.by import By

    menu = next(e for e in driver.find_elements(By.CSS_SELECTOR, ".lm-MenuBar-item")
                if e.text.strip() == "Run")
    menu.click()
    driver.find_element(By.CSS_SELECTOR, '.lm-Menu-item[data-command="runmenu:run-all"]').click()


def _wait(driver, what: str, ready, timeout: float) -> float:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        errors = _errors(driver)
        if errors:
            raise AssertionError(f"an error output while waiting for {what}: {errors[0][-3000:]}")
        if ready():
            return time.perf_counter() - t0
        time.sleep(1)
    raise AssertionError(f"{what}: not within {timeout:.0f} s")


@pytest.mark.timeout(RUN_TIMEOUT_S + 600)
def test_explorer_redraws_in_jupyterlab(browser, start_lab, screenshots, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    root = tmp_path / "lab-root"
    root.mkdir()
    copy = smoke_copy(root)
    saved = copy.read_bytes()
    langs = list(load_params("smoke", NOTEBOOK)["languages"])
    with start_lab(root, tmp_path / "lab-state") as lab:
        browser.get(lab.page(copy.name))
        _wait(browser, "the notebook to open", lambda: browser.find_elements(
            By.CSS_SELECTOR, ".jp-NotebookPanel .jp-Cell") or browser.find_elements(
            By.CSS_SELECTOR, ".jp-FileEditor"), 120)
        assert not browser.find_elements(By.CSS_SELECTOR, ".jp-FileEditor"), \
            "the .py notebook opened as a text file: the jupytext default viewer is not set"

        def kernel() -> str:
            names = browser.find_elements(By.CSS_SELECTOR, ".jp-NotebookPanel .jp-KernelName")
            return names[0].text if names else ""

        _wait(browser, "the babel kernel (the notebook's kernelspec)", lambda: (
            kernel() == "Python 3 (babel)" and browser.find_elements(
                By.CSS_SELECTOR, '.jp-Notebook-ExecutionIndicator[data-status="idle"]')), 120)
        browser.save_screenshot(str(screenshots / "explorer-00-notebook-opened.png"))

        _run_all(browser)
        ran = _wait(browser, "the notebook run (the explorer's first image)", lambda: (
            browser.find_elements(By.CSS_SELECTOR, "img.babel-explorer-image[src^='blob:']")
            and browser.find_elements(
                By.CSS_SELECTOR, '.jp-Notebook-ExecutionIndicator[data-status="idle"]')),
            RUN_TIMEOUT_S)
        prompts = [p.text for p in browser.find_elements(
            By.CSS_SELECTOR, ".jp-CodeCell .jp-InputArea-prompt")]
        assert prompts and all(re.fullmatch(r"\[\d+\]:", p) for p in prompts), prompts

        ex = Explorer(browser, langs, View(list(langs), (0, 0)))
        top = ex.find(".noUi-handle-upper").get_attribute("aria-valuemax")
        ex.view.layers = (0, int(float(top)))
        assert ex.text("caption") == ex.view.caption(), "the first view"
        ex.images.append(ex.png())
        ex.shot(screenshots, "01-first-view")

        # languages: down to en, then ar comes in
        for lang in langs[1:]:
            ex.toggle_language(lang)
        assert ex.view.langs == ["en"]
        ex.toggle_language("ar")
        assert ex.text("caption").startswith("en, ar · ")
        ex.shot(screenshots, "02-languages-en-ar")

        # layer range 5..12, by keyboard on the slider's handles
        for _ in range(5):
            ex.layer_key("lower", Keys.ARROW_RIGHT, +1)
        while ex.view.layers[1] > 12:
            ex.layer_key("upper", Keys.ARROW_LEFT, -1)
        assert " · layers 5–12 · " in ex.text("caption")
        ex.shot(screenshots, "03-layers-5-12")

        # the expert order, then the difference from the mean
        ex.set_order("specificity of first language")
        ex.set_order("expert id")
        ex.set_mode("difference")
        ex.shot(screenshots, "04-expert-id-difference")

        # an empty selection says so; a language brings the image back
        ex.toggle_language("ar")
        ex.toggle_language("en")
        _wait(browser, "the empty-selection message",
              lambda: ex.text("message") == heatmaps.NO_LANGUAGE, REDRAW_TIMEOUT_S)
        assert not ex.find("img.babel-explorer-image").is_displayed()
        ex.shot(screenshots, "05-empty-selection")
        ex.toggle_language("fr")
        assert ex.find("img.babel-explorer-image").is_displayed()

        # 30 quick changes: each one redraws
        quick = len(ex.redraw_s)
        for i in range(30):
            kind = i % 3
            if kind == 0:
                ex.set_order(heatmaps.ORDERS[(heatmaps.ORDERS.index(ex.view.order) + 1) % 3])
            elif kind == 1:
                ex.set_mode(heatmaps.MODES[1 - heatmaps.MODES.index(ex.view.mode)])
            elif ex.view.layers[0] < ex.view.layers[1]:
                ex.layer_key("lower", Keys.ARROW_RIGHT, +1)
            else:
                ex.layer_key("lower", Keys.ARROW_LEFT, -1)
        times = sorted(ex.redraw_s[quick:])
        assert len(times) == 30
        ex.shot(screenshots, "06-after-30-changes")
        print(f"\nnotebook run {ran:.0f} s; 30 redraws: median {times[15]:.2f} s, "
              f"slowest {times[-1]:.2f} s")

        assert not _errors(browser)
        assert _log_entries(browser) == "", "output went to the log console: " + \
            _log_entries(browser)
        browser.save_screenshot(str(screenshots / "explorer-07-lab-window.png"))
    assert copy.read_bytes() == saved, "JupyterLab wrote the notebook without a save"
