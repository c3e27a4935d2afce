"""Writing the report folder: load the executed notebooks, copy the figures, export the
notebooks, draw the explorer, write ``index.html``."""

from __future__ import annotations

import shutil
from pathlib import Path

from babel.core import paths
from babel.report import executed as ex
from babel.report import explorer, gallery, page

#: Where ``make report`` writes the report.
REPORT_DIR = paths.BUILD_DIR / "report"
INDEX = "index.html"


def build_report(executed: Path, *, out: Path = REPORT_DIR, figures: Path | None = None,
                 params: str | None = None) -> Path:
    """Write the report of a folder of executed notebooks; return its ``index.html``.

    Args:
        executed: ``build/executed/<params>/``.
        out: The report folder (its ``figures/``, ``explorer/``, ``notebooks/`` and
            ``index.html`` are replaced).
        figures: The run's figures folder (default: where a run of ``params`` writes them).
        params: The parameter set (default: the folder's name).
    """
    run = ex.load(executed, params=params, figures=figures)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for sub in ("figures", "explorer", "notebooks"):
        shutil.rmtree(out / sub, ignore_errors=True)
    figs = gallery.figures(run)
    page.copy_figures(figs, out / "figures")
    links = page.Links(page.export_notebooks(run, out / "notebooks"))
    try:
        exp, note = explorer.render(run, out / "explorer"), ""
    except FileNotFoundError as err:
        exp, note = None, f"No explorer: {err}."
    index = out / INDEX
    index.write_text(page.page(run, gallery=figs, links=links, explorer=exp,
                               explorer_note=note, out=out), encoding="utf-8")
    return index
