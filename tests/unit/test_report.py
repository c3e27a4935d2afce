"""The results report (babel.report) on a synthetic folder of executed notebooks.

The notebooks are built with nbformat and carry record outputs shaped as
:func:`babel.core.notebook.record` emits them; the figures are tiny PNGs; the frequency
table is a small parquet. Checked: every image the page shows exists, every internal link
resolves (anchors included), one claims row per claim, and the verdicts follow their rules
on planted values.
"""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import nbformat
import numpy as np
import pandas as pd
import pytest

import babel.report
from babel.core.notebook import RECORD_MIME, read_records
from babel.prune.conclusion import FREQ_MATCHED, GLOBAL, UNIFORM
from babel.report import build_report
from babel.report import claims as cl
from babel.report.executed import load, notebook_parameters

MODEL = "m1"


def _records(verdict: str) -> dict[str, dict]:
    """Planted records whose every claim should get ``verdict`` (holds / does not hold)."""
    ok = verdict == cl.HOLDS
    answer = {"model": MODEL, "outcome": "families" if ok else "scripts", "sentence": "…",
              "tests": [{"side": "families", "name": "clustering", "passed": ok, "detail": ""},
                        {"side": "scripts", "name": "clustering", "passed": not ok,
                         "detail": ""}]}
    classes = {"co_activated": 50 if ok else 0, "co_activated_share": 0.5 if ok else 0.0,
               "experts": 100, "high": 0.2, "low": 0.05, "rare": 15 if ok else 0,
               "rare_share": 0.15 if ok else 0.0, "specific_any": 20 if ok else 0,
               "specific_z": 3.0}
    g = {"value": 0.05, "low": 0.03, "high": 0.07} if ok else \
        {"value": 0.9, "low": 0.8, "high": 1.0}
    e2e = (1.35, 1.2, 1.5) if ok else (0.98, 0.9, 1.05)
    return {
        "02_activation_profiling": {
            "expert_classes": classes,
            "specific_per_language": {"en": 5, "fr": 7} if ok else {"en": 0, "fr": 0},
            "frequency_table": "expert-frequency_m1.parquet"},
        "03_language_families": {"answer": answer, "answers": {MODEL: answer}},
        "04_pruning": {
            "median_rise": {"1": {GLOBAL: 0.0}, "0.9": {GLOBAL: g["value"]}},
            "median_rise_ci": {"0.9": {GLOBAL: g,
                                       UNIFORM: {"value": 0.5, "low": 0.4, "high": 0.6},
                                       FREQ_MATCHED: {"value": 0.2, "low": 0.15,
                                                      "high": 0.25}}},
            "causal": {"language": "fr", "n_specific": 5, "rise_target": 1.0,
                       "rise_target_ci": [0.8, 1.2], "rise_others_mean": 0.05,
                       "rise_others_mean_ci": [0.01, 0.1]},
            "speed": [{"model": MODEL, "k": 0.9, "measured_end_to_end": e2e[0],
                       "measured_end_to_end_low": e2e[1], "measured_end_to_end_high": e2e[2]}]},
    }


PARAMETERS = {"04_pruning": {"model": MODEL, "evaluation": {"max_rise": 0.1}}}


def test_verdicts_follow_the_rules_on_planted_values():
    for verdict in (cl.HOLDS, cl.FAILS):
        found = cl.judge_all(_records(verdict), PARAMETERS)
        assert [f.verdict for _, f in found] == [verdict] * len(cl.CLAIMS), verdict
    found = cl.judge_all({}, {})
    assert {f.verdict for _, f in found} == {cl.UNMEASURED}


def test_differs_between_holds_and_does_not_hold():
    rec = _records(cl.HOLDS)
    rec["02_activation_profiling"]["expert_classes"].update(
        co_activated=12, co_activated_share=0.12, rare=2, rare_share=0.02)
    rec["02_activation_profiling"]["specific_per_language"]["en"] = 0  # not every language
    other = dict(rec["03_language_families"]["answer"], model="m2", outcome="scripts")
    rec["03_language_families"]["answers"]["m2"] = other  # the models disagree
    ci = rec["04_pruning"]["median_rise_ci"]["0.9"]
    ci[FREQ_MATCHED] = {"value": 0.2, "low": 0.06, "high": 0.25}  # lower, intervals overlap
    rec["04_pruning"]["speed"][0]["measured_end_to_end_high"] = 1.25  # faster, not ×1.3
    verdicts = {c.key: f.verdict for c, f in cl.judge_all(rec, PARAMETERS)}
    assert verdicts == {"families": cl.DIFFERS, "co-activated": cl.DIFFERS,
                        "specific": cl.DIFFERS, "rare": cl.DIFFERS, "quality": cl.HOLDS,
                        "beats-random": cl.DIFFERS, "speed": cl.DIFFERS}
    # the quality limit is the notebook's parameter, not a number of the report's
    strict = {"04_pruning": {"model": MODEL, "evaluation": {"max_rise": 0.01}}}
    assert {c.key: f.verdict for c, f in cl.judge_all(rec, strict)}["quality"] == cl.FAILS
    for a in rec["03_language_families"]["answers"].values():  # nothing testable
        a["tests"] = [dict(t, passed=None) for t in a["tests"]]
    assert cl.families(rec, PARAMETERS).verdict == cl.UNMEASURED
    unset = {"04_pruning": {"model": MODEL}}  # the notebook's settings default (+10%)
    assert {c.key: f.verdict for c, f in cl.judge_all(rec, unset)}["quality"] == cl.HOLDS


