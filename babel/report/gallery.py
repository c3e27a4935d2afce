"""The figures of a run, each with the notebook section that draws it and its caption.

A figure is found in the run's figures folder; the notebook that wrote it comes from the
folder's ``provenance.json`` when it names one, else from the code cell that mentions the
figure's name (``expert-classes-by-layer`` in ``expert-classes-by-layer_gemma-3-270m.png``).
The caption is the markdown cell above that code cell: the notebook's own words.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from babel.core.artifacts import read_json
from babel.core.provenance import sidecar_file
from babel.report.executed import Executed, Section


@dataclasses.dataclass(frozen=True)
class Figure:
    """One figure file.

    Attributes:
        path: The file.
        content: Its name before ``_<model>`` (``pruning-speedup``).
        notebook: The notebook that draws it (None: not found).
        section: The section of the cell that draws it.
        made_by: Its ``provenance.json`` entry (run id, notebook, commit), if any.
    """

    path: Path
    content: str
    notebook: str | None
    section: Section | None
    made_by: dict[str, Any] | None

    @property
    def anchor(self) -> str:
        """The gallery item's HTML id."""
        return f"fig-{self.path.stem}"


def content_name(path: Path) -> str:
    """``expert-classes-by-layer`` of ``expert-classes-by-layer_gemma-3-270m.png``."""
    return path.stem.split("_", 1)[0]


def _locate(run: Executed, content: str, notebook: str | None) -> tuple[str, int] | None:
    """The code cell that draws a figure: its name, else shorter and shorter prefixes of it
    (a name built in an f-string: ``expert-cohesion-{method}-vs-random``)."""
    parts = content.split("-")
    for n in range(len(parts), 1, -1):
        found = run.find_code("-".join(parts[:n]), notebook)
        if found is not None:
            return found
    return None


def figures(run: Executed) -> list[Figure]:
    """The PNG figures of a run, in notebook order (figures no notebook draws last)."""
    folder = run.figures
    if not folder.is_dir():
        return []
    try:
        made = read_json(sidecar_file(folder)).get("files", {})
    except (OSError, ValueError, AttributeError):
        made = {}
    out = []
    for path in sorted(folder.glob("*.png")):
        entry = made.get(path.name)
        content = content_name(path)
        where = _locate(run, content, (entry or {}).get("notebook"))
        if where is None and entry:
            where = _locate(run, content, None)
        out.append(Figure(path, content, where[0] if where else None,
                          run.section(*where) if where else None, entry))
    order = list(run.notebooks)
    return sorted(out, key=lambda f: (order.index(f.notebook) if f.notebook in order
                                      else len(order), f.path.name))


def for_claim(gallery: list[Figure], contents: tuple[str, ...],
              model: str | None = None) -> list[Figure]:
    """The gallery's figures of the given names, ``model``'s first."""
    chosen = [f for c in contents for f in gallery if f.content == c]
    return sorted(chosen, key=lambda f: not (model and f.path.stem.endswith(f"_{model}")))
