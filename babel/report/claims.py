"""The paper's claims, this run's figure for each and a verdict by a stated rule.

Every number comes from the values the executed notebooks recorded
(:func:`babel.core.notebook.record`) and their parameters; the paper's own numbers are the
constants the notebooks compare with (:mod:`babel.profile.summary`) or :data:`PAPER_SPEEDUP`.
A verdict is one of :data:`VERDICTS`:

- **holds**: the run shows what the paper claims, by the claim's rule;
- **differs**: the effect is there but not as the paper states it (another size, or not for
  every model);
- **does not hold**: the run does not show it;
- **not measured**: the notebook that measures it was not run (or recorded nothing).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd

from babel.profile.summary import ABOUT_HALF, PAPER_EXPERTS, PAPER_RARE
from babel.prune.conclusion import GLOBAL, HEADLINE_RANDOM, comparable_share, pct
from babel.prune.settings import PruningSettings

HOLDS, DIFFERS, FAILS, UNMEASURED = "holds", "differs", "does not hold", "not measured"
VERDICTS = (HOLDS, DIFFERS, FAILS, UNMEASURED)
#: The paper's speedup at comparable quality ("accelerated by 30%").
PAPER_SPEEDUP = 1.3
PROFILING, FAMILIES, PRUNING = ("02_activation_profiling", "03_language_families",
                                "04_pruning")

Records = Mapping[str, Mapping[str, Any]]


@dataclasses.dataclass(frozen=True)
class Finding:
    """This run's figure for a claim and its verdict."""

    verdict: str
    figure: str


@dataclasses.dataclass(frozen=True)
class Claim:
    """One claim of the paper and how this run judges it.

    Attributes:
        key: Short id (also the row's HTML anchor).
        paper: The claim, as the paper states it.
        rule: The verdict rule, in words.
        sections: ``(notebook, heading)`` of the sections that measure it.
        figures: Figure names (the file name before ``_<model>``) that show it.
        judge: ``(records, parameters) -> Finding``; both by notebook.
    """

    key: str
    paper: str
    rule: str
    sections: tuple[tuple[str, str], ...]
    figures: tuple[str, ...]
    judge: Callable[[Records, Records], Finding]


def _tally(answer: Mapping[str, Any], side: str) -> str:
    tests = [t for t in answer.get("tests") or [] if t.get("side") == side]
    testable = [t for t in tests if t.get("passed") is not None]
    return f"{sum(bool(t['passed']) for t in testable)}/{len(testable)}"


def families(records: Records, parameters: Records) -> Finding:
    rec = records.get(FAMILIES) or {}
    answers = rec.get("answers") or ({rec["answer"]["model"]: rec["answer"]}
                                     if rec.get("answer") else {})
    if not answers:
        return Finding(UNMEASURED, "notebook 03 recorded no answer")
    figure = "; ".join(f"{model}: {a['outcome']} ({_tally(a, 'families')} genealogical, "
                       f"{_tally(a, 'scripts')} script tests pass)"
                       for model, a in answers.items())
    outcomes = [a["outcome"] for a in answers.values()
                if any(t.get("passed") is not None for t in a.get("tests") or [])]
    if not outcomes:  # e.g. every family has one script here: nothing separates them
        return Finding(UNMEASURED, figure + "; no test can separate families from scripts")
    if all(o == "families" for o in outcomes):
        return Finding(HOLDS, figure)
    if any(o in ("families", "both") for o in outcomes):
        return Finding(DIFFERS, figure)
    return Finding(FAILS, figure)


def _classes(records: Records) -> Mapping[str, Any] | None:
    return (records.get(PROFILING) or {}).get("expert_classes")


def co_activated(records: Records, parameters: Records) -> Finding:
    c = _classes(records)
    if not c:
        return Finding(UNMEASURED, "notebook 02 recorded no expert classes")
    share = c["co_activated_share"]
    figure = (f"{c['co_activated']} of {c['experts']} experts ({share:.1%}) co-activated "
              f"(frequency ≥ {c['high']:.3f} in every language)")
    cut = (records.get(PROFILING) or {}).get("paper_cutoffs") or {}
    if cut.get("co_activated_high_factor") is not None:
        figure += f"; half would be at high = {cut['co_activated_high_factor']:.2f}·r"
    lo, hi = ABOUT_HALF
    if lo <= share <= hi:
        return Finding(HOLDS, figure)
    return Finding(DIFFERS if c["co_activated"] else FAILS, figure)


def _separates(causal: Mapping[str, Any]) -> bool:
    """The target language's rise lies above the other languages' (95% intervals apart
    when recorded, else the point values)."""
    lo = (causal.get("rise_target_ci") or [causal["rise_target"]])[0]
    hi = (causal.get("rise_others_mean_ci") or [None, causal["rise_others_mean"]])[-1]
    return lo > hi


