"""One parameter set's executed notebooks as the report reads them: records, parameters,
sections, the run record and the figures folder."""

from __future__ import annotations

import ast
import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from babel.core import paths
from babel.core.artifacts import read_json
from babel.core.notebook import figures_folder, read_records
from babel.core.progress import cell_sections, heading
from babel.core.provenance import run_file


def _source(cell: Mapping[str, Any]) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def notebook_parameters(nb: Mapping[str, Any]) -> dict[str, Any]:
    """The values a notebook ran with: its ``parameters`` cell (literals), then the values
    papermill injected (``metadata.papermill.parameters``)."""
    values: dict[str, Any] = {}
    for cell in nb.get("cells", []):
        if "parameters" in (cell.get("metadata") or {}).get("tags", []):
            try:
                tree = ast.parse(_source(cell))
            except SyntaxError:
                break
            for node in tree.body:
                if isinstance(node, ast.Assign) and len(node.targets) == 1 \
                        and isinstance(node.targets[0], ast.Name):
                    try:
                        values[node.targets[0].id] = ast.literal_eval(node.value)
                    except (ValueError, SyntaxError, TypeError):
                        pass
            break
    values.update(((nb.get("metadata") or {}).get("papermill") or {}).get("parameters") or {})
    return values


@dataclasses.dataclass(frozen=True)
class Section:
    """A notebook section: its heading and the text of the markdown cell before a code cell.

    Attributes:
        heading: The heading text (markdown), None before the first heading.
        text: The markdown cell just above the code cell, heading line removed ("" if none).
    """

    heading: str | None
    text: str


@dataclasses.dataclass
class Executed:
    """The executed notebooks of one parameter set.

    Attributes:
        folder: ``build/executed/<params>/``.
        params: The parameter set (the folder's name).
        notebooks: Executed copies by name, in run order.
        records: :func:`babel.core.notebook.read_records` of each.
        parameters: :func:`notebook_parameters` of each.
        cells: Each notebook's cells (nbformat dicts).
        run: ``run.json`` (None when the notebooks predate run records).
        figures: The folder the run wrote its figures to.
    """

    folder: Path
    params: str
    notebooks: dict[str, Path]
    records: dict[str, dict[str, Any]]
    parameters: dict[str, dict[str, Any]]
    cells: dict[str, list[dict[str, Any]]]
    run: dict[str, Any] | None
    figures: Path

    def metadata(self, name: str) -> dict[str, Any]:
        """papermill's metadata of a notebook (times, duration, injected parameters)."""
        nb = json.loads(self.notebooks[name].read_text())
        return (nb.get("metadata") or {}).get("papermill") or {}

    def find_code(self, text: str, notebook: str | None = None) -> tuple[str, int] | None:
        """The first code cell whose source contains ``text`` (in ``notebook`` when given):
        (notebook, cell index)."""
        for name, cells in self.cells.items():
            if notebook is not None and name != notebook:
                continue
            for i, cell in enumerate(cells):
                if cell.get("cell_type") == "code" and text in _source(cell):
                    return name, i
        return None

    def section(self, name: str, index: int) -> Section:
        """The section of cell ``index`` of notebook ``name`` and the text above it."""
        cells = self.cells[name]
        above = next((_source(c) for c in reversed(cells[:index])
                      if c.get("cell_type") == "markdown"), "")
        lines = above.splitlines()
        if lines and heading(lines[0]):
            lines = lines[1:]
        return Section(cell_sections(cells)[index], "\n".join(lines).strip())


def load(folder: Path, *, params: str | None = None,
         figures: Path | None = None) -> Executed:
    """Read a folder of executed notebooks (``NN_name.ipynb``).

    Args:
        folder: ``build/executed/<params>/``.
        params: The parameter set (default: the folder's name).
        figures: The figures folder (default: where a run of ``params`` writes them).

    Raises:
        FileNotFoundError: No executed notebook in ``folder``.
    """
    folder = Path(folder)
    params = params or folder.name
    found = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
    if not found:
        raise FileNotFoundError(f"no executed notebooks in {folder}: run `make reproduce "
                                f"PARAMS={params}` first")
    notebooks = {p.stem: p for p in found}
    nbs = {name: json.loads(p.read_text()) for name, p in notebooks.items()}
    try:
        run = read_json(run_file(folder))
    except (OSError, ValueError):
        run = None
    return Executed(folder=folder, params=params, notebooks=notebooks,
                    records={n: read_records(p) for n, p in notebooks.items()},
                    parameters={n: notebook_parameters(nb) for n, nb in nbs.items()},
                    cells={n: nb.get("cells", []) for n, nb in nbs.items()},
                    run=run if isinstance(run, dict) else None,
                    figures=Path(figures) if figures is not None else figures_folder(params))


def latest_params() -> str | None:
    """The parameter set whose executed notebooks were written last, or None."""
    folders = [f for f in paths.EXECUTED_DIR.glob("*") if any(f.glob("[0-9][0-9]_*.ipynb"))]
    if not folders:
        return None
    return max(folders, key=lambda f: max(p.stat().st_mtime
                                          for p in f.glob("[0-9][0-9]_*.ipynb"))).name
