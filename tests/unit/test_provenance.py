"""Each run records what made it: run.json beside the executed notebooks, sidecars beside
figures and tables, the run id in the README's results block.

papermill is replaced by a fake that writes caches, a figure and a table, so no kernel starts.
"""

from __future__ import annotations

import argparse
import json
import re

import papermill
import pytest

from babel import results
from babel.core import notebook, paths, provenance
from babel.core.artifacts import sha256_file, write_json

PARAMS = """
common: {model: tiny, languages: [en, fr], corpus: builtin}
nb_a: {}
nb_b: {compare_models: [other]}
"""
CELLS = {"nb_a": {"model": "m", "languages": "all", "corpus": "builtin", "score_tokens": 8},
         "nb_b": {"model": "m", "languages": "all", "corpus": "builtin", "compare_models": []}}


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """Notebooks ``nb_a``, ``nb_b``; a built model cache ``tiny`` with its babel_meta.json."""
    (tmp_path / "params").mkdir()
    (tmp_path / "params" / "smoke.yaml").write_text(PARAMS)
    (tmp_path / "params" / "default.yaml").write_text(PARAMS)
    monkeypatch.setattr(paths, "PARAMS_DIR", tmp_path / "params")
    monkeypatch.setattr(paths, "EXECUTED_DIR", tmp_path / "executed")
    monkeypatch.setenv("BABEL_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setattr(notebook, "notebook_names", lambda: ["nb_a", "nb_b"])
    monkeypatch.setattr(notebook, "to_ipynb", lambda name: tmp_path / f"{name}.ipynb")
    monkeypatch.setattr(notebook, "notebook_defaults", lambda ipynb: dict(CELLS[ipynb.stem]))
    write_json(paths.model_cache_dir("tiny") / "babel_meta.json",
               {"files": {"model.safetensors": "ab" * 32, "config.json": "cd" * 32},
                "gguf": "tiny.gguf", "gguf_sha256": "ef" * 32, "source_package": "tiny-gguf"})
    (paths.model_cache_dir("tiny") / "model.safetensors").write_bytes(b"w")
    seen: dict[str, dict] = {}

    def execute(src, out, *, parameters, **kw):
        name = src.rsplit("/", 1)[-1].removesuffix(".ipynb")
        # what a killed run would leave: the record is already on disk
        seen[name] = json.loads(provenance.run_file(paths.EXECUTED_DIR / "smoke").read_text())
        part = paths.cache_dir() / "partitions" / "tiny" / "k" / "partition.npz"
        if not part.exists():  # nb_a builds it, nb_b reads it
            part.parent.mkdir(parents=True)
            part.write_bytes(b"labels")
        prof = paths.profile_file("tiny", f"key-{name}", "en")
        prof.parent.mkdir(parents=True, exist_ok=True)
        prof.write_bytes(name.encode())
        paths.figure_file(f"fig-{name}", "tiny").write_bytes(b"png")
        paths.results_file(f"table-{name}.csv").write_text("a,b\n")
        with open(out, "w") as fh:
            json.dump({"cells": []}, fh)

    monkeypatch.setattr(papermill, "execute_notebook", execute)
    return seen


def _run(command: str = "all", names=(), p=()) -> int:
    args = argparse.Namespace(command=command, names=list(names), params="smoke",
                              p=[list(x) for x in p], r=[])
    return notebook.run_from_args(args)


def _record() -> dict:
    return json.loads(provenance.run_file(paths.EXECUTED_DIR / "smoke").read_text())


def test_run_json_records_code_versions_parameters_inputs_and_caches(fake):
    assert _run() == 0
    rec = _record()
    run_id = rec["latest_run"]
    run = rec["runs"][run_id]
    assert re.fullmatch(r"\d{8}T\d{6}Z-([0-9a-f]{7}(-dirty)?|nogit)", run_id)
    assert run["status"] == "finished" and run["finished"]
    assert set(run["git"]) == {"commit", "dirty", "changed_paths"}
    assert {"python", "torch", "transformers", "numpy"} <= set(run["versions"])
    assert run["versions"]["python"].count(".") == 2
    a, b = rec["notebooks"]["nb_a"], rec["notebooks"]["nb_b"]
    assert a["run_id"] == b["run_id"] == run_id and a["status"] == "finished"
    assert a["commit"] == run["git"]["commit"]
    # resolved: the cell's defaults, then the set's values
    assert a["parameters"] == {"model": "tiny", "languages": ["en", "fr"], "corpus": "builtin",
                               "score_tokens": 8}
    assert isinstance(a["wall_s"], float)
    assert a["models"]["tiny"]["weights_sha256"] == {"model.safetensors": "ab" * 32}
    assert a["models"]["tiny"]["gguf_sha256"] == "ef" * 32
    assert b["models"]["other"]["weights_sha256"] is None  # no cache: said, not guessed
    assert a["corpus"]["files"] == {
        f"{lang}.jsonl": sha256_file(paths.corpus_file(lang)) for lang in ("en", "fr")}
    part = str(paths.cache_dir() / "partitions" / "tiny" / "k" / "partition.npz")
    assert part in a["cache"]["written"] and part not in b["cache"]["written"]
    assert part in b["cache"]["unchanged"]  # present before, untouched: could be read
    assert str(paths.profile_file("tiny", "key-nb_b", "en")) in b["cache"]["written"]
    assert "cache_rule" in rec and "reads are not logged" in rec["cache_rule"]


def test_run_json_is_written_before_each_notebook(fake):
    assert _run() == 0
    assert fake["nb_a"]["notebooks"]["nb_a"]["status"] == "running"
    mid = fake["nb_b"]["notebooks"]
    assert mid["nb_a"]["status"] == "finished" and mid["nb_b"]["status"] == "running"
    assert not list((paths.EXECUTED_DIR / "smoke").glob(".*tmp"))  # atomic: no temp left


def test_figures_and_tables_name_the_run_that_made_them(fake):
    assert _run() == 0
    run_id = _record()["latest_run"]
    figs = json.loads(provenance.sidecar_file(paths.figures_dir()).read_text())["files"]
    assert set(figs) == {"fig-nb_a_tiny.png", "fig-nb_b_tiny.png"}
    assert figs["fig-nb_b_tiny.png"]["run_id"] == run_id
    assert figs["fig-nb_b_tiny.png"]["notebook"] == "nb_b"
    tables = json.loads(provenance.sidecar_file(paths.results_file("x").parent).read_text())
    assert tables["files"]["table-nb_a.csv"]["run_id"] == run_id


def test_a_later_partial_run_keeps_the_other_notebooks_entries(fake):
    assert _run() == 0
    first = _record()["latest_run"]
    assert _run("run", ["nb_b"]) == 0
    rec = _record()
    second = rec["latest_run"]
    assert second != first
    assert rec["notebooks"]["nb_a"]["run_id"] == first
    assert rec["notebooks"]["nb_b"]["run_id"] == second
    assert set(rec["runs"]) == {first, second}
    figs = json.loads(provenance.sidecar_file(paths.figures_dir()).read_text())["files"]
    assert figs["fig-nb_a_tiny.png"]["run_id"] == first
    assert figs["fig-nb_b_tiny.png"]["run_id"] == second
    assert _run("run", ["nb_a"]) == 0 and _run("run", ["nb_b"]) == 0
    assert len(_record()["runs"]) == 2  # runs no notebook refers to any more are dropped


def test_a_corrupt_run_json_is_replaced(fake, capsys):
    f = provenance.run_file(paths.EXECUTED_DIR / "smoke")
    f.parent.mkdir(parents=True)
    f.write_text('{"format": 1, "notebo')
    assert _run() == 0
    assert "run.json is unreadable; writing a new one" in capsys.readouterr().err
    assert _record()["notebooks"]["nb_b"]["status"] == "finished"


def test_no_git(monkeypatch):
    monkeypatch.setattr(provenance, "_git", lambda *a: None)
    git = provenance.git_state()
    assert git == {"commit": None, "dirty": None, "changed_paths": None}
    assert provenance.new_run_id(git).endswith("-nogit")


def test_git_state_of_this_checkout():
    git = provenance.git_state()
    if git["commit"] is None:
        pytest.skip("no git here")
    assert re.fullmatch(r"[0-9a-f]{40}", git["commit"]) and isinstance(git["dirty"], bool)


def test_written_and_unchanged_rules():
    before = {"c/profiles/tiny/k/en.npz": (1, 1), "c/profiles/big/k/en.npz": (1, 1),
              "c/profiles/tiny/k/fr.npz": (1, 1)}
    after = {**before, "c/profiles/tiny/k/fr.npz": (2, 2), "c/partitions/tiny/p.npz": (1, 3)}
    assert provenance.written(before, after) == ["c/partitions/tiny/p.npz",
                                                 "c/profiles/tiny/k/fr.npz"]
    assert provenance.unchanged(before, after, ["tiny"]) == ["c/profiles/tiny/k/en.npz"]


def test_model_names_from_parameters():
    params = {"model": "gemma-3-270m", "compare_models": ["smollm2-135m"],
              "speed": {"models": ["gemma-3-270m", "x"]}, "languages": ["en"]}
    assert provenance.model_names(params) == ["gemma-3-270m", "smollm2-135m", "x"]


def test_readme_block_names_the_run(fake, tmp_path, monkeypatch):
    monkeypatch.setattr(results, "NOTEBOOKS", ("nb_a", "nb_b"))
    executed = paths.EXECUTED_DIR / "smoke"
    assert "no run record (run.json)" in results.run_statement(tmp_path)
    assert _run() == 0
    rec = _record()
    git = rec["runs"][rec["latest_run"]]["git"]
    statement = results.run_statement(executed)
    assert statement.startswith(f"run `{rec['latest_run']}` (")
    if git["commit"]:
        assert f"commit `{git['commit'][:7]}`" in statement
    assert _run("run", ["nb_b"]) == 0
    rec2 = _record()
    assert results.run_statement(executed).endswith(f"run `{rec2['latest_run']}` "
                                                    f"({results._commit(git)}) for nb")
