"""The notebook runner's messages: Ctrl-C, errors inside a notebook, nan, comma lists.

papermill is replaced by a fake that writes an executed copy (or raises), so no kernel starts.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable

import papermill
import pytest
from papermill.exceptions import PapermillExecutionError

from babel import cli
from babel.core import notebook, paths
from babel.core.params import ParameterError, check_choice, comma_list, raw_hint

PARAMS = """
common: {model: tiny, languages: all, seed: 0}
nb_a: {}
nb_b: {pruning_languages: [en, fr]}
"""
CELLS = {"nb_a": {"model": "m", "languages": "all", "seed": 0, "note": "x",
                  "experts": [32, 64]},
         "nb_b": {"model": "m", "languages": "all", "seed": 0, "pruning_languages": ["en"]}}


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """Two notebooks ``nb_a``, ``nb_b``; ``fake[name]`` is what executing it does."""
    (tmp_path / "params").mkdir()
    for name in ("default", "smoke"):
        (tmp_path / "params" / f"{name}.yaml").write_text(PARAMS)
    monkeypatch.setattr(paths, "PARAMS_DIR", tmp_path / "params")
    monkeypatch.setattr(paths, "EXECUTED_DIR", tmp_path / "executed")
    monkeypatch.setenv("BABEL_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setattr(notebook, "notebook_names", lambda: ["nb_a", "nb_b"])
    monkeypatch.setattr(notebook, "to_ipynb", lambda name: tmp_path / f"{name}.ipynb")
    monkeypatch.setattr(notebook, "notebook_defaults",
                        lambda ipynb: dict(CELLS[ipynb.stem]))
    behaviour: dict[str, Callable[[], None]] = {}
    calls: dict[str, dict] = {}

    def execute(src, out, *, parameters, **kw):
        name = src.rsplit("/", 1)[-1].removesuffix(".ipynb")
        calls[name] = parameters
        cache = paths.cache_dir() / "profiles" / "tiny" / f"{name}.npz"
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_bytes(b"counts")
        if name in behaviour:
            behaviour[name]()
        with open(out, "w") as fh:
            json.dump({"cells": []}, fh)

    monkeypatch.setattr(papermill, "execute_notebook", execute)
    return {"do": behaviour, "calls": calls, "root": tmp_path}


def _args(command: str = "all", names=(), p=(), r=()) -> argparse.Namespace:
    return argparse.Namespace(command=command, names=list(names), params="smoke",
                              p=[list(x) for x in p], r=[list(x) for x in r])


def _kernel_error(ename: str, evalue: str) -> PapermillExecutionError:
    return PapermillExecutionError(3, 3, "exp = ...", ename, evalue,
                                   ["\x1b[31mTraceback\x1b[0m", "... 40 lines ..."])


def _raise(err: BaseException) -> Callable[[], None]:
    def go() -> None:
        raise err
    return go


def _zmq_after_interrupt() -> None:
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt:
        raise RuntimeError("ZMQError: Socket operation on non-socket") from None


@pytest.mark.parametrize("error", [
    _raise(KeyboardInterrupt()),
    _raise(_kernel_error("KeyboardInterrupt", "")),  # the kernel got the SIGINT
    _zmq_after_interrupt,  # the kernel's shutdown failed while handling it
])
def test_ctrl_c_is_one_line_exit_130(fake, capsys, error):
    fake["do"]["nb_b"] = error
    assert notebook.run_from_args(_args()) == notebook.INTERRUPTED_EXIT == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("interrupted during nb_b: kept the finished notebook(s) nb_a and "
                          "the 2 cache file(s) written so far (listed in ")
    assert err.rstrip().endswith("to resume, rerun the same command (finished caches are "
                                 "reused)")
    record = json.loads((fake["root"] / "executed" / "smoke" / "run.json").read_text())
    assert record["notebooks"]["nb_a"]["status"] == "finished"
    assert record["notebooks"]["nb_b"]["status"] == "interrupted"
    assert record["runs"][record["latest_run"]]["status"] == "interrupted"


def test_ctrl_c_before_any_notebook(fake, capsys, monkeypatch):
    monkeypatch.setattr(notebook, "to_ipynb", _raise_on_call(KeyboardInterrupt()))
    assert notebook.run_from_args(_args()) == 130
    assert capsys.readouterr().err == (
        "interrupted before any notebook ran: kept no finished notebook; to resume, rerun the "
        "same command (finished caches are reused)\n")


def _raise_on_call(err: BaseException) -> Callable[..., None]:
    def go(*a, **kw) -> None:
        raise err
    return go


@pytest.mark.parametrize("argv", [["run", "nb_a", "nb_b", "--params", "smoke"],
                                  ["reproduce", "--params", "smoke"]])
def test_babel_run_and_reproduce_exit_130(fake, capsys, argv):
    fake["do"]["nb_b"] = _raise(KeyboardInterrupt())
    assert cli.main(argv) == 130
    assert notebook.main(argv) == 130
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all(e.startswith("interrupted during nb_b") for e in err)


def test_parameter_error_in_the_kernel_is_one_line(fake, capsys):
    msg = "languages contains nan (float), not a string"
    fake["do"]["nb_a"] = _raise(_kernel_error("ParameterError", msg))
    assert notebook.run_from_args(_args()) == 1
    assert capsys.readouterr().err == f"error: nb_a: ParameterError: {msg}\n"
    assert "nb_b" not in fake["calls"]  # the run stops at the first failure
    record = json.loads((fake["root"] / "executed" / "smoke" / "run.json").read_text())
    assert record["notebooks"]["nb_a"]["error"] == f"ParameterError: {msg}"


def test_other_kernel_errors_point_at_the_traceback(fake, capsys):
    fake["do"]["nb_b"] = _raise(_kernel_error("ValueError", "bad shape\nmore"))
    assert notebook.run_from_args(_args()) == 1
    assert capsys.readouterr().err == ("error: nb_b: ValueError: bad shape (traceback in "
                                       f"{paths.EXECUTED_DIR / 'smoke' / 'nb_b.ipynb'})\n")


def test_yaml_nan_for_a_text_parameter_gets_the_raw_hint(fake, capsys):
    assert notebook.run_from_args(_args(p=[("languages", ".nan")])) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "-r NAME VALUE" in err and "-r languages nan" in err
    assert not fake["calls"]
    # a bare nan is text for babel's -p (YAML), unlike papermill's -p
    assert notebook.run_from_args(_args(p=[("languages", "nan")])) == 0
    assert fake["calls"]["nb_a"]["languages"] == "nan"


def test_papermill_nan_hint():
    assert "-r NAME VALUE" in raw_hint("causal_language")
    with pytest.raises(ParameterError, match=r"got nan; papermill's -p reads nan .*-r NAME "
                                             r"VALUE, e.g. -r code nan$"):
        check_choice("code", math.nan, ["en", "nan"])
    with pytest.raises(ParameterError, match=r"got nan$"):  # "nan" is no choice: no -r hint
        check_choice("method", math.nan, ["kmeans"])


@pytest.mark.parametrize("option, name, value, expected", [
    ("p", "languages", "en,fr", ["en", "fr"]),
    ("r", "languages", "en, fr", ["en", "fr"]),
    ("p", "languages", "[en, fr]", ["en", "fr"]),
    ("p", "languages", "all", "all"),
    ("p", "languages", "en", "en"),
    ("p", "experts", "32,64", [32, 64]),  # each item parsed as YAML
    ("r", "experts", "32,64", ["32", "64"]),  # raw: strings
    ("p", "note", "a,b", "a,b"),  # not a list parameter: unchanged
    ("p", "seed", "3", 3),
])
def test_comma_lists_for_list_parameters(fake, option, name, value, expected):
    args = _args(**{option: [(name, value)]})
    assert notebook.run_from_args(args) == 0
    assert fake["calls"]["nb_a"][name] == expected


def test_comma_list_reaches_only_the_notebooks_that_declare_it(fake):
    assert notebook.run_from_args(_args(r=[("pruning_languages", "de,fr")])) == 0
    assert fake["calls"]["nb_b"]["pruning_languages"] == ["de", "fr"]
    assert "pruning_languages" not in fake["calls"]["nb_a"]


def test_comma_list_helper():
    assert comma_list("en,fr,") == ["en", "fr"]
    assert comma_list("[en, fr]") == "[en, fr]" and comma_list(3) == 3
    assert comma_list("1,2", item=int) == [1, 2]


def test_unknown_override_is_one_line(fake, capsys):
    assert notebook.run_from_args(_args(p=[("langauges", "en")])) == 1
    assert capsys.readouterr().err == ("error: no notebook has parameter(s) ['langauges']; see "
                                       "the parameters cells in notebooks/\n")
