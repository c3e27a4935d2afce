"""Every file location in babel: the one module that assembles paths.

Layout (cookiecutter-data-science style):

- ``data/corpus/``       the built-in parallel corpus (tracked, immutable input)
- ``data/languages.csv`` the one table of language facts (tracked)
- ``data/models/``       dequantized model caches (generated, gitignored)
- ``data/cache/``        partitions, profiles and other computed artifacts (gitignored)
- ``figures/``           figures named by content
- ``build/``             executed notebooks (gitignored)

``BABEL_CACHE_DIR``, ``BABEL_MODELS_DIR`` and ``BABEL_FIGURES_DIR`` override the generated
folders (tests point the cache and figures at temporary folders). No other module builds a path by hand: each artifact has a
function here that names it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

PROJ_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = PROJ_ROOT / "data"
CORPUS_DIR = DATA_DIR / "corpus"
LANGUAGES_CSV = DATA_DIR / "languages.csv"
FIGURES_DIR = PROJ_ROOT / "figures"
NOTEBOOKS_DIR = PROJ_ROOT / "notebooks"
PARAMS_DIR = NOTEBOOKS_DIR / "params"
BUILD_DIR = PROJ_ROOT / "build"
EXECUTED_DIR = BUILD_DIR / "executed"
RESULTS_DIR = BUILD_DIR / "results"
TESTS_DATA_DIR = PROJ_ROOT / "tests" / "data"


def models_dir() -> Path:
    """Folder of dequantized model caches (``BABEL_MODELS_DIR`` overrides)."""
    return Path(os.environ.get("BABEL_MODELS_DIR", DATA_DIR / "models"))


def cache_dir() -> Path:
    """Folder of computed artifacts (``BABEL_CACHE_DIR`` overrides)."""
    return Path(os.environ.get("BABEL_CACHE_DIR", DATA_DIR / "cache"))


def slug(text: str) -> str:
    """A file-name-safe form of ``text`` (model ids such as ``meta-llama/Llama-2-7b-hf``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "x"


def model_cache_dir(name: str) -> Path:
    """Folder holding the safetensors + tokenizer cache of an embedded model."""
    return models_dir() / slug(name)


def corpus_file(lang: str, *, folder: Path | None = None, ext: str = "jsonl") -> Path:
    """Corpus file of one language: built-in JSONL (id, topic, text) unless ``folder`` is given.

    Args:
        lang: Language code (``fr``, ``sr-Latn``).
        folder: Another corpus folder (a user's own files, a test corpus); default the built-in one.
        ext: File extension without the dot (``jsonl`` or ``txt``).
    """
    return Path(folder if folder is not None else CORPUS_DIR) / f"{lang}.{ext}"


def flores_plus_file(root: Path, flores_code: str, split: str) -> Path:
    """A local FLORES+ parquet laid out like the hub repo: ``<root>/<split>/<flores_code>.parquet``."""
    return Path(root) / split / f"{flores_code}.parquet"


def wikipedia_config_dir(root: Path, config: str) -> Path:
    """A local wikimedia/wikipedia config folder laid out like the hub: ``<root>/<config>/``."""
    return Path(root) / config


def partition_dir(model: str, key: str) -> Path:
    """Folder of one expert partition (``key`` encodes method, E, projection, seed)."""
    return cache_dir() / "partitions" / slug(model) / slug(key)


def profile_dir(model: str, key: str) -> Path:
    """Folder of the activation profiles of one (model, partition, corpus, rule) setting."""
    return cache_dir() / "profiles" / slug(model) / slug(key)


def profile_file(model: str, key: str, lang: str) -> Path:
    """Counts of one language under one profiling setting (``.npz``, config beside it)."""
    return profile_dir(model, key) / f"{slug(lang)}.npz"


def pruned_model_dir(model: str, key: str) -> Path:
    """Folder of a structurally pruned model saved with its keep-mask and config."""
    return cache_dir() / "pruned" / slug(model) / slug(key)


def results_file(name: str) -> Path:
    """A table a notebook or benchmark writes (parquet/csv/json) under ``build/results``.

    ``BABEL_RESULTS_DIR`` overrides the folder.
    """
    folder = Path(os.environ.get("BABEL_RESULTS_DIR", RESULTS_DIR))
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


def figures_dir() -> Path:
    """Folder of figures (``BABEL_FIGURES_DIR`` overrides: tests keep ``figures/`` untouched)."""
    return Path(os.environ.get("BABEL_FIGURES_DIR", FIGURES_DIR))


def params_figures_dir(params: str) -> Path:
    """Where figures of a non-default parameter set go (``build/figures/<params>``)."""
    return BUILD_DIR / "figures" / slug(params)


def figure_file(content: str, model: str, ext: str = "png") -> Path:
    """A figure named by its content and model, e.g. ``lang-dendrogram_gemma-3-270m.png``."""
    folder = figures_dir()
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{slug(content)}_{slug(model)}.{ext}"


def executed_notebook(name: str, params: str) -> Path:
    """Executed copy of a notebook (outputs kept out of the tracked sources)."""
    return EXECUTED_DIR / params / f"{name}.ipynb"