def test_figures_quote_the_recorded_values():
    found = {c.key: f.figure for c, f in cl.judge_all(_records(cl.HOLDS), PARAMETERS)}
    assert found["co-activated"].startswith("50 of 100 experts (50.0%) co-activated")
    assert "+5.0% at k = 0.9 (comparable: within +10.0%)" in found["quality"]
    assert f"{MODEL} ×1.35 [1.20, 1.50] at k = 0.9" in found["speed"]


def _record_output(name: str, value) -> nbformat.NotebookNode:
    return nbformat.v4.new_output("display_data",
                                  data={RECORD_MIME: {name: value}, "text/plain": f"recorded {name}"})


def _notebook(path: Path, title: str, sections: list[tuple[str, str, dict]]) -> None:
    """An executed notebook: a title, the parameters cell, then per section a heading with a
    caption and a code cell (``source``) with record outputs."""
    cells = [nbformat.v4.new_markdown_cell(f"# {title}\nWhat it shows."),
             nbformat.v4.new_code_cell(f'model = "{MODEL}"\nevaluation = {{"max_rise": 0.1}}',
                                       metadata={"tags": ["parameters"]}),
             nbformat.v4.new_code_cell('model = "m1"', metadata={"tags": ["injected-parameters"]})]
    for head, source, records in sections:
        cells.append(nbformat.v4.new_markdown_cell(f"## {head}\nCaption of *{head}*."))
        code = nbformat.v4.new_code_cell(source)
        code.outputs = [_record_output(k, v) for k, v in records.items()]
        cells.append(code)
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["papermill"] = {"parameters": {"model": MODEL}, "duration": 12.5,
                                "start_time": "2026-01-01T00:00:00", "end_time": "2026-01-01T00:00:12"}
    nbformat.validate(nb)
    nbformat.write(nb, path)


def _png(path: Path) -> None:
    fig, ax = plt.subplots(figsize=(1, 1))
    ax.plot([0, 1])
    fig.savefig(path, dpi=20)
    plt.close(fig)


@pytest.fixture
def executed(tmp_path, monkeypatch):
    """A folder of three executed notebooks, their figures, run.json and frequency table."""
    rec = _records(cl.HOLDS)
    folder = tmp_path / "executed" / "test"
    folder.mkdir(parents=True)
    p, f, r = rec["02_activation_profiling"], rec["03_language_families"], rec["04_pruning"]
    _notebook(folder / "02_activation_profiling.ipynb", "02 · Profiles", [
        ("The profiles", "table", {"frequency_table": p["frequency_table"]}),
        ("Heatmaps: layers × experts",  # nbconvert percent-encodes the × in the id
         'fig.savefig(paths.figure_file("expert-frequency-heatmaps", exp.model))', {}),
        ("Co-activated, language-specific and rare experts",
         'fig.savefig(paths.figure_file("expert-classes-by-layer", exp.model))',
         {k: p[k] for k in ("expert_classes", "specific_per_language")})])
    _notebook(folder / "03_language_families.ipynb", "03 · Families", [
        ("Conclusion", "answers", f)])
    _notebook(folder / "04_pruning.ipynb", "04 · Pruning", [
        ("Perplexity vs kept share",
         'fig.savefig(paths.figure_file("pruning-perplexity-vs-k", exp.model))',
         {k: r[k] for k in ("median_rise", "median_rise_ci")}),
        ("Causal test: remove only the experts specific to one language", "c",
         {"causal": r["causal"]}),
        ("Speed: structurally pruned models", 'save(f"pruning-speedup_{m}")',
         {"speed": r["speed"]})])
    (folder / "run.json").write_text(json.dumps({
        "format": 1, "params": "test", "latest_run": "r1", "cache_rule": "rule",
        "runs": {"r1": {"command": ["babel", "reproduce"], "status": "finished",
                        "git": {"commit": "abc1234", "dirty": False}, "versions": {}}},
        "notebooks": {"04_pruning": {"run_id": "r1", "status": "finished", "wall_s": 3.0,
                                     "parameters": {"model": MODEL}, "outputs": ["x.png"]}}}))
    figures = tmp_path / "figures"
    figures.mkdir()
    for name in ("expert-classes-by-layer", "pruning-perplexity-vs-k", "pruning-speedup",
                 "expert-frequency-heatmaps", "orphan-figure"):
        _png(figures / f"{name}_{MODEL}.png")
    results = tmp_path / "results"
    monkeypatch.setenv("BABEL_RESULTS_DIR", str(results))
    results.mkdir()
    layer, expert = np.meshgrid(np.arange(3), np.arange(8), indexing="ij")
    frames = [pd.DataFrame({"model": MODEL, "language": lang, "layer": layer.ravel(),
                            "expert": expert.ravel(), "frequency": np.random.default_rng(i)
                            .random(24), "count": 1, "tokens": 10})
              for i, lang in enumerate(("en", "fr", "xx"))]
    pd.concat(frames).to_parquet(results / p["frequency_table"], index=False)
    return {"folder": folder, "figures": figures, "out": tmp_path / "report"}


