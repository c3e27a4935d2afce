"""Provenance of notebook runs: which code, versions, parameters, inputs and caches made them.

Each executed parameter set keeps ``run.json`` beside its executed notebooks
(``build/executed/<params>/run.json``). It is rewritten atomically when a notebook starts and
when it ends, so a killed run still leaves what finished. Per notebook it holds the run that
made the executed copy (run id, git commit and dirty flag), the resolved parameters, the
model weights' sha256 (from the model cache's ``babel_meta.json``), the corpus files' sha256,
the cache files written, the wall time and the status. A notebook not re-run keeps its
earlier entry, so the file always describes the executed copies that are there.

Figures and result tables get a ``provenance.json`` in their folder: file name → the run
and notebook that last wrote it.

What "written" and "unchanged" mean (:data:`CACHE_RULE`): babel does not log each file it
opens, so the record compares the cache folders before and after each notebook.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from babel.core import paths
from babel.core.artifacts import read_json, sha256_file, write_json

RUN_FILE = "run.json"
SIDECAR_FILE = "provenance.json"
FORMAT = 1
#: Written by :mod:`babel.models.loading` in each embedded model's cache (a higher stage:
#: named here, not imported).
MODEL_META_FILE = "babel_meta.json"
VERSIONED = ("torch", "transformers", "numpy", "papermill", "babel")
CACHE_RULE = (
    "Files under the cache and model folders, compared before and after each notebook "
    "(path, size, mtime): 'written' are new or modified; 'unchanged' are files in a folder "
    "named after one of the notebook's models that existed before and were left as they "
    "were: what the notebook could have read (reads are not logged, so not every one was "
    "opened). Another process writing the same folders at the same time is counted too.")

Snapshot = dict[str, tuple[int, int]]


def run_file(executed: Path) -> Path:
    """The run record of a folder of executed notebooks."""
    return Path(executed) / RUN_FILE


def sidecar_file(folder: Path) -> Path:
    """The file → run map of a folder of figures or result tables."""
    return Path(folder) / SIDECAR_FILE


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(paths.PROJ_ROOT))
    except ValueError:
        return str(path)


def _git(*args: str) -> str | None:
    """Output of a read-only git command in the project, or None (no git, not a checkout).

    ``--no-optional-locks``: ``git status`` must not take the index lock from someone
    committing at the same time.
    """
    try:
        out = subprocess.run(["git", "--no-optional-locks", "-C", str(paths.PROJ_ROOT), *args],
                             capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout


def git_state() -> dict[str, Any]:
    """``commit``, ``dirty`` and the number of ``changed_paths``; None values without git.

    Dirty means a tracked file differs from the commit (as ``git describe --dirty``): untracked
    files (a log, a symlinked model cache) do not change the code that ran.
    """
    head = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no") if head else None
    changed = [line for line in (status or "").splitlines() if line.strip()]
    return {"commit": head.strip() if head else None,
            "dirty": None if status is None else bool(changed),
            "changed_paths": None if status is None else len(changed)}


def versions() -> dict[str, str | None]:
    """Python and the installed versions of the packages a result depends on."""
    out: dict[str, str | None] = {"python": sys.version.split()[0]}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def new_run_id(git: Mapping[str, Any], now: dt.datetime | None = None) -> str:
    """``20260509T101500Z-1a2b3c4`` (``-dirty`` with uncommitted changes, ``nogit`` without)."""
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%SZ")
    commit = (git.get("commit") or "nogit")[:7]
    return f"{stamp}-{commit}{'-dirty' if git.get('dirty') else ''}"


def folder_files(folder: Path) -> Snapshot:
    """``{path inside folder: (size, mtime_ns)}`` of its files (hidden temp/lock files and the
    sidecar left out)."""
    out: Snapshot = {}
    folder = Path(folder)
    if not folder.is_dir():
        return out
    for f in folder.rglob("*"):
        rel = f.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or f.name == SIDECAR_FILE:
            continue
        try:
            st = f.stat()
        except OSError:  # removed meanwhile
            continue
        if f.is_file():
            out[str(rel)] = (st.st_size, st.st_mtime_ns)
    return out


def snapshot(folders: Iterable[Path]) -> Snapshot:
    """:func:`folder_files` of several folders, keyed by path relative to the project."""
    return {_rel(Path(folder) / k): v for folder in folders
            for k, v in folder_files(folder).items()}


def written(before: Snapshot, after: Snapshot) -> list[str]:
    """Files new or modified between two snapshots."""
    return sorted(k for k, v in after.items() if before.get(k) != v)


def unchanged(before: Snapshot, after: Snapshot, names: Iterable[str]) -> list[str]:
    """Files present in both snapshots, unmodified, in a folder named after one of ``names``."""
    slugs = {paths.slug(n) for n in names}
    return sorted(k for k, v in before.items()
                  if after.get(k) == v and slugs.intersection(Path(k).parts[:-1]))


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, (list, tuple)):
        return [v for v in value if isinstance(v, str)]
    return []


def model_names(parameters: Mapping[str, Any]) -> list[str]:
    """Models a notebook's parameters name (``model``, ``compare_models``, nested ``models``)."""
    found: list[str] = []
    for key, value in parameters.items():
        if isinstance(value, Mapping):
            found += model_names(value)
        elif key in ("model", "models", "compare_models"):
            found += _strings(value)
    return list(dict.fromkeys(found))


