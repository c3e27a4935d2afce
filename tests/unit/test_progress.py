"""What a headless run prints while it runs (babel.core.progress): sections, cells, bars rebuilt
from the kernel's messages, the start and end lines and the summary table.

No kernel starts: the messages are shaped as ipykernel sends them (recorded from a real run
of a tqdm loop) and the runner's papermill is a fake.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import time

import papermill
import pytest
from papermill.engines import papermill_engines

from babel.core import notebook, paths
from babel.core import progress as pg

CELLS = [
    {"cell_type": "markdown", "source": "# 02 · Title\nwhat it shows"},
    {"cell_type": "code", "source": "model = 'm'", "metadata": {"tags": ["parameters"]}},
    {"cell_type": "markdown", "source": "## The profiles\ncounted per language"},
    {"cell_type": "code", "source": "profiles = run()"},
    {"cell_type": "code", "source": "   "},
    {"cell_type": "markdown", "source": "Plain text, no heading."},
    {"cell_type": "code", "source": "table"},
    {"cell_type": "markdown", "source": ["## Heatmaps: layers ", "× experts"]},
    {"cell_type": "code", "source": "fig"},
]


def test_duration():
    assert [pg.duration(s) for s in (None, 4.4, 59.6, 509, 3725)] == [
        "?", "4 s", "1 min 00 s", "8 min 29 s", "1 h 02 min"]


def test_sections_and_code_cells():
    assert pg.cell_sections(CELLS) == [
        "02 · Title", "02 · Title", "The profiles", "The profiles", "The profiles",
        "The profiles", "The profiles", "Heatmaps: layers × experts", "Heatmaps: layers × experts"]
    assert pg.code_cells(CELLS) == [1, 3, 6, 8]  # the blank cell does not run
    assert pg.heading("text\n### Deep *one* ###") == "Deep *one*"
    assert pg.heading("#not a heading") is None


def test_expected_seconds_only_from_a_finished_run():
    record = {"notebooks": {"a": {"status": "finished", "wall_s": 49.3},
                            "b": {"status": "failed", "wall_s": 3.0}}}
    assert pg.expected_seconds(record, "a") == 49.3
    assert pg.expected_seconds(record, "b") is None
    assert pg.expected_seconds({}, "a") is None


def test_plain_tqdm_on_stderr_is_a_bar_then_a_line():
    s = pg.StreamLines()
    assert s.feed("\rplain:   0%|          | 0/30") == [] and s.bar == "plain:   0%|          | 0/30"
    assert s.feed("\rplain:  50%|█████     | 15/30\rplain: 1") == []
    assert s.bar == "plain: 1"  # the unfinished redraw is the bar
    assert s.feed("00%|██████████| 30/30\n") == ["plain: 100%|██████████| 30/30"]  # leave=True
    assert s.bar == ""
    assert s.feed("note: a warning\nsecond") == ["note: a warning"]
    assert s.flush() == "second" and s.bar == ""
    s.feed("\rbar: 10%")
    s.feed("\r          \r")  # leave=False clears the line
    assert s.bar == "" and s.flush() == ""


def _open(comm_id: str, model: str, **state) -> dict:
    return {"msg_type": "comm_open",
            "content": {"comm_id": comm_id, "target_name": "jupyter.widget",
                        "data": {"state": {"_model_name": model, **state}, "buffer_paths": []}}}


def _update(comm_id: str, **state) -> dict:
    return {"msg_type": "comm_msg", "content": {
        "comm_id": comm_id, "data": {"method": "update", "state": state, "buffer_paths": []}}}


def _tqdm_widget(prefix: str = "") -> list[dict]:
    """The messages of ``tqdm.notebook`` opening a bar (as ipywidgets 8 sends them)."""
    return [_open(f"{prefix}p", "FloatProgressModel", value=0.0, max=2000.0, bar_style=""),
            _open(f"{prefix}l", "HTMLModel", value=""),
            _open(f"{prefix}r", "HTMLModel", value=""),
            _open(f"{prefix}layout", "LayoutModel"),
            _open(f"{prefix}box", "HBoxModel", children=[f"IPY_MODEL_{prefix}l",
                                                         f"IPY_MODEL_{prefix}p",
                                                         f"IPY_MODEL_{prefix}r"])]


def test_tqdm_widget_bar_from_comm_messages():
    w = pg.WidgetBars()
    assert not any(w.feed(m) for m in _tqdm_widget()) and w.text == ""
    assert w.feed(_update("l", value="profile\u2007en:\u2007\u200745%"))
    assert w.feed(_update("r", value="\u2007900/2000\u2007[00:06&lt;00:07,\u2007150tok/s]"))
    assert w.feed(_update("p", value=900.0))
    assert w.text == "profile en:  45% |████      | 900/2000 [00:06<00:07, 150tok/s]"
    assert not w.feed(_update("layout", visibility="hidden"))  # not part of the bar
    assert w.feed({"msg_type": "comm_close", "content": {"comm_id": "box", "data": {}}})
    assert w.text == ""  # leave=False: the box closed
    for m in _tqdm_widget("b"):
        w.feed(m)
    w.feed(_update("bl", value="load:\u2007100%"))
    assert w.text.startswith("load: 100%")
    assert w.feed(_update("bp", bar_style="success")) and w.text == ""  # leave=True: done
    assert not w.feed(_update("bl", value="load again"))  # an ended bar stays ended
    # other widgets (the explorer's) are no bar
    w.feed(_open("x", "HTMLModel", value="hi"))
    assert not w.feed(_update("x", value="there")) and w.text == ""


def _progress(tty: bool, **kw) -> tuple[pg.NotebookProgress, io.StringIO]:
    buf = io.StringIO()
    return pg.NotebookProgress("02_activation_profiling", printer=pg.Printer(buf, tty=tty),
                               **kw), buf


def test_notebook_progress_lines_in_a_log():
    p, buf = _progress(False, position=(2, 5), expected_s=49.3)
    p.begin(CELLS)
    for index in (1, 3, 6, 8):
        p.cell_started(cell=CELLS[index], cell_index=index)
        if index == 3:
            p.message({"msg_type": "stream", "content": {"name": "stderr",
                                                         "text": "CacheWarning: old\n\rbar 5%"}})
            p.message({"msg_type": "stream", "content": {"name": "stdout", "text": "table\n"}})
            assert "| bar 5%" in p.status_text()
            assert p.status_text().startswith("[02] cell 2/4, 0 s of ~49 s")
        p.cell_finished(cell=CELLS[index], cell_index=index)
    p.end("finished", output=paths.PROJ_ROOT / "x.ipynb")
    lines = buf.getvalue().splitlines()
    assert lines[0] == "[2/5] 02_activation_profiling: started (its last run took 49 s)"
    assert lines[1:5] == ["[02] § 02 · Title — cell 1/4, 0 s",
                          "[02] § The profiles — cell 2/4, 0 s",
                          "[02] CacheWarning: old",
                          "[02] § Heatmaps: layers × experts — cell 4/4, 0 s"]
    assert lines[5].startswith("[2/5] 02_activation_profiling: finished in 0 s (its last run: "
                               "49 s) -> ")
    assert "table" not in buf.getvalue()  # the kernel's stdout stays in the notebook
    assert "\r" not in buf.getvalue()  # no redraws in a log


def test_a_log_gets_a_status_line_every_so_often():
    p, buf = _progress(False, log_every_s=0.05)
    p.begin(CELLS)
    p.cell_started(cell_index=3)
    time.sleep(0.3)
    p.end("interrupted")  # Ctrl-C: no end line, the runner says what was kept
    status = [line for line in buf.getvalue().splitlines() if line.startswith("[02] cell 2/4")]
    assert status and buf.getvalue().splitlines()[-1] in status
    assert not p._thread.is_alive()


def test_a_terminal_redraws_the_status_line_in_place():
    p, buf = _progress(True)
    p.begin(CELLS)
    p.cell_started(cell_index=3)
    for m in _tqdm_widget():
        p.message(m)
    p.message(_update("l", value="profile\u2007en:\u200710%"))
    p.end("failed")
    out = buf.getvalue()
    assert "\r\x1b[K[02] cell 2/4, 0 s | profile en: 10% |" in out
    assert out.endswith("\r\x1b[K02_activation_profiling: failed in 0 s\n")


def test_the_engine_is_registered_with_papermill():
    assert papermill_engines.get_engine(pg.ENGINE) is pg.ProgressEngine


def test_summary_table():
    record = {"notebooks": {
        "00_a": {"status": "finished", "wall_s": 12.0, "outputs": ["figures/x_m.png"]},
        "01_b": {"status": "finished", "wall_s": 509.0,
                 "outputs": ["figures/y_m.png", "build/results/t.parquet"]}}}
    table = pg.summary_table(["00_a", "01_b"], record, expected={"00_a": 11.0, "01_b": None},
                             executed={"00_a": "ex/00_a.ipynb", "01_b": "ex/01_b.ipynb"})
    lines = table.splitlines()
    assert lines[0].split() == ["notebook", "status", "time", "last", "run", "outputs"]
    assert lines[1].split() == ["00_a", "finished", "12", "s", "11", "s", "ex/00_a.ipynb"]
    assert lines[2].strip() == "figures/x_m.png"
    assert lines[3].split()[:4] == ["01_b", "finished", "8", "min"] and "-" in lines[3].split()
    assert [line.strip() for line in lines[4:6]] == ["figures/y_m.png", "build/results/t.parquet"]
    assert lines[-1].split() == ["total", "8", "min", "41", "s"]
    # the outputs column starts at the same place on every line
    assert len({line.index(o) for line, o in zip(lines[1:6], (
        "ex/00_a", "figures/x", "ex/01_b", "figures/y", "build/"))}) == 1


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """Two notebooks run by a fake papermill that writes an executed copy."""
    (tmp_path / "params").mkdir()
    for name in ("default", "smoke"):
        (tmp_path / "params" / f"{name}.yaml").write_text("common: {model: tiny}\n")
    monkeypatch.setattr(paths, "PARAMS_DIR", tmp_path / "params")
    monkeypatch.setattr(paths, "EXECUTED_DIR", tmp_path / "executed")
    monkeypatch.setenv("BABEL_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("BABEL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("BABEL_FIGURES_DIR", str(tmp_path / "figures"))
    monkeypatch.setattr(notebook, "notebook_names", lambda: ["00_a", "01_b"])
    monkeypatch.setattr(notebook, "to_ipynb", lambda name: tmp_path / f"{name}.ipynb")
    monkeypatch.setattr(notebook, "notebook_defaults", lambda ipynb: {"model": "m"})
    calls: list[dict] = []

    def execute(src, out, *, parameters, **kw):
        calls.append(kw)
        fig = tmp_path / "figures" / f"{src.rsplit('/', 1)[-1][:4]}_m.png"
        fig.parent.mkdir(parents=True, exist_ok=True)
        fig.write_bytes(b"png")
        with open(out, "w") as fh:
            json.dump({"cells": []}, fh)

    monkeypatch.setattr(papermill, "execute_notebook", execute)
    return calls


def test_reproduce_runs_through_the_progress_engine_and_ends_with_a_table(fake, capsys):
    args = argparse.Namespace(command="all", names=[], params="smoke", p=[], r=[])
    assert notebook.run_from_args(args) == 0
    first = capsys.readouterr().err
    assert all(kw["engine_name"] == pg.ENGINE for kw in fake)
    assert [kw["progress"].position for kw in fake] == [(1, 2), (2, 2)]
    assert [kw["progress"].expected_s for kw in fake] == [None, None]
    assert re.search(r"^00_a +finished", first, re.MULTILINE) and re.search(r"^01_b +finished", first,
                                                                     re.MULTILINE)
    assert "00_a_m.png" in first and str(paths.EXECUTED_DIR / "smoke" / "01_b.ipynb") in first
    fake.clear()
    assert notebook.run_from_args(args) == 0  # the second run knows how long the first took
    assert all(kw["progress"].expected_s is not None for kw in fake)
    one = argparse.Namespace(command="run", names=["00_a"], params="smoke", p=[], r=[])
    capsys.readouterr()
    assert notebook.run_from_args(one) == 0
    assert capsys.readouterr().err == ""  # one notebook: its own lines only (none: fake)


def test_run_notebook_without_progress_uses_papermills_own_behaviour(fake):
    notebook.run_notebook("00_a", params="smoke", progress=False)
    assert "progress" not in fake[0]
