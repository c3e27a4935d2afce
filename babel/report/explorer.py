"""The heatmap explorer without a kernel: per language, its frequency heatmap and its
difference from the mean over languages, pre-rendered as PNGs for the report's select box.

The frequencies come from the table notebook 02 writes and records (``frequency_table``, a
parquet file under ``build/results/``); the images are drawn by the notebook explorer's own
view (:func:`babel.figures.heatmaps.explorer_view`): all layers, experts by mean frequency,
one color scale for every language.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from babel.core import paths
from babel.figures.heatmaps import MODES, explorer_view
from babel.report.claims import PROFILING
from babel.report.executed import Executed

#: Size of each pre-rendered heatmap (inches) and its resolution.
SIZE, DPI = (7.5, 2.8), 100
TITLES = {"frequency": "activation frequency", "difference": "frequency − mean over languages"}


@dataclasses.dataclass(frozen=True)
class Explorer:
    """The explorer's images.

    Attributes:
        model: The model of the frequency table.
        table: The frequency table read.
        images: Per language, ``{"frequency": path, "difference": path}`` (inside the report).
    """

    model: str
    table: Path
    images: dict[str, dict[str, Path]]


def frequencies(table: pd.DataFrame) -> tuple[str, list[str], np.ndarray]:
    """The model, the languages (in the table's order) and ``freq[n_lang, L, E]`` of a
    frequency table (:func:`babel.profile.cache.frequency_table`)."""
    langs = list(dict.fromkeys(table["language"]))
    n_layers, n_experts = int(table["layer"].max()) + 1, int(table["expert"].max()) + 1
    freq = np.zeros((len(langs), n_layers, n_experts))
    for i, lang in enumerate(langs):
        rows = table[table["language"] == lang]
        freq[i, rows["layer"].to_numpy(), rows["expert"].to_numpy()] = rows["frequency"]
    return str(table["model"].iloc[0]), langs, freq


def table_path(run: Executed) -> Path | None:
    """The frequency table notebook 02 recorded, or None."""
    name = (run.records.get(PROFILING) or {}).get("frequency_table")
    return paths.results_file(name) if name else None


def render(run: Executed, out: Path) -> Explorer:
    """Draw every language's two heatmaps into ``out`` (``<lang>-frequency.png``,
    ``<lang>-difference.png``).

    Raises:
        FileNotFoundError: Notebook 02 recorded no table, or the table is gone.
    """
    path = table_path(run)
    if path is None or not path.is_file():
        raise FileNotFoundError("notebook 02 recorded no frequency table" if path is None
                                else f"no frequency table {path} (rerun notebook 02)")
    model, langs, freq = frequencies(pd.read_parquet(path))
    out.mkdir(parents=True, exist_ok=True)
    images: dict[str, dict[str, Path]] = {}
    for lang in langs:
        images[lang] = {}
        for mode in MODES:
            fig = explorer_view(langs, freq, chosen=[lang], layers=(0, freq.shape[1] - 1),
                                mode=mode)
            fig.set_size_inches(*SIZE)
            fig.suptitle(f"{lang}: {TITLES[mode]} — {model}")
            target = out / f"{paths.slug(lang)}-{mode}.png"
            fig.savefig(target, dpi=DPI)
            plt.close(fig)
            images[lang][mode] = target
    return Explorer(model, path, images)