def model_weights(name: str) -> dict[str, Any]:
    """The sha256 of a model's weights as its cache's ``babel_meta.json`` lists them."""
    meta_path = paths.model_cache_dir(name) / MODEL_META_FILE
    if not meta_path.is_file():
        return {"weights_sha256": None,
                "note": f"no {MODEL_META_FILE}: a hub id or local folder (not hashed), or "
                        "an embedded model not built yet"}
    try:
        meta = read_json(meta_path)
        files = meta["files"]
    except (ValueError, KeyError, TypeError, OSError):
        return {"weights_sha256": None, "note": f"{_rel(meta_path)} is unreadable"}
    return {"cache": _rel(meta_path.parent),
            "weights_sha256": {f: h for f, h in files.items() if f.endswith(".safetensors")},
            "gguf": meta.get("gguf"), "gguf_sha256": meta.get("gguf_sha256"),
            "source_package": meta.get("source_package")}


def _corpus_folder(parameters: Mapping[str, Any]) -> Path | None:
    corpus, folder = parameters.get("corpus", "builtin"), parameters.get("corpus_path")
    if isinstance(folder, str) and folder:
        path = Path(folder).expanduser()
    elif corpus == "builtin":
        return paths.CORPUS_DIR
    elif isinstance(corpus, str) and ("/" in corpus or (paths.PROJ_ROOT / corpus).is_dir()):
        path = Path(corpus).expanduser()
    else:
        return None  # a hub source (flores_plus, wikipedia): nothing local to hash
    if not path.is_absolute() and not path.exists():
        path = paths.PROJ_ROOT / path  # as babel.data.languages.user_path reads it
    return path


