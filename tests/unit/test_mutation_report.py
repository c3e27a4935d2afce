"""The mutation report (`make mutation`): equivalent mutants parsed from their list, survivors
split into equivalent and unexplained, the score over every counted mutant."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

_PATH = Path(__file__).parents[1] / "mutation_report.py"
_spec = importlib.util.spec_from_file_location("mutation_report", _PATH)
report = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(report)


def test_every_listed_equivalent_line_names_a_mutant():
    """Each bullet under a ``## babel/…`` heading of the committed list parses to one name
    (a typo in the line format would silently drop it from the report)."""
    text = report.EQUIVALENTS.read_text(encoding="utf-8")
    bullets, module = 0, None
    for line in text.splitlines():
        if line.startswith("## "):
            module = line if re.match(r"## babel/\S+\.py\s*$", line) else None
        elif module and line.startswith("- "):
            bullets += 1
    names = report.listed_equivalents()
    assert bullets > 0
    assert len(names) == bullets
    assert all(re.fullmatch(r"babel(\.\w+)+\.x\S+__mutmut_\d+", n) for n in names)


def test_listed_equivalents_of_a_hand_written_list(tmp_path):
    """Names are prefixed with the heading's module; lines under other headings are ignored."""
    f = tmp_path / "eq.md"
    f.write_text("# title\n- a:b x_b__mutmut_9 — not under a module\n"
                 "## babel/prune/flops.py\n\n- flops:f x_f__mutmut_3 — reason\n"
                 "- flops:C.m xǁCǁm__mutmut_12 — reason\n## killed by new tests\n"
                 "- flops:f x_f__mutmut_4 — killed\n", encoding="utf-8")
    assert report.listed_equivalents(f) == {"babel.prune.flops.x_f__mutmut_3",
                                            "babel.prune.flops.xǁCǁm__mutmut_12"}


def test_score_counts_equivalents_as_survivors(tmp_path, monkeypatch, capsys):
    """4 counted mutants (killed, timeout, survived-and-listed, survived) and one not run:
    score 2 of 4 = 50.0%, one equivalent, one unexplained."""
    pytest.importorskip("mutmut")
    from mutmut.stats import status_by_exit_code

    code = {s: c for c, s in status_by_exit_code.items()}
    meta = tmp_path / "mutants" / "babel" / "prune" / "flops.py.meta"
    meta.parent.mkdir(parents=True)
    meta.write_text(json.dumps({"exit_code_by_key": {
        "babel.prune.flops.x_f__mutmut_1": code["killed"],
        "babel.prune.flops.x_f__mutmut_2": code["timeout"],
        "babel.prune.flops.x_f__mutmut_3": code["survived"],
        "babel.prune.flops.x_f__mutmut_4": code["survived"],
        "babel.prune.flops.x_f__mutmut_5": None}}))
    eq = tmp_path / "eq.md"
    eq.write_text("## babel/prune/flops.py\n- flops:f x_f__mutmut_3 — reason\n", encoding="utf-8")
    monkeypatch.setattr(report, "EQUIVALENTS", eq)
    assert report.main(str(tmp_path / "mutants")) == 0
    out = capsys.readouterr().out
    assert "2 of 4 mutants killed = 50.0%" in out
    assert "1 listed as equivalent" in out and "1 unexplained" in out
    assert "x_f__mutmut_4 (survived)" in out and "x_f__mutmut_3 (survived)" not in out
    assert report.main(str(tmp_path / "mutants"), "--markdown") == 0
    assert "| **all** | **4** | **2** | **1** | **1** | **50.0%** |" in capsys.readouterr().out
