"""The README's results section, written from the values the executed notebooks recorded.

Nothing here is typed by hand: every number comes from :func:`babel.core.notebook.record` in
the executed default run (``build/executed/default/``). ``python -m babel results`` rewrites
the block between ``<!-- results:begin -->`` and ``<!-- results:end -->`` in README.md.
The block names the run(s) that made the executed notebooks (run id and commit, from their
``run.json``, :mod:`babel.core.provenance`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from babel.core import paths
from babel.core.artifacts import atomic_path, read_json
from babel.core.notebook import read_records
from babel.core.provenance import run_file
from babel.families.conclusion import ordinal

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
NOTEBOOKS = ("01_expert_construction", "02_activation_profiling", "03_language_families",
             "04_pruning")


def _pct(x: float | None, digits: int = 1) -> str:
    return "n/a" if x is None else f"{100 * x:+.{digits}f}%"


def _ci(row: Mapping[str, Any], key: str) -> str:
    """`` (95% CI ×a–×b)`` when the row has ``key_low`` / ``key_high``."""
    lo, hi = row.get(f"{key}_low"), row.get(f"{key}_high")
    return "" if lo is None or hi is None else f" (CI ×{lo:.2f}–×{hi:.2f})"


def _first_sentence(text: str) -> str:
    text = re.sub(r"\s+", " ", text.strip())
    m = re.match(r"(.+?[.!?])(\s|$)", text)
    return m.group(1) if m else text


def construction(rec: Mapping[str, Any]) -> str:
    ex = rec.get("exactness", {})
    return (f"**Expert construction (01).** Mean within-expert cosine of the clustered rows: "
            f"{rec['cohesion_chosen_mean']:.3f} for the chosen construction against "
            f"{rec['cohesion_random_mean']:.4f} for a random partition; balanced: "
            f"{rec['balanced']}. Selecting every expert reproduces the dense logits with max "
            f"|Δ| = {ex.get('moe_all_experts_max_abs_diff')}; the neuron-reordered model "
            f"differs by {ex.get('reordered_max_abs_diff', float('nan')):.1e} (summation "
            f"order), same greedy continuation: {ex.get('same_greedy_continuation')}.")


def profiles(rec: Mapping[str, Any]) -> str:
    c = rec["expert_classes"]
    tokens = rec["tokens_per_language"]
    text = (f"**Activation profiles (02).** {len(tokens)} languages, "
            f"{min(tokens.values()):,}–{max(tokens.values()):,} profiled tokens per language. "
            f"{c['co_activated']} of {c['experts']} experts ({c['co_activated_share']:.1%}) are "
            f"co-activated (frequency ≥ {c['high']:.3f} in every language; the paper: about "
            f"half), {c['rare']} ({c['rare_share']:.1%}) are rare (< {c['low']:.3f} everywhere; "
            f"the paper: >1000 of 8192 = 12.2%), and {c['specific_any']} are specific to at "
            f"least one language (z ≥ {c['specific_z']:g}).")
    cut = rec.get("paper_cutoffs")
    if cut:
        text += (f" This model would show the paper's counts only at other cut-offs: half "
                 f"co-activated at high = {cut['co_activated_high_factor']:.2f}·r, 12.2% rare "
                 f"at low = {cut['rare_low_factor']:.2f}·r (figure "
                 f"`expert-classes-sensitivity_*.png`).")
    return text


def families(rec: Mapping[str, Any]) -> str:
    answers = rec.get("answers") or {}
    lines = [f"**Families or scripts (03).** {a['sentence']}" if i == 0 else a["sentence"]
             for i, a in enumerate(answers.values())]
    text = " ".join(lines) if lines else "**Families or scripts (03).** Not testable here."
    for model in answers:
        ag = rec.get(f"{model}/agreement") or {}
        ctrl = {c["pair"]: c["percentile"] for c in rec.get(f"{model}/controls") or []}
        bits = [f"ARI {lab} {ag[f'ari_{lab}']:.2f}" for lab in ("branch", "family", "script")
                if ag.get(f"ari_{lab}") is not None]
        bits += [f"{pair} at the {ordinal(pct)} percentile of pair similarity"
                 for pair, pct in ctrl.items() if pair in ("sr-Cyrl–sr-Latn", "hi–ur")]
        if bits:
            text += f" {model}: " + "; ".join(bits) + "."
    budget = rec.get("budget_comparison") or []
    if len(budget) >= 2:
        text += " Under the other profile budget the answer is " + "; ".join(
            f"{b['outcome']} ({b['budget']})" for b in budget) + "."
    return text


def pruning(rec: Mapping[str, Any]) -> str:
    paragraphs = rec["conclusion"].split("\n\n")
    text = "**Pruning (04).** "
    if paragraphs[0].startswith("**Best pruning method") and len(paragraphs) > 1:
        # the pruning-methods frontier's headline (issue 17), then the paper's method
        text += paragraphs[0].replace("**", "") + (
            " Full table: `build/results/pruning_methods_<model>.csv`, figure "
            "`pruning-methods-frontier_*.png`. The paper's method in detail: ")
        paragraphs = paragraphs[1:]
    text += _first_sentence(paragraphs[0]).replace("**", "")
    ci = rec.get("median_rise_ci") or {}
    rows = []
    for k, methods in sorted(ci.items(), key=lambda kv: -float(kv[0])):
        cells = [f"{m} {_pct(v['value'])} [{_pct(v['low'])}, {_pct(v['high'])}]"
                 for m, v in methods.items() if not m.startswith("random (layer")]
        rows.append(f"k = {k}: " + "; ".join(cells))
    if rows:
        text += " Median held-out perplexity rise (95% CI over items): " + " · ".join(rows) + "."
    causal = rec.get("causal") or {}
    if causal.get("n_specific"):
        text += (f" Removing the {causal['n_specific']} experts specific to "
                 f"{causal['language']}: {_pct(causal['rise_target'])} on "
                 f"{causal['language']} vs {_pct(causal['rise_others_mean'])} on the others "
                 f"(frequency-matched random experts: {_pct(causal['rise_target_random'])} / "
                 f"{_pct(causal['rise_others_random_mean'])}).")
    speed = rec.get("speed") or []
    if speed:
        text += " Measured speedups, 95% CI over timing rounds (FLOP theory in brackets): " + "; ".join(
            f"{s['model']} k={s['k']:g} body ×{s['measured_body']:.2f}{_ci(s, 'measured_body')} "
            f"[×{s['theoretical_body']:.2f}], end to end ×{s['measured_end_to_end']:.2f}"
            f"{_ci(s, 'measured_end_to_end')} [×{s['theoretical_end_to_end']:.2f}]"
            for s in speed) + "."
    return text


def _commit(git: Mapping[str, Any]) -> str:
    commit = (git.get("commit") or "")[:7]
    if not commit:
        return "no git commit"
    return f"commit `{commit}`" + (" with uncommitted changes" if git.get("dirty") else "")


def run_statement(executed: Path) -> str:
    """Which run made the executed notebooks: its id and commit (several runs: each, with its
    notebooks); from ``run.json`` beside them."""
    try:
        record = read_json(run_file(executed))
        notebooks, runs = record["notebooks"], record["runs"]
    except (OSError, ValueError, KeyError, TypeError):
        return "no run record (run.json) beside them: made before runs were recorded"
    by_run: dict[str, list[str]] = {}
    for name in NOTEBOOKS:
        entry = notebooks.get(name) or {}
        by_run.setdefault(entry.get("run_id") or "unrecorded", []).append(name[:2])
    parts = []
    for run_id, names in by_run.items():
        git = (runs.get(run_id) or {}).get("git") or {}
        text = f"run `{run_id}` ({_commit(git)})" if run_id != "unrecorded" else "no record"
        parts.append(text if len(by_run) == 1 else f"{text} for {', '.join(names)}")
    unfinished = [n[:2] for n in NOTEBOOKS
                  if (notebooks.get(n) or {}).get("status", "finished") != "finished"]
    tail = f"; not finished: {', '.join(unfinished)}" if unfinished else ""
    return "; ".join(parts) + tail


def results_markdown(executed: Path) -> str:
    """The results section from the executed notebooks in ``executed``."""
    recs = {}
    for name in NOTEBOOKS:
        nb = executed / f"{name}.ipynb"
        if not nb.exists():
            raise FileNotFoundError(f"no executed {nb}: run `make reproduce` first")
        recs[name] = read_records(nb)
    parts = [construction(recs["01_expert_construction"]),
             profiles(recs["02_activation_profiling"]),
             families(recs["03_language_families"]), pruning(recs["04_pruning"])]
    return ("Generated by `python -m babel results` from the values the default run recorded "
            f"(`{executed.relative_to(paths.PROJ_ROOT)}`, {run_statement(executed)}); the "
            "figures are in `figures/` (`figures/provenance.json`: the run that made each), "
            "each notebook's own conclusion in its executed copy; `make report` builds the page "
            "with each of the paper's claims, this run's figure and a computed verdict "
            "(`build/report/index.html`).\n\n" + "\n\n".join(parts))


def replace_block(readme: Path, name: str, text: str) -> Path:
    """Replace what lies between ``<!-- name:begin -->`` and ``<!-- name:end -->`` in
    ``readme`` with ``text`` (atomically); the README's generated blocks (results, benchmark
    tables) are all written this way."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    content = readme.read_text()
    if begin not in content or end not in content:
        raise ValueError(f"{readme} has no {begin} … {end} block to fill: add the two markers "
                         f"where the text belongs")
    head, rest = content.split(begin, 1)
    _, tail = rest.split(end, 1)
    with atomic_path(readme) as tmp:
        tmp.write_text(f"{head}{begin}\n{text}\n{end}{tail}")
    return readme


def update_readme(readme: Path = paths.PROJ_ROOT / "README.md",
                  executed: Path = paths.EXECUTED_DIR / "default") -> Path:
    """Rewrite the results block of ``readme`` (atomically)."""
    return replace_block(readme, "results", results_markdown(executed))
