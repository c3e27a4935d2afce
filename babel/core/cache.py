"""Verified cache entries: arrays whose sha256 sits in a metadata JSON written last.

An entry is a data file (``.npz``) and its metadata (``.json``). :func:`save_arrays` writes
the data under a unique temporary name, renames it into place, then writes the metadata the
same way, with the data file's sha256 and every array's shape and dtype. A kill at any point
leaves the old pair, the new pair, or data whose metadata is missing or disagrees: the last
is caught on load.

:func:`load_arrays` checks that the metadata is readable, that the data file's sha256 is the
recorded one and that the arrays have the recorded shapes and dtypes (``allow_pickle=False``
always); callers add their domain checks (language, layer count, expert balance) and raise
:class:`CacheError`. :func:`load_or_build` ties it together: a failing entry is moved aside
(``<name>.bad-<timestamp>``) with a :class:`CacheWarning` naming the file and the reason, and
rebuilt, one builder at a time under a per-entry :mod:`filelock` lock (another process asking
for the same entry waits, then reads it).

Entries written before hashes were recorded (no ``files`` in the metadata) cannot be
verified: they are treated as invalid, moved aside and rebuilt once.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
import warnings
import zipfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from filelock import FileLock

from babel.core.artifacts import atomic_path, sha256_file, write_json

T = TypeVar("T")
FILES_KEY = "files"  # {data file name: sha256}
ARRAYS_KEY = "arrays"  # {array name: {"shape": [...], "dtype": "int32"}}


class CacheError(ValueError):
    """A cached entry failed a check; the message names the file and the reason."""


class CacheMissing(CacheError):
    """No cached entry yet (neither file exists): build it, nothing to move aside."""


class CacheStale(CacheError):
    """A sound entry made with other settings: rebuild it in place, nothing to move aside."""


class CacheWarning(UserWarning):
    """A cached entry was moved aside and is being rebuilt."""


def save_arrays(data: Path, meta_path: Path, meta: dict[str, Any], **arrays: np.ndarray) -> dict:
    """Write ``arrays`` to ``data`` (``.npz``), then ``meta`` with their sha256, shapes and dtypes.

    Returns:
        The metadata as written.
    """
    with atomic_path(data) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
        digest = sha256_file(tmp)
    full = {**meta, FILES_KEY: {data.name: digest},
            ARRAYS_KEY: {k: {"shape": list(np.shape(v)), "dtype": str(np.asarray(v).dtype)}
                         for k, v in arrays.items()}}
    write_json(meta_path, full)
    return full


def read_meta(meta_path: Path) -> dict[str, Any]:
    """The metadata JSON of an entry as a dict, or :class:`CacheError` saying what is wrong."""
    try:
        meta = json.loads(Path(meta_path).read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise CacheError(f"{meta_path} is missing") from None
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise CacheError(f"{meta_path} is unreadable ({err.__class__.__name__})") from None
    if not isinstance(meta, dict):
        raise CacheError(f"{meta_path} does not hold a JSON object")
    return meta


def load_arrays(data: Path, meta_path: Path, names: Sequence[str]) -> tuple[dict[str, np.ndarray],
                                                                             dict[str, Any]]:
    """Read a verified entry: its arrays ``names`` and its metadata.

    Raises:
        CacheMissing: Neither file exists.
        CacheError: The metadata is missing or unreadable, the data file is missing, its sha256
            differs from the recorded one, or an array is missing or has another shape/dtype.
    """
    data, meta_path = Path(data), Path(meta_path)
    if not data.exists() and not meta_path.exists():
        raise CacheMissing(f"{data} is not cached yet")
    if not meta_path.exists():
        raise CacheError(f"{data} has no metadata {meta_path.name} (a write was interrupted)")
    meta = read_meta(meta_path)
    if not data.exists():
        raise CacheError(f"{data} is missing (its metadata {meta_path.name} exists)")
    files = meta.get(FILES_KEY)
    if isinstance(files, dict) and files and data.name not in files:
        raise CacheError(f"{meta_path} belongs to {', '.join(map(str, files))}, not {data.name} "
                         f"(copied from another entry)")
    if not isinstance(files, dict) or data.name not in files:
        raise CacheError(f"{meta_path} records no sha256 of {data.name} (an older cache)")
    if sha256_file(data) != files[data.name]:
        raise CacheError(f"{data} does not match the sha256 in {meta_path.name} "
                         f"(truncated, overwritten or copied from another entry)")
    try:
        with np.load(data, allow_pickle=False) as z:
            arrays = {k: z[k] for k in names}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        raise CacheError(f"{data} is unreadable ({err.__class__.__name__})") from None
    expected = meta.get(ARRAYS_KEY) or {}
    for k, a in arrays.items():
        want = expected.get(k)
        if not isinstance(want, dict) or list(a.shape) != want.get("shape") \
                or str(a.dtype) != want.get("dtype"):
            raise CacheError(f"{data}: array {k!r} is {a.dtype}{list(a.shape)}, the metadata "
                             f"says {want}")
    return arrays, meta


def move_aside(*files: Path, reason: str) -> list[Path]:
    """Rename each existing file to ``<name>.bad-<timestamp>`` and warn once (one line)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    moved = []
    for f in map(Path, files):
        if not f.exists():
            continue
        target = f.with_name(f"{f.name}.bad-{stamp}")
        n = 1
        while target.exists():
            target, n = f.with_name(f"{f.name}.bad-{stamp}-{n}"), n + 1
        f.replace(target)
        moved.append(target)
    names = ", ".join(p.name for p in moved) or "nothing"
    warnings.warn(f"{reason}; moved aside as {names} in {Path(files[0]).parent} and rebuilding",
                  CacheWarning, stacklevel=3)
    return moved


def remove_stale_temps(*paths: Path) -> None:
    """Remove temporary files of ``paths`` left by killed writers, with a one-line note.

    Call only while holding the entry's lock (:func:`entry_lock`): then no live writer owns them.
    """
    for p in map(Path, paths):
        for stale in p.parent.glob(f".{p.name}.*.tmp"):
            print(f"note: removing {stale}, an unfinished write of a killed run", file=sys.stderr)
            stale.unlink(missing_ok=True)


@contextlib.contextmanager
def entry_lock(*paths: Path) -> Iterator[None]:
    """Hold the lock of the entry whose first file is ``paths[0]``; remove its stale temps."""
    first = Path(paths[0])
    first.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(first.parent / f".{first.name}.lock")):
        remove_stale_temps(*paths)
        yield


def load_or_build(data: Path, meta_path: Path, load: Callable[[], T], build: Callable[[], T],
                  *, rebuild: bool = False) -> T:
    """``load()`` a cached entry, or ``build()`` it (``build`` saves it) under the entry's lock.

    ``load`` raises :class:`CacheMissing`, :class:`CacheStale` or :class:`CacheError`; only
    the last moves the files aside (with a warning) before the rebuild. A failed first look is
    repeated under the lock, so an entry another process is writing is never moved aside.
    """
    if not rebuild:
        with contextlib.suppress(CacheError):
            return load()
    with entry_lock(data, meta_path):
        if not rebuild:
            try:
                return load()
            except (CacheMissing, CacheStale):
                pass
            except CacheError as err:
                move_aside(data, meta_path, reason=str(err))
        return build()
