"""Two processes asking for the same model cache at once: one builds, the other waits and reads."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import time
from pathlib import Path

from babel.core.artifacts import sha256_file
from babel.models import loading


def _fake_build(name: str, cache: Path) -> None:
    """Mimics the real build: a private temp folder, a slow step, then one rename."""
    tmp = cache.parent / f".{cache.name}.building-{os.getpid()}"
    tmp.mkdir()
    with open(cache.parent / "builds.log", "a") as fh:
        fh.write(f"{os.getpid()}\n")
    time.sleep(1.0)
    (tmp / "model.safetensors").write_bytes(b"weights")
    files = {"model.safetensors": sha256_file(tmp / "model.safetensors")}
    (tmp / loading.META_FILE).write_text(json.dumps({"format": loading.CACHE_FORMAT,
                                                     "files": files}))
    tmp.rename(cache)


def _ask(models_dir: str, out: str) -> None:
    os.environ["BABEL_MODELS_DIR"] = models_dir
    loading._build_cache = _fake_build
    Path(out).write_text(str(loading.embedded_model_path("gemma-3-270m")))


def test_one_builds_the_other_waits(tmp_path):
    stale = tmp_path / ".gemma-3-270m.building-killed"
    stale.mkdir()  # what a killed build leaves behind
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_ask, args=(str(tmp_path), str(tmp_path / f"out{i}")))
             for i in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    builds = (tmp_path / "builds.log").read_text().split()
    assert len(builds) == 1  # exactly one process built
    got = {(tmp_path / f"out{i}").read_text() for i in range(2)}
    assert got == {str(tmp_path / "gemma-3-270m")}
    assert loading._cache_is_valid(tmp_path / "gemma-3-270m") == (True, "ok")
    assert not stale.exists()  # removed by the builder, with a note
    assert not list(tmp_path.glob(".gemma-3-270m.building*"))
