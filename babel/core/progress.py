"""What a headless notebook run shows while it runs: notebook, section, cell, time and bars.

:func:`babel.core.notebook.run_notebook` executes through the papermill engine registered
here (:data:`ENGINE`). It is papermill's own nbclient engine with a client that also watches
the kernel's messages, and prints to stderr:

- one line when a notebook starts, with the time its last run took (from ``run.json``);
- one line per section (the markdown heading above the cell) with the cell number and the
  elapsed time;
- a status line, redrawn in place on a terminal, with the current cell, the elapsed time and
  the tqdm bar of a long loop (tokens/s), rebuilt from the kernel's messages: a
  ``tqdm.notebook`` bar arrives as widget updates, a plain tqdm bar as ``\\r`` updates on
  stderr. Written to a file or a pipe, the status becomes a line every
  :data:`LOG_EVERY_S` seconds instead;
- the kernel's other stderr lines (warnings), prefixed with the notebook;
- one line when the notebook ends.

The kernel's stdout (tables, prints) is not repeated: the executed notebook keeps it.
:func:`summary_table` is printed after a run of several notebooks.
"""

from __future__ import annotations

import contextlib
import html
import re
import shutil
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from papermill.clientwrap import PapermillNotebookClient
from papermill.engines import NBClientEngine, papermill_engines
from papermill.log import logger as papermill_logger
from papermill.utils import merge_kwargs, remove_args

#: The name :func:`babel.core.notebook.run_notebook` passes to papermill as ``engine_name``.
ENGINE = "babel-progress"
#: Written to a file or a pipe, the status line is printed this often (seconds).
LOG_EVERY_S = 30.0
#: On a terminal, the status line is redrawn this often (seconds).
TTY_EVERY_S = 1.0
_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.+?)\s*#*\s*$", re.MULTILINE)
_CLEAR = "\r\x1b[K"


def duration(seconds: float | None) -> str:
    """``49 s``, ``8 min 29 s``, ``1 h 02 min`` (``?`` for None)."""
    if seconds is None:
        return "?"
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def heading(markdown: str) -> str | None:
    """The first markdown heading's text (``## The profiles`` → ``The profiles``), or None."""
    m = _HEADING.search(markdown)
    return m.group(2).strip() if m else None


def cell_sections(cells: Sequence[Mapping[str, Any]]) -> list[str | None]:
    """For each cell, the heading of the section it is in: the last markdown heading above
    it (a heading cell's own heading for itself), None before the first."""
    out: list[str | None] = []
    current: str | None = None
    for cell in cells:
        if cell.get("cell_type") == "markdown":
            src = cell.get("source", "")
            current = heading("".join(src) if isinstance(src, list) else src) or current
        out.append(current)
    return out


def code_cells(cells: Sequence[Mapping[str, Any]]) -> list[int]:
    """Indices of the cells that execute (code with a non-blank source)."""
    out = []
    for i, cell in enumerate(cells):
        src = cell.get("source", "")
        src = "".join(src) if isinstance(src, list) else src
        if cell.get("cell_type") == "code" and src.strip():
            out.append(i)
    return out


def expected_seconds(record: Mapping[str, Any], name: str) -> float | None:
    """The wall time of ``name``'s last finished run in a ``run.json`` record, or None."""
    entry = (record.get("notebooks") or {}).get(name) or {}
    wall = entry.get("wall_s")
    return float(wall) if entry.get("status") == "finished" and wall is not None else None


