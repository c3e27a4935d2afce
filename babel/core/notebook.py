"""Running the notebooks headlessly (jupytext sources → papermill) and recording their values.

Notebooks live in git as jupytext ``py:percent`` files (``notebooks/NN_name.py``) without
outputs. :func:`run_notebook` converts one to ``.ipynb`` under ``build/``, injects parameters
from ``notebooks/params/<set>.yaml`` (the ``common`` section, then the notebook's own section,
then command-line overrides), executes it with papermill on this project's kernel and writes
the executed copy to ``build/executed/<set>/``.

Inside a notebook, :func:`record` stores a JSON value in the cell's outputs (a custom MIME
type, as the recommenders project does instead of scrapbook); :func:`read_records` reads them
back from an executed notebook — tests assert on those values.

Command line::

    python -m babel.core.notebook run 02_activation_profiling --params smoke \
        -p languages '[en, fr, nan]' -p model smollm2-135m
    python -m babel.core.notebook all --params default

``-p`` values are parsed as YAML (so ``nan`` stays the string "nan", unlike papermill's own
``-p``); ``-r`` passes a raw string. For a list parameter (its default is a list or ``"all"``)
both accept a comma list: ``-p languages en,fr`` is ``["en", "fr"]``.

While it runs, stderr shows each notebook's start (with the time its last run took), its
sections and cells with the elapsed time, and the kernel's progress bars
(:mod:`babel.core.progress`); a run of several notebooks ends with a table of their times and
outputs. Each run writes its provenance to ``build/executed/<set>/run.json``
(:mod:`babel.core.provenance`). Ctrl-C ends with one line saying what was kept (exit 130);
an error inside a notebook ends with one line naming the notebook and the error (exit 1).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from babel.core import paths
from babel.core.params import ParameterError, comma_list, is_float_nan, is_list_default
from babel.core.progress import ENGINE, NotebookProgress, expected_seconds, summary_table
from babel.core.provenance import RunRecorder

RECORD_MIME = "application/vnd.babel.record+json"
#: Set in the kernel's environment by :func:`run_notebook`: no frontend is attached.
HEADLESS_ENV = "BABEL_HEADLESS"
#: A cell that runs longer than this is an error, not a hang (the slowest default cell takes
#: about 10 minutes on 2 cores).
CELL_TIMEOUT_S = 3600
KERNEL = "python3"
#: The kernel's own log (not the notebook's output, which its executed copy keeps) stays quiet:
#: it warns about TCP on every start, and prints ZMQError tracebacks when Ctrl-C shuts it down.
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=CRITICAL"]
#: The exit status of a run ended by Ctrl-C (128 + SIGINT), as a shell reports it.
INTERRUPTED_EXIT = 130


def notebook_names() -> list[str]:
    """The notebooks in run order (``notebooks/NN_*.py``)."""
    return sorted(p.stem for p in paths.NOTEBOOKS_DIR.glob("[0-9][0-9]_*.py"))


def load_params(params: str, name: str) -> dict[str, Any]:
    """Parameters for notebook ``name`` from a parameter set (``default``, ``smoke``, ``full``)."""
    f = paths.PARAMS_DIR / f"{params}.yaml"
    if not f.exists():
        sets = sorted(p.stem for p in paths.PARAMS_DIR.glob("*.yaml"))
        raise FileNotFoundError(f"no parameter set {params!r}: choose one of {sets}")
    data = yaml.safe_load(f.read_text()) or {}
    merged = dict(data.get("common", {}))
    merged.update(data.get(name, {}) or {})
    return merged


def to_ipynb(name: str) -> Path:
    """Convert ``notebooks/<name>.py`` to ``build/notebooks/<name>.ipynb`` (jupytext)."""
    import jupytext

    src = paths.NOTEBOOKS_DIR / f"{name}.py"
    if not src.exists():
        raise FileNotFoundError(f"no notebook {name!r}: choose one of {notebook_names()}")
    nb = jupytext.read(src)
    nb.metadata["kernelspec"] = {"name": KERNEL, "display_name": "Python 3 (babel)",
                                 "language": "python"}
    out = paths.BUILD_DIR / "notebooks" / f"{name}.ipynb"
    out.parent.mkdir(parents=True, exist_ok=True)
    jupytext.write(nb, out)
    return out


def declared_parameters(ipynb: Path) -> set[str]:
    """Names assigned in the notebook's ``parameters`` cell."""
    return set(notebook_defaults(ipynb))


