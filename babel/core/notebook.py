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
``-p``); ``-r`` passes a raw string.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from babel.core import paths

RECORD_MIME = "application/vnd.babel.record+json"
#: Set in the kernel's environment by :func:`run_notebook`: no frontend is attached.
HEADLESS_ENV = "BABEL_HEADLESS"
#: A cell that runs longer than this is an error, not a hang (the slowest default cell takes
#: about 10 minutes on 2 cores).
CELL_TIMEOUT_S = 3600
KERNEL = "python3"


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
    import papermill as pm

    return set(pm.inspect_notebook(str(ipynb)).keys())


def run_notebook(name: str, *, params: str = "default", overrides: dict[str, Any] | None = None,
                 output: Path | None = None, log_output: bool = False) -> Path:
    """Execute one notebook with a parameter set and overrides; return the executed copy."""
    import papermill as pm

    src = to_ipynb(name)
    values = load_params(params, name)
    values.update(overrides or {})
    declared = declared_parameters(src)
    unknown = sorted(set(overrides or {}) - declared)
    if unknown:
        raise ValueError(f"{name} has no parameter(s) {unknown}: its parameters are "
                         f"{sorted(declared)}")
    values = {k: v for k, v in values.items() if k in declared}
    # the kernel is a new process: passive OpenMP waiting keeps torch fast on a shared machine
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if params != "default":  # smoke/full figures must not overwrite the tracked default ones
        os.environ.setdefault("BABEL_FIGURES_DIR", str(paths.params_figures_dir(params)))
    out = output or paths.executed_notebook(name, params)
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    # no frontend will talk to widgets: the kernel (it inherits this environment) draws the
    # static views instead; the variable is set for the kernel's start only
    previous = os.environ.get(HEADLESS_ENV)
    os.environ[HEADLESS_ENV] = "1"
    try:
        pm.execute_notebook(str(src), str(out), parameters=values, kernel_name=KERNEL,
                            cwd=str(paths.NOTEBOOKS_DIR), log_output=log_output,
                            progress_bar=False, execution_timeout=CELL_TIMEOUT_S)
    finally:
        if previous is None:
            os.environ.pop(HEADLESS_ENV, None)
        else:
            os.environ[HEADLESS_ENV] = previous
    print(f"{name}: {time.perf_counter() - t0:.0f} s -> {out}", flush=True)
    return out


def record(name: str, value: Any) -> None:
    """Store a JSON-serialisable value in the executed notebook (read by :func:`read_records`)."""
    from IPython.display import display

    display({RECORD_MIME: {name: value}, "text/plain": f"recorded {name}"}, raw=True)


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


def _parse_overrides(pairs: Sequence[Sequence[str]], raw: Sequence[Sequence[str]]) -> dict:
    values: dict[str, Any] = {}
    for key, val in pairs:
        values[key] = yaml.safe_load(val)
    for key, val in raw:
        values[key] = val
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
                       help="override a parameter (value parsed as YAML)")
        p.add_argument("-r", nargs=2, action="append", default=[], metavar=("NAME", "TEXT"),
                       help="override a parameter with a raw string")


def run_from_args(args: argparse.Namespace) -> int:
    """Run the notebooks an ``add_run_arguments`` command names; 0 on success, 1 on error.

    With ``all``, each override reaches every notebook that declares it (the experiment's
    common parameters are declared by all of them); an override no notebook declares is an
    error, so a typo never runs silently with the default.
    """
    names = args.names if args.command == "run" else notebook_names()
    overrides = _parse_overrides(args.p, args.r)
    try:
        declared = {name: declared_parameters(to_ipynb(name)) for name in names}
        unknown = sorted(set(overrides) - set().union(*declared.values()))
        if unknown:
            raise ValueError(f"no notebook has parameter(s) {unknown}; see the parameters "
                             f"cells in notebooks/")
    except Exception as err:  # noqa: BLE001 — one line for the user
        print(f"error: {str(err).strip().splitlines()[-1]}", file=sys.stderr)
        return 1
    for name in names:
        try:
            ov = {k: v for k, v in overrides.items() if k in declared[name]}
            run_notebook(name, params=args.params, overrides=ov)
        except Exception as err:  # noqa: BLE001 — one line for the user; the executed copy keeps the traceback
            print(f"error: {name}: {str(err).strip().splitlines()[-1]}", file=sys.stderr)
            return 1
    return 0


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