class Printer:
    """Lines and one status line on a stream (stderr); the status is redrawn in place on a
    terminal and left out elsewhere (:class:`NotebookProgress` logs it every
    :data:`LOG_EVERY_S` instead). Safe to call from several threads."""

    def __init__(self, stream: TextIO | None = None, *, tty: bool | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.status_text = ""
        self._lock = threading.Lock()

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # a closed stream must not end the run
            pass

    def _fit(self, text: str) -> str:
        width = shutil.get_terminal_size((100, 20)).columns
        return text if len(text) < width else text[:width - 2] + "…"

    def line(self, text: str) -> None:
        """A line that stays (the status line is redrawn below it)."""
        with self._lock:
            out = (_CLEAR if self.tty and self.status_text else "") + text + "\n"
            if self.tty and self.status_text:
                out += self._fit(self.status_text)
            self._write(out)

    def status(self, text: str) -> None:
        """Replace the status line (drawn on a terminal only)."""
        with self._lock:
            self.status_text = text
            if self.tty:
                self._write(_CLEAR + self._fit(text))

    def clear(self) -> None:
        """Remove the status line."""
        with self._lock:
            if self.tty and self.status_text:
                self._write(_CLEAR)
            self.status_text = ""


def _text(value: Any) -> str:
    """A tqdm widget's HTML text as plain text (it escapes and pads with figure spaces)."""
    return html.unescape(str(value or "")).replace("\u2007", " ").strip()


class WidgetBars:
    """``tqdm.notebook`` bars rebuilt from the kernel's widget messages.

    A bar is an ``HBox`` of ``HTML`` (description and percentage), ``FloatProgress`` and
    ``HTML`` (counts, times, rate); each redraw sets their values by ``comm_msg`` updates.
    A bar ends when its box closes (``leave=False``) or its progress turns ``success`` /
    ``danger`` (``leave=True``, or an error).
    """

    def __init__(self) -> None:
        self.models: dict[str, dict[str, Any]] = {}
        self.bars: dict[str, tuple[str, str, str]] = {}
        self.ended: set[str] = set()
        self.active: str | None = None

    def _bar_of(self, comm_id: str) -> str | None:
        if comm_id in self.bars:
            return comm_id
        return next((b for b, parts in self.bars.items() if comm_id in parts), None)

    def _drop(self, bar: str) -> bool:
        """Forget a bar; True when it was the one shown."""
        del self.bars[bar]
        self.ended.add(bar)
        if self.active != bar:
            return False
        self.active = None
        return True

    def _register(self, comm_id: str) -> None:
        state = self.models[comm_id]
        if state.get("_model_name") != "HBoxModel" or comm_id in self.ended:
            return
        kids = [str(c).removeprefix("IPY_MODEL_") for c in state.get("children") or []]
        names = [self.models.get(k, {}).get("_model_name") for k in kids]
        if names == ["HTMLModel", "FloatProgressModel", "HTMLModel"]:
            self.bars[comm_id] = (kids[0], kids[1], kids[2])

    def feed(self, msg: Mapping[str, Any]) -> bool:
        """Take one iopub message; True when the shown bar changed."""
        kind = msg.get("msg_type") or msg.get("header", {}).get("msg_type")
        content = msg.get("content") or {}
        comm_id = content.get("comm_id")
        if kind not in ("comm_open", "comm_msg", "comm_close") or not comm_id:
            return False
        if kind == "comm_close":
            self.models.pop(comm_id, None)
            bar = self._bar_of(comm_id)
            if bar is None:
                return False
            return self._drop(bar)
        data = content.get("data") or {}
        state = data.get("state") or {}
        if kind == "comm_open":
            self.models[comm_id] = dict(state)
            self._register(comm_id)
            return False
        if data.get("method") != "update" or comm_id not in self.models:
            return False
        self.models[comm_id].update(state)
        self._register(comm_id)
        bar = self._bar_of(comm_id)
        if bar is None:
            return False
        if state.get("bar_style") in ("success", "danger"):  # closed, kept on screen
            return self._drop(bar)
        self.active = bar
        return True

    @property
    def text(self) -> str:
        """The shown bar as one line (``profile en:  45% |████▌     | 900/2000 [...]``)."""
        parts = self.bars.get(self.active) if self.active is not None else None
        if parts is None:  # none, or ended meanwhile (the status clock reads from a thread)
            return ""
        left, prog, right = (self.models.get(p, {}) for p in parts)
        top = float(prog.get("max") or 0)
        frac = min(max(float(prog.get("value") or 0) / top, 0.0), 1.0) if top else 0.0
        filled = round(10 * frac)
        return f"{_text(left.get('value'))} |{'█' * filled}{' ' * (10 - filled)}| " \
               f"{_text(right.get('value'))}".strip()

    def reset(self) -> None:
        """Forget the shown bar (its cell ended)."""
        self.active = None


class StreamLines:
    """A stream's text split into finished lines and the live ``\\r``-redrawn line (a plain
    tqdm bar)."""

    _SEP = re.compile(r"(\r\n|\r|\n)")

    def __init__(self) -> None:
        self._buf = ""
        self._after_cr = False

    def feed(self, text: str) -> list[str]:
        """Take more text; return the lines it finished (blank ones left out)."""
        lines: list[str] = []
        parts = self._SEP.split(self._buf + text)
        self._buf = parts[-1]
        for piece, sep in zip(parts[0:-1:2], parts[1::2]):
            if sep == "\r":
                self._after_cr = True
                continue
            self._after_cr = False
            if piece.strip():
                lines.append(piece.rstrip())
        return lines

    @property
    def bar(self) -> str:
        """The line being redrawn, or "" (none, or cleared)."""
        return self._buf.strip() if self._after_cr else ""

    def flush(self) -> str:
        """An unfinished line that is no bar ("" if none), then start afresh."""
        rest = "" if self._after_cr else self._buf.strip()
        self._buf, self._after_cr = "", False
        return rest


class NotebookProgress:
    """What one notebook's run prints (see the module docstring).

    Args:
        name: The notebook.
        position: ``(i, n)``: the i-th of n notebooks in this run.
        expected_s: Its last run's wall time, if any.
        printer: Where it prints (default: stderr).
        log_every_s: Seconds between status lines when the stream is no terminal.
    """

    def __init__(self, name: str, *, position: tuple[int, int] | None = None,
                 expected_s: float | None = None, printer: Printer | None = None,
                 log_every_s: float = LOG_EVERY_S) -> None:
        self.name = name
        self.position = position
        self.expected_s = expected_s
        self.printer = printer or Printer()
        self.log_every_s = log_every_s
        self.tag = name[:2] if name[:2].isdigit() else name
        self.widgets = WidgetBars()
        self.stderr = StreamLines()
        self.sections: list[str | None] = []
        self.code: dict[int, int] = {}
        self.cell: tuple[int, int] | None = None
        self.section: str | None = None
        self.t0 = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- texts -------------------------------------------------------------------------
    def _head(self) -> str:
        return f"[{self.position[0]}/{self.position[1]}] {self.name}" if self.position \
            else self.name

    @property
    def started(self) -> bool:
        """Whether :meth:`begin` ran (the notebook reached the kernel)."""
        return self._thread is not None

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def status_text(self) -> str:
        """``[02] cell 3/9, 1 min 02 s of ~2 min 10 s | profile en:  45% |████▌ | …``."""
        where = f"cell {self.cell[0]}/{self.cell[1]}" if self.cell else "starting the kernel"
        of = f" of ~{duration(self.expected_s)}" if self.expected_s is not None else ""
        bar = self.widgets.text or self.stderr.bar
        return f"[{self.tag}] {where}, {duration(self.elapsed())}{of}" + (f" | {bar}" if bar
                                                                           else "")

    # -- events ------------------------------------------------------------------------
    def begin(self, cells: Sequence[Mapping[str, Any]]) -> None:
        """The notebook starts: say so, with the expected time; start the status clock."""
        self.sections = cell_sections(cells)
        self.code = {idx: k + 1 for k, idx in enumerate(code_cells(cells))}
        self.t0 = time.monotonic()
        expect = (f"its last run took {duration(self.expected_s)}"
                  if self.expected_s is not None else "no earlier run to estimate its time from")
        self.printer.line(f"{self._head()}: started ({expect})")
        self.printer.status(self.status_text())
        self._thread = threading.Thread(target=self._tick, name=f"progress-{self.tag}",
                                        daemon=True)
        self._thread.start()

    def cell_started(self, cell: Any = None, cell_index: int = 0, **_: Any) -> None:
        """nbclient's ``on_cell_execute`` hook: a code cell is sent to the kernel."""
        self.cell = (self.code.get(cell_index, len(self.code)), len(self.code))
        section = self.sections[cell_index] if cell_index < len(self.sections) else None
        if section and section != self.section:
            self.section = section
            self.printer.line(f"[{self.tag}] § {section} — cell {self.cell[0]}/{self.cell[1]}"
                              f", {duration(self.elapsed())}")
        self.printer.status(self.status_text())

    def cell_finished(self, **_: Any) -> None:
        """nbclient's ``on_cell_executed`` hook: forget the cell's bars."""
        rest = self.stderr.flush()
        if rest:
            self.printer.line(f"[{self.tag}] {rest}")
        self.widgets.reset()
        self.printer.status(self.status_text())

    def message(self, msg: Mapping[str, Any]) -> None:
        """One iopub message from the kernel: bars and stderr lines."""
        kind = msg.get("msg_type") or msg.get("header", {}).get("msg_type")
        if kind == "stream" and (msg.get("content") or {}).get("name") == "stderr":
            before = self.stderr.bar
            lines = self.stderr.feed(msg["content"].get("text", ""))
            if self.stderr.bar != before:
                self._bar_changed()  # first: the lines below redraw the new status
            for line in lines:
                self.printer.line(f"[{self.tag}] {line}")
        elif kind and kind.startswith("comm") and self.widgets.feed(msg):
            self._bar_changed()

    def _bar_changed(self) -> None:
        if self.printer.tty:
            self.printer.status(self.status_text())

    def end(self, status: str, *, output: Path | None = None) -> None:
        """The notebook ended (``finished``, ``failed``, ``interrupted``)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        self.printer.clear()
        if status == "interrupted":
            return  # the runner's one line says what was kept
        took = duration(self.elapsed())
        expected = (f" (its last run: {duration(self.expected_s)})"
                    if self.expected_s is not None else "")
        where = f" -> {output}" if output is not None and status == "finished" else ""
        self.printer.line(f"{self._head()}: {status} in {took}{expected}{where}")

    def _tick(self) -> None:
        every = TTY_EVERY_S if self.printer.tty else self.log_every_s
        while not self._stop.wait(every):
            with contextlib.suppress(Exception):  # the clock must not die on a bad message
                if self.printer.tty:
                    self.printer.status(self.status_text())
                else:
                    self.printer.line(self.status_text())


class ProgressClient(PapermillNotebookClient):
    """papermill's notebook client, also telling a :class:`NotebookProgress` what runs."""

    def __init__(self, nb_man: Any, km: Any = None, *, progress: NotebookProgress,
                 **kw: Any) -> None:
        super().__init__(nb_man, km=km, **kw)
        self.progress = progress
        self.on_cell_execute = progress.cell_started
        self.on_cell_executed = progress.cell_finished

    def process_message(self, msg: dict, cell: Any, cell_index: int) -> Any:
        with contextlib.suppress(Exception):  # progress must never break a run
            self.progress.message(msg)
        return super().process_message(msg, cell, cell_index)


class ProgressEngine(NBClientEngine):
    """papermill's nbclient engine with :class:`ProgressClient`; without a ``progress``
    argument it is papermill's own."""

    @classmethod
    def execute_managed_notebook(cls, nb_man: Any, kernel_name: str, log_output: bool = False,
                                 stdout_file: Any = None, stderr_file: Any = None,
                                 start_timeout: int = 60, execution_timeout: int | None = None,
                                 progress: NotebookProgress | None = None,
                                 **kwargs: Any) -> Any:
        if progress is None:
            return super().execute_managed_notebook(
                nb_man, kernel_name, log_output=log_output, stdout_file=stdout_file,
                stderr_file=stderr_file, start_timeout=start_timeout,
                execution_timeout=execution_timeout, **kwargs)
        # as papermill's NBClientEngine.execute_managed_notebook (papermill 2.6-2.7)
        kwargs = remove_args(["input_path"], **kwargs)
        safe_kwargs = remove_args(["timeout", "startup_timeout"], **kwargs)
        final_kwargs = merge_kwargs(
            safe_kwargs, timeout=execution_timeout or kwargs.get("timeout"),
            startup_timeout=start_timeout, kernel_name=kernel_name, log=papermill_logger,
            log_output=log_output, stdout_file=stdout_file, stderr_file=stderr_file)
        progress.begin(nb_man.nb.cells)
        return ProgressClient(nb_man, progress=progress, **final_kwargs).execute()


papermill_engines.register(ENGINE, ProgressEngine)


def summary_table(names: Sequence[str], record: Mapping[str, Any], *,
                  expected: Mapping[str, float | None], executed: Mapping[str, Path],
                  shown: Any = str) -> str:
    """The table printed after a run: per notebook its status, time, the time expected from
    the run before, its executed copy and the files it wrote (``run.json``'s ``outputs``).

    Args:
        names: The notebooks of the run, in order.
        record: The run's ``run.json`` content.
        expected: Per notebook, the previous run's wall time (None: no earlier run).
        executed: Per notebook, its executed copy.
        shown: How a path is printed (e.g. relative to the project).
    """
    rows = [("notebook", "status", "time", "last run", "outputs")]
    extra: dict[int, list[str]] = {}
    total = 0.0
    for name in names:
        entry = (record.get("notebooks") or {}).get(name) or {}
        wall = entry.get("wall_s")
        total += wall or 0.0
        outputs = [str(shown(executed[name]))] + list(entry.get("outputs") or [])
        rows.append((name, str(entry.get("status", "not run")), duration(wall),
                     duration(expected[name]) if expected.get(name) is not None else "-",
                     outputs[0]))
        extra[len(rows) - 1] = outputs[1:]
    rows.append(("total", "", duration(total), "", ""))
    widths = [max(len(r[c]) for r in rows) for c in range(4)]
    out = []
    for i, row in enumerate(rows):
        cells = [row[c].ljust(widths[c]) if c < 2 else row[c].rjust(widths[c])
                 for c in range(4)]
        out.append("  ".join(cells + [row[4]]).rstrip())
        pad = " " * (sum(widths) + 8)
        out += [pad + o for o in extra.get(i, [])]
    return "\n".join(out)