def notebook_defaults(ipynb: Path) -> dict[str, Any]:
    """The values assigned in the notebook's ``parameters`` cell (a literal, else its source)."""
    import papermill as pm

    out: dict[str, Any] = {}
    for name, spec in pm.inspect_notebook(str(ipynb)).items():
        try:
            out[name] = ast.literal_eval(spec["default"])
        except (ValueError, SyntaxError, TypeError):
            out[name] = spec["default"]
    return out


def figures_folder(params: str) -> Path:
    """Where a run of parameter set ``params`` writes its figures: ``figures/`` for the
    default set, ``build/figures/<params>/`` for the others (``BABEL_FIGURES_DIR`` overrides
    both)."""
    if params == "default" or os.environ.get("BABEL_FIGURES_DIR"):
        return paths.figures_dir()
    return paths.params_figures_dir(params)


def run_notebook(name: str, *, params: str = "default", overrides: dict[str, Any] | None = None,
                 output: Path | None = None, log_output: bool = False,
                 run: RunRecorder | None = None, progress: bool = True,
                 position: tuple[int, int] | None = None) -> Path:
    """Execute one notebook with a parameter set and overrides; return the executed copy.

    Args:
        name: The notebook (``02_activation_profiling``).
        params: The parameter set.
        overrides: Values that replace the set's (already parsed).
        output: Where the executed copy goes (default ``build/executed/<params>/<name>.ipynb``).
        log_output: Stream the notebook's output (papermill's logger).
        run: The run's provenance record; the notebook's start and end are written to it.
        progress: Print the notebook, section, cell, elapsed time and the kernel's bars on
            stderr (:mod:`babel.core.progress`); the expected time comes from ``run``.
        position: ``(i, n)``: the i-th of n notebooks in this run (shown in the progress).
    """
    import papermill as pm

    src = to_ipynb(name)
    values = load_params(params, name)
    values.update(overrides or {})
    defaults = notebook_defaults(src)
    unknown = sorted(set(overrides or {}) - set(defaults))
    if unknown:
        raise ValueError(f"{name} has no parameter(s) {unknown}: its parameters are "
                         f"{sorted(defaults)}")
    values = {k: v for k, v in values.items() if k in defaults}
    # the kernel is a new process: passive OpenMP waiting keeps torch fast on a shared machine
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if params != "default":  # smoke/full figures must not overwrite the tracked default ones
        os.environ.setdefault("BABEL_FIGURES_DIR", str(figures_folder(params)))
    out = output or paths.executed_notebook(name, params)
    out.parent.mkdir(parents=True, exist_ok=True)
    shown = NotebookProgress(name, position=position, expected_s=expected_seconds(
        run.data if run is not None else {}, name)) if progress else None
    if run is not None:
        run.begin(name, {**defaults, **values})
    # no frontend will talk to widgets: the kernel (it inherits this environment) draws the
    # static views instead; the variable is set for the kernel's start only
    previous = os.environ.get(HEADLESS_ENV)
    os.environ[HEADLESS_ENV] = "1"
    try:
        pm.execute_notebook(str(src), str(out), parameters=values, kernel_name=KERNEL,
                            cwd=str(paths.NOTEBOOKS_DIR), log_output=log_output,
                            progress_bar=False, execution_timeout=CELL_TIMEOUT_S,
                            extra_arguments=KERNEL_ARGUMENTS, engine_name=ENGINE,
                            **({"progress": shown} if shown is not None else {}))
    except BaseException as err:
        status = "interrupted" if interrupted(err) else "failed"
        if shown is not None and shown.started:
            shown.end(status)
        if run is not None:
            with contextlib.suppress(Exception):  # the notebook's error is the one to report
                run.end(name, status, error=error_line(err))
        raise
    finally:
        if previous is None:
            os.environ.pop(HEADLESS_ENV, None)
        else:
            os.environ[HEADLESS_ENV] = previous
    if run is not None:
        run.end(name, "finished")
    if shown is not None and shown.started:
        shown.end("finished", output=_shown(out))
    return out