def specific(records: Records, parameters: Records) -> Finding:
    c = _classes(records)
    if not c:
        return Finding(UNMEASURED, "notebook 02 recorded no expert classes")
    per = (records.get(PROFILING) or {}).get("specific_per_language") or {}
    figure = (f"{c['specific_any']} of {c['experts']} experts specific to at least one "
              f"language (z ≥ {c['specific_z']:g})")
    if per:
        figure += f"; {min(per.values())}–{max(per.values())} per language"
    causal = (records.get(PRUNING) or {}).get("causal") or {}
    if causal.get("n_specific"):
        figure += (f"; removing the {causal['n_specific']} experts specific to "
                   f"{causal['language']}: {pct(causal['rise_target'])} perplexity on it vs "
                   f"{pct(causal['rise_others_mean'])} on the others")
    if not c["specific_any"]:
        return Finding(FAILS, figure)
    every = bool(per) and min(per.values()) > 0
    causal_ok = not causal.get("n_specific") or _separates(causal)
    return Finding(HOLDS if every and causal_ok else DIFFERS, figure)


def rare(records: Records, parameters: Records) -> Finding:
    c = _classes(records)
    if not c:
        return Finding(UNMEASURED, "notebook 02 recorded no expert classes")
    figure = (f"{c['rare']} of {c['experts']} experts ({c['rare_share']:.1%}) rare "
              f"(frequency < {c['low']:.3f} in every language)")
    cut = (records.get(PROFILING) or {}).get("paper_cutoffs") or {}
    if cut.get("rare_low_factor") is not None:
        figure += f"; {PAPER_RARE / PAPER_EXPERTS:.1%} would be at low = " \
                  f"{cut['rare_low_factor']:.2f}·r"
    if c["rare_share"] >= PAPER_RARE / PAPER_EXPERTS:
        return Finding(HOLDS, figure)
    return Finding(DIFFERS if c["rare"] else FAILS, figure)


def _max_rise(parameters: Records) -> float:
    """Notebook 04's ``evaluation["max_rise"]`` (its settings' default when not given)."""
    return PruningSettings.from_namespace(parameters.get(PRUNING) or {}).max_rise


def _rise_table(records: Records) -> pd.DataFrame | None:
    rise = (records.get(PRUNING) or {}).get("median_rise")
    if not rise:
        return None
    table = pd.DataFrame.from_dict({float(k): v for k, v in rise.items()}, orient="index")
    return table if GLOBAL in table else None


def comparable_shares(records: Records, parameters: Records) -> list[float]:
    """Pruned shares whose median rise (frequency, global) is within the notebook's
    ``evaluation["max_rise"]``."""
    table, limit = _rise_table(records), _max_rise(parameters)
    if table is None:
        return []
    return [float(k) for k in table.index if k < 1.0 and table.loc[k, GLOBAL] <= limit]


def quality(records: Records, parameters: Records) -> Finding:
    table, limit = _rise_table(records), _max_rise(parameters)
    if table is None:
        return Finding(UNMEASURED, "notebook 04 recorded no median rise")
    pruned = table[table.index < 1.0].sort_index(ascending=False)
    figure = "median perplexity rise, frequency (global): " + ", ".join(
        f"{pct(r)} at k = {k:g}" for k, r in pruned[GLOBAL].items()) + \
        f" (comparable: within {pct(limit)})"
    ok = comparable_share(table, max_rise=limit) is not None
    return Finding(HOLDS if ok else FAILS, figure)


def beats_random(records: Records, parameters: Records) -> Finding:
    ci = (records.get(PRUNING) or {}).get("median_rise_ci") or {}
    rows = {float(k): v for k, v in ci.items() if float(k) < 1.0 and GLOBAL in v}
    if not rows:
        return Finding(UNMEASURED, "notebook 04 recorded no median rise intervals")
    parts, apart, lower = [], True, True
    for k in sorted(rows, reverse=True):
        g = rows[k][GLOBAL]
        others = {m: rows[k][m] for m in HEADLINE_RANDOM if m in rows[k]}
        parts.append(f"k = {k:g}: {pct(g['value'])} vs " + ", ".join(
            f"{m.removeprefix('random (').rstrip(')')} random {pct(r['value'])}"
            for m, r in others.items()))
        apart &= all(g["high"] < r["low"] for r in others.values())
        lower &= all(g["value"] < r["value"] for r in others.values())
    figure = "median perplexity rise, frequency (global) vs random: " + "; ".join(parts)
    return Finding(HOLDS if apart else DIFFERS if lower else FAILS, figure)


def _bounds(row: Mapping[str, Any]) -> tuple[float, float, float]:
    v = float(row["measured_end_to_end"])
    lo, hi = row.get("measured_end_to_end_low"), row.get("measured_end_to_end_high")
    return v, (v if lo is None else float(lo)), (v if hi is None else float(hi))