def test_executed_notebooks_read_back(executed):
    run = load(executed["folder"], figures=executed["figures"])
    assert list(run.notebooks) == ["02_activation_profiling", "03_language_families",
                                   "04_pruning"]
    assert run.records["04_pruning"] == read_records(executed["folder"] / "04_pruning.ipynb")
    assert run.parameters["04_pruning"] == {"model": MODEL, "evaluation": {"max_rise": 0.1}}
    assert notebook_parameters({"cells": []}) == {}
    where = run.find_code("pruning-speedup")
    assert where is not None and run.section(*where).heading.startswith("Speed")
    assert run.section(*where).text == "Caption of *Speed: structurally pruned models*."


class _Page(HTMLParser):
    """Images, links, ids, select options and claims-table rows of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.links: list[str] = []
        self.ids: set[str] = set()
        self.options: list[dict[str, str]] = []
        self.rows = 0
        self._in_claims = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "img":
            self.images.append(a["src"])
        if tag == "a" and "href" in a:
            self.links.append(a["href"])
        if tag == "option":
            self.options.append(a)
        if tag == "table":
            self._in_claims = a.get("id") == "claims"
        if tag == "tr" and self._in_claims:
            self.rows += 1

    def handle_endtag(self, tag):
        if tag == "table":
            self._in_claims = False


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def test_report_links_images_and_claims(executed):
    index = build_report(executed["folder"], out=executed["out"], figures=executed["figures"],
                         params="test")
    out = executed["out"]
    page = _parse(index)
    assert page.rows == 1 + len(cl.CLAIMS)  # header + one row per claim
    assert babel.report.CLAIMS is cl.CLAIMS
    # every image exists inside the report folder, linked relatively
    shown = page.images + [o[k] for o in page.options for k in ("data-frequency",
                                                                "data-difference")]
    assert len(page.options) == 3 and len(shown) >= 3 * 2 + 4
    for src in shown:
        assert not src.startswith(("/", "file:", "http")), src
        assert (out / unquote(src)).is_file(), src
    # every internal link resolves: files exist, anchors exist in their page
    pages = {"index.html": page}
    for href in page.links:
        assert not href.startswith(("/", "file:", "http")), href
        target, _, anchor = href.partition("#")
        target = target or "index.html"
        assert (out / unquote(target)).is_file(), href
        if anchor:
            if target not in pages:
                pages[target] = _parse(out / target)
            assert unquote(anchor) in pages[target].ids, href  # as a browser decodes it
    # the claims link to the sections that measure them and the figures that show them
    assert {f"claim-{c.key}" for c in cl.CLAIMS} <= page.ids
    assert {"notebooks/04_pruning.html#Perplexity-vs-kept-share",
            "notebooks/04_pruning.html#Speed:-structurally-pruned-models",
            "notebooks/02_activation_profiling.html#Heatmaps:-layers-×-experts",
            "#fig-pruning-perplexity-vs-k_m1", "#fig-pruning-speedup_m1"} <= set(page.links)
    text = index.read_text(encoding="utf-8")
    assert text.count('class="verdict holds"') == len(cl.CLAIMS)  # planted: everything holds
    assert "orphan-figure_m1.png</b> — drawn by no notebook of this run" in text
    assert "Caption of <em>Perplexity vs kept share</em>" in text  # the notebook's words
    assert "abc1234" in text and "x.png" in text  # run.json's provenance
    assert "No summary" in text  # the README text needs notebooks 01-04


def test_report_without_a_frequency_table_says_so(executed, tmp_path, monkeypatch):
    monkeypatch.setenv("BABEL_RESULTS_DIR", str(tmp_path / "empty"))
    index = build_report(executed["folder"], out=executed["out"], figures=executed["figures"])
    assert "No explorer: no frequency table" in index.read_text(encoding="utf-8")
    assert not (executed["out"] / "explorer").exists()