def interrupted(err: BaseException) -> bool:
    """Whether ``err`` is Ctrl-C: a KeyboardInterrupt, the kernel's one reported by papermill,
    or an error raised while handling one (ZMQError on the kernel's shutdown)."""
    seen: set[int] = set()
    e: BaseException | None = err
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, KeyboardInterrupt) or getattr(e, "ename", None) == "KeyboardInterrupt":
            return True
        e = e.__cause__ or e.__context__
    return False


def error_line(err: BaseException) -> str:
    """One line for an error: ``Name: value`` of an exception raised inside the notebook
    (papermill's ``PapermillExecutionError``), else the error's last line."""
    ename = getattr(err, "ename", None)
    if ename is not None:
        evalue = str(getattr(err, "evalue", "") or "").strip().splitlines()
        return f"{ename}: {evalue[0]}" if evalue else ename
    lines = str(err).strip().splitlines()
    return lines[-1] if lines else type(err).__name__


def record(name: str, value: Any) -> None:
    """Store a JSON-serialisable value in the executed notebook (read by :func:`read_records`)."""
    from IPython.display import display

    display({RECORD_MIME: {name: value}, "text/plain": f"recorded {name}"}, raw=True)


def record_all(values: Mapping[str, Any]) -> None:
    """:func:`record` several values at once (one output)."""
    from IPython.display import display

    display({RECORD_MIME: dict(values), "text/plain": f"recorded {', '.join(values)}"},
            raw=True)


def read_records(ipynb: Path) -> dict[str, Any]:
    """Every value a notebook :func:`record`-ed, by name."""
    nb = json.loads(Path(ipynb).read_text())
    out: dict[str, Any] = {}
    for cell in nb.get("cells", []):
        for o in cell.get("outputs", []):
            data = o.get("data", {})
            if RECORD_MIME in data:
                out.update(data[RECORD_MIME])
    return out


def _yaml_item(text: str) -> Any:
    return yaml.safe_load(text)


def parameter_defaults(cells: Mapping[str, Mapping[str, Any]],
                       params: str) -> dict[str, list[Any]]:
    """Every default each parameter has: in the notebooks' ``parameters`` cells (``cells``:
    notebook → :func:`notebook_defaults`), the ``default`` set and ``params``."""
    out: dict[str, list[Any]] = {}
    for name, cell in cells.items():
        for values in (cell, load_params("default", name), load_params(params, name)):
            for key, value in values.items():
                out.setdefault(key, []).append(value)
    return out


def _parse_overrides(pairs: Sequence[Sequence[str]], raw: Sequence[Sequence[str]],
                     defaults: Mapping[str, Sequence[Any]] | None = None) -> dict[str, Any]:
    """``-p`` (YAML) and ``-r`` (raw string) values; a comma list becomes a list for a list
    parameter (a default is a list or ``"all"``), each item parsed like its option's value.

    Raises:
        ParameterError: ``-p NAME .nan`` for a text or list parameter.
    """
    defaults = defaults or {}

    def is_list(key: str) -> bool:
        return any(is_list_default(d) for d in defaults.get(key, ()))

    values: dict[str, Any] = {}
    for key, val in pairs:
        value = yaml.safe_load(val)
        if is_list(key):
            value = comma_list(value, item=_yaml_item)
        if is_float_nan(value) and any(isinstance(d, (str, list, tuple))
                                       for d in defaults.get(key, ())):
            raise ParameterError(f"-p {key} {val}: YAML reads this as the number nan; pass "
                                 f"text as a raw string with -r NAME VALUE, e.g. -r {key} nan")
        values[key] = value
    for key, val in raw:
        values[key] = comma_list(val) if is_list(key) else val
    return values


def add_run_arguments(sub: argparse._SubParsersAction) -> None:
    """Add the ``run`` and ``all`` (alias ``reproduce``) subcommands to a parser."""
    for cmd, aliases in (("run", []), ("all", ["reproduce"])):
        p = sub.add_parser(cmd, aliases=aliases,
                           help="run notebooks" if cmd == "run" else "run every notebook in order")
        if cmd == "run":
            p.add_argument("names", nargs="+", help=f"notebooks: {notebook_names()}")
        p.add_argument("--params", default="default", help="parameter set (default/smoke/full)")
        p.add_argument("-p", nargs=2, action="append", default=[], metavar=("NAME", "YAML"),
                       help="override a parameter (value parsed as YAML; a list parameter also "
                            "takes a comma list: -p languages en,fr)")
        p.add_argument("-r", nargs=2, action="append", default=[], metavar=("NAME", "TEXT"),
                       help="override a parameter with a raw string (text such as nan that YAML "
                            "or papermill would read as a number; en,fr is a list)")