def speed(records: Records, parameters: Records) -> Finding:
    rows = (records.get(PRUNING) or {}).get("speed") or []
    if not rows:
        return Finding(UNMEASURED, "notebook 04 recorded no speed table")
    model = (parameters.get(PRUNING) or {}).get("model")
    ok = comparable_shares(records, parameters)
    best: dict[str, Mapping[str, Any]] = {}
    for r in rows:
        if r["model"] not in best or r["measured_end_to_end"] > best[r["model"]][
                "measured_end_to_end"]:
            best[r["model"]] = r
    figure = "fastest measured end to end: " + "; ".join(
        "{} ×{:.2f} [{:.2f}, {:.2f}] at k = {:g}".format(m, *_bounds(r), r["k"])
        for m, r in best.items())
    figure += (f"; quality comparable at k = {', '.join(f'{k:g}' for k in ok)}" if ok
               else "; no pruned k keeps quality comparable")
    faster = [r for r in rows if _bounds(r)[1] > 1.0]
    if any(r["model"] == model and r["k"] in ok and _bounds(r)[2] >= PAPER_SPEEDUP
           for r in faster):
        return Finding(HOLDS, figure)
    return Finding(DIFFERS if faster else FAILS, figure)


CLAIMS: tuple[Claim, ...] = (
    Claim("families",
          "Activation patterns connect at the level of language families: related "
          "languages activate similar experts.",
          "Notebook 03's rule per model (three tests per side, families against scripts), "
          "over the models with a testable test: holds when every answer is 'families'; "
          "differs when some answer is 'families' or 'both' but not every one is "
          "'families'; does not hold otherwise.",
          ((FAMILIES, "Conclusion"), (FAMILIES, "Agreement with family, branch and script")),
          ("family-script-separation-by-layer", "lang-clustermap"), families),
    Claim("co-activated",
          "Some experts are highly activated for every language (multilingual "
          "co-activation): about half of them.",
          f"Holds when the co-activated share is within {ABOUT_HALF[0]:.0%}–"
          f"{ABOUT_HALF[1]:.0%} (notebook 02's 'about half'); differs when there are "
          "co-activated experts in another share; does not hold when there are none.",
          ((PROFILING, "Co-activated, language-specific and rare experts"),
           (PROFILING, "The thresholds as curves")),
          ("expert-classes-by-layer", "expert-classes-sensitivity"), co_activated),
    Claim("specific",
          "Other experts are activated for one language only (language-specific experts).",
          "Holds when every language has language-specific experts and, where notebook 04 "
          "ran its causal test, removing one language's specific experts raises its "
          "perplexity more than the others' (95% intervals apart); differs when only part "
          "of that is true; does not hold when no expert is specific.",
          ((PROFILING, "Co-activated, language-specific and rare experts"),
           (PRUNING, "Causal test")),
          ("expert-frequency-difference-heatmaps", "expert-classes-by-layer"), specific),
    Claim("rare",
          f"Many experts rarely fire: over {PAPER_RARE} of {PAPER_EXPERTS} "
          f"({PAPER_RARE / PAPER_EXPERTS:.1%}) have a low frequency in every language.",
          f"Holds when the rare share is at least {PAPER_RARE / PAPER_EXPERTS:.1%}; differs "
          "when there are rare experts in a smaller share; does not hold when there are none.",
          ((PROFILING, "Co-activated, language-specific and rare experts"),
           (PROFILING, "The thresholds as curves")),
          ("expert-classes-sensitivity", "expert-classes-by-layer"), rare),
    Claim("quality",
          "Keeping only a language's frequently activated experts keeps quality comparable.",
          "Holds when some pruned share k keeps the median perplexity rise over languages of "
          "the frequency-based (global) masks within notebook 04's evaluation['max_rise']; "
          "does not hold otherwise.",
          ((PRUNING, "Perplexity vs kept share"), (PRUNING, "Conclusion")),
          ("pruning-perplexity-vs-k",), quality),
    Claim("beats-random",
          "Pruning by activation frequency beats removing random experts (v2/v3).",
          "Holds when at every pruned k the frequency-based (global) median rise's 95% "
          "interval lies below those of both headline random baselines (uniform, "
          "frequency-matched); differs when it is lower but the intervals overlap somewhere; "
          "does not hold when it is higher somewhere.",
          ((PRUNING, "Perplexity vs kept share"),),
          ("pruning-perplexity-vs-k",), beats_random),
    Claim("speed",
          f"Inference gets about {PAPER_SPEEDUP - 1:.0%} faster at comparable quality.",
          f"Holds when, for notebook 04's model at a k with comparable quality (claim "
          f"'quality'), the measured end-to-end speedup's 95% interval lies above ×1 and "
          f"reaches ×{PAPER_SPEEDUP:g}; differs when some measured speedup lies above ×1 but "
          f"not so; does not hold when none does.",
          ((PRUNING, "Speed"),), ("pruning-speedup",), speed),
)


def judge_all(records: Records, parameters: Records,
              claims: Sequence[Claim] = CLAIMS) -> list[tuple[Claim, Finding]]:
    """Every claim with this run's finding (a claim whose records are malformed is
    :data:`UNMEASURED`, with the error)."""
    out = []
    for claim in claims:
        try:
            finding = claim.judge(records, parameters)
        except (KeyError, TypeError, ValueError, IndexError) as err:
            finding = Finding(UNMEASURED, f"unreadable records: {type(err).__name__}: {err}")
        out.append((claim, finding))
    return out