def corpus_hashes(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """sha256 of each corpus file the parameters select (the profile caches' keys hold the
    first 16 hex digits of the same hash)."""
    source = parameters.get("corpus", "builtin")
    folder = _corpus_folder(parameters)
    if folder is None or not folder.is_dir():
        return {"source": source, "folder": None if folder is None else _rel(folder),
                "files": None}
    langs = _strings(parameters.get("languages", "all"))
    files = [f for f in sorted(folder.iterdir())
             if f.is_file() and f.suffix in (".jsonl", ".txt") and not f.name.startswith(".")
             and (langs == ["all"] or f.stem in langs)]
    return {"source": source, "folder": _rel(folder),
            "files": {f.name: sha256_file(f) for f in files}}


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return "nan (float)"
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _read_previous(path: Path) -> dict[str, Any]:
    """An earlier record (kept for what this run does not redo), or an empty one."""
    try:
        data = read_json(path)
    except FileNotFoundError:
        return {}
    except (ValueError, OSError):
        print(f"note: {_rel(path)} is unreadable; writing a new one", file=sys.stderr)
        return {}
    return data if isinstance(data, dict) and data.get("format") == FORMAT else {}


@dataclasses.dataclass
class RunRecorder:
    """Writes one run's provenance into ``run.json`` and the output folders' sidecars.

    Attributes:
        path: The ``run.json`` being written.
        run_id: This run's id.
        data: The record as written.
    """

    path: Path
    run_id: str
    data: dict[str, Any]
    _cache: Snapshot = dataclasses.field(default_factory=dict)
    _outputs: dict[Path, Snapshot] = dataclasses.field(default_factory=dict)
    _t0: float = 0.0

    @classmethod
    def start(cls, executed: Path, *, params: str, command: list[str],
              overrides: Mapping[str, Any]) -> RunRecorder:
        """Open the record of a new run of parameter set ``params`` (executed into ``executed``)."""
        path = run_file(executed)
        git = git_state()
        data = _read_previous(path)
        run_id = base = new_run_id(git)
        n = 1
        while run_id in data.get("runs", {}):  # two runs within one second
            n += 1
            run_id = f"{base}.{n}"
        data.update(format=FORMAT, params=params, latest_run=run_id, cache_rule=CACHE_RULE)
        data.setdefault("notebooks", {})
        runs = data.setdefault("runs", {})
        runs[run_id] = {"command": command, "started": _now(), "finished": None,
                        "status": "running", "git": git, "versions": versions(),
                        "overrides": _jsonable(dict(overrides))}
        rec = cls(path, run_id, data)
        rec._write()
        return rec

    @property
    def git(self) -> dict[str, Any]:
        return self.data["runs"][self.run_id]["git"]

    def _write(self) -> None:
        used = {nb.get("run_id") for nb in self.data["notebooks"].values()} | {self.run_id}
        self.data["runs"] = {k: v for k, v in self.data["runs"].items() if k in used}
        write_json(self.path, self.data)

    @staticmethod
    def _output_folders() -> list[Path]:
        return [paths.figures_dir(), paths.results_file(SIDECAR_FILE).parent]

    def begin(self, name: str, parameters: Mapping[str, Any]) -> None:
        """A notebook starts: snapshot the caches and outputs, mark it running."""
        self._cache = snapshot([paths.cache_dir(), paths.models_dir()])
        self._outputs = {f: folder_files(f) for f in self._output_folders()}
        self._t0 = time.perf_counter()
        self.data["notebooks"][name] = {
            "run_id": self.run_id, "commit": self.git["commit"], "dirty": self.git["dirty"],
            "status": "running", "started": _now(), "wall_s": None,
            "parameters": _jsonable(dict(parameters))}
        self._write()

    def end(self, name: str, status: str, *, error: str | None = None) -> None:
        """A notebook ended (``finished``, ``failed`` or ``interrupted``): record what it did."""
        entry = self.data["notebooks"][name]
        params = entry["parameters"]
        cache_after = snapshot([paths.cache_dir(), paths.models_dir()])
        models = model_names(params)
        outputs = {f: written(before, folder_files(f)) for f, before in self._outputs.items()}
        entry.update(
            status=status, error=error, wall_s=round(time.perf_counter() - self._t0, 1),
            models={m: model_weights(m) for m in models},
            corpus=corpus_hashes(params) if "corpus" in params else None,
            cache={"written": written(self._cache, cache_after),
                   "unchanged": unchanged(self._cache, cache_after, models)},
            outputs=[_rel(f / o) for f, new in outputs.items() for o in new])
        self._write()
        self._update_sidecars(name, outputs)

    def finish(self, status: str) -> None:
        """The run ended (``finished``, ``failed`` or ``interrupted``)."""
        run = self.data["runs"][self.run_id]
        run.update(status=status, finished=_now())
        self._write()

    def _update_sidecars(self, name: str, outputs: Mapping[Path, list[str]]) -> None:
        entry = {"run_id": self.run_id, "notebook": name, "params": self.data["params"],
                 "commit": self.git["commit"], "dirty": self.git["dirty"],
                 "run_record": _rel(self.path)}
        for folder, new in outputs.items():
            side = sidecar_file(folder)
            if not new and not side.exists():
                continue
            files = _read_previous(side).get("files", {}) if side.exists() else {}
            files = {k: v for k, v in files.items() if (folder / k).exists()}
            files.update({o: entry for o in new})
            write_json(side, {"format": FORMAT, "files": files})