def _interrupt_message(current: str | None, finished: Sequence[str],
                       run: RunRecorder | None) -> str:
    """The one line Ctrl-C ends with: what was kept and how to resume."""
    where = ("before any notebook ran" if current is None
             else f"after {current}" if current in finished else f"during {current}")
    kept = (f"the finished notebook(s) {', '.join(finished)}" if finished
            else "no finished notebook")
    record = ""
    if run is not None:
        n = sum(len((nb.get("cache") or {}).get("written", ()))
                for nb in run.data["notebooks"].values() if nb.get("run_id") == run.run_id)
        record = f" and the {n} cache file(s) written so far (listed in {_shown(run.path)})"
    return (f"interrupted {where}: kept {kept}{record}; to resume, rerun the same command "
            f"(finished caches are reused)")


def run_from_args(args: argparse.Namespace) -> int:
    """Run the notebooks an ``add_run_arguments`` command names.

    With ``all``, each override reaches every notebook that declares it (the experiment's
    common parameters are declared by all of them); an override no notebook declares is an
    error, so a typo never runs silently with the default.

    Returns:
        0 on success, 1 on an error (one line on stderr), 130 on Ctrl-C (one line on stderr
        saying what was kept and how to resume).
    """
    names = args.names if args.command == "run" else notebook_names()
    finished: list[str] = []
    current: str | None = None
    run: RunRecorder | None = None
    try:
        try:
            cells = {name: notebook_defaults(to_ipynb(name)) for name in names}
            overrides = _parse_overrides(args.p, args.r, parameter_defaults(cells, args.params))
            unknown = sorted(set(overrides) - set().union(*cells.values()))
            if unknown:
                raise ValueError(f"no notebook has parameter(s) {unknown}; see the parameters "
                                 f"cells in notebooks/")
        except Exception as err:  # noqa: BLE001 — one line for the user
            print(f"error: {error_line(err)}", file=sys.stderr)
            return 1
        run = RunRecorder.start(paths.executed_notebook(names[0], args.params).parent,
                                params=args.params, command=list(sys.argv),
                                overrides=overrides)
        expected = {name: expected_seconds(run.data, name) for name in names}
        for i, name in enumerate(names, 1):
            current = name
            try:
                ov = {k: v for k, v in overrides.items() if k in cells[name]}
                run_notebook(name, params=args.params, overrides=ov, run=run,
                             position=(i, len(names)))
            except Exception as err:  # one line; the executed copy keeps the traceback
                if interrupted(err):
                    raise
                where = "" if getattr(err, "ename", "") == "ParameterError" else (
                    f" (traceback in {_shown(paths.executed_notebook(name, args.params))})")
                print(f"error: {name}: {error_line(err)}{where}", file=sys.stderr)
                run.finish("failed")
                return 1
            finished.append(name)
        run.finish("finished")
        if len(names) > 1:
            print(_summary(names, run, expected, args.params), file=sys.stderr)
        return 0
    except BaseException as err:
        if not interrupted(err):
            raise
        if run is not None:
            with contextlib.suppress(BaseException):  # a second Ctrl-C: it stays "running"
                run.finish("interrupted")
        print(_interrupt_message(current, finished, run), file=sys.stderr)
        return INTERRUPTED_EXIT


def _summary(names: Sequence[str], run: RunRecorder, expected: Mapping[str, float | None],
             params: str) -> str:
    """The table after a run of several notebooks: times and outputs (from ``run.json``)."""
    table = summary_table(names, run.data, expected=expected, shown=_shown,
                          executed={n: paths.executed_notebook(n, params) for n in names})
    return f"\nrun {run.run_id} ({_shown(run.path)}):\n{table}"


def _shown(path: Path) -> Path:
    """``path`` relative to the project when inside it (shorter messages)."""
    return path.relative_to(paths.PROJ_ROOT) if path.is_relative_to(paths.PROJ_ROOT) else path


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m babel.core.notebook",
                                 description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    add_run_arguments(sub)
    args = ap.parse_args(argv)
    if args.command == "reproduce":
        args.command = "all"
    return run_from_args(args)


if __name__ == "__main__":
    raise SystemExit(main())
