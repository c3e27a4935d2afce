"""The answer to "do activation patterns follow language families, or scripts?", by a rule.

**The rule** (:data:`RULE`; also stated in notebook 03). Three tests speak for each side, at
significance level α (0.05):

Families (genealogy):

1. *clustering*: the average-linkage tree's clusters match the branches or the families (ARI
   label-shuffle p < α). A labelling that splits these languages exactly as the scripts do
   does not count (it cannot tell the two apart).
2. *Mantel*: the branch-resolution genealogical distance
   (:func:`babel.families.distances.branch_distance`) predicts activation distance
   controlling for script (partial Mantel p < α and r > 0).
3. *controls*: every same-language pair written in two scripts that is present (Serbian
   Cyrillic/Latin, identical text; Hindi/Urdu) is in the top decile of similar pairs
   (percentile >= 90).

Scripts:

1. *clustering*: the clusters match the scripts (ARI p < α); not testable when the script
   groups equal the family or branch groups.
2. *Mantel*: script identity predicts activation distance controlling for branch distance.
3. *controls*: a same-language pair in two scripts is less similar than the median pair
   (percentile < 50).

A test is *not testable* when its inputs are missing or undefined (too few languages, no
control pair, collinear distances). A side is **supported** when a strict majority of its
testable tests pass. The answer is ``"families"`` (only genealogy supported), ``"scripts"``
(only script), ``"both"`` or ``"neither"``. Because the controls and the branch-level
clustering are part of the rule, a conclusion "script explains activation better than
genealogy" cannot come out while the branch clusters are significant and identical Serbian text
in two scripts is among the most similar pairs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from babel.families.distances import BRANCH
from babel.families.similarity import _codes, language_labels

ALPHA = 0.05
#: Control pairs (as :func:`babel.families.stats.control_table` names them) of one language in
#: two scripts.
SAME_LANGUAGE_PAIRS: tuple[str, ...] = ("sr-Cyrl–sr-Latn", "hi–ur")
TOP_PERCENTILE = 90.0
MEDIAN_PERCENTILE = 50.0
OUTCOMES: tuple[str, ...] = ("families", "scripts", "both", "neither")

RULE = (
    "Three tests per side at α = {alpha:g}. **Families**: (1) the clusters match branches or "
    "families (ARI shuffle p < α; a labelling identical to the scripts on these languages does "
    "not count); (2) branch-resolution genealogical distance predicts activation distance "
    "controlling for script (partial Mantel p < α, r > 0); (3) every same-language pair in two "
    "scripts present (Serbian Cyrillic/Latin, Hindi/Urdu) is in the top decile of similar "
    "pairs. **Scripts**: (1) the clusters match scripts (ARI p < α; not testable when scripts "
    "group the languages as families or branches do); (2) script predicts activation distance "
    "controlling for branch distance; (3) a same-language pair in two scripts is less similar "
    "than the median pair. A side is supported when a strict majority of its testable tests "
    "pass; the answer is families, scripts, both or neither accordingly."
)


@dataclasses.dataclass(frozen=True)
class Test:
    """One test of the rule.

    Attributes:
        side: ``"families"`` or ``"scripts"``.
        name: ``"clustering"``, ``"Mantel"`` or ``"controls"``.
        passed: True / False, or None when not testable.
        detail: The numbers behind it.
    """

    side: str
    name: str
    passed: bool | None
    detail: str


@dataclasses.dataclass(frozen=True)
class Answer:
    """The rule's answer for one model.

    Attributes:
        model: Model name.
        outcome: One of :data:`OUTCOMES`.
        sentence: The one-sentence answer.
        tests: The six tests.
    """

    model: str
    outcome: str
    sentence: str
    tests: tuple[Test, ...]

    def tally(self, side: str) -> tuple[int, int]:
        """``(passed, testable)`` tests of a side."""
        ts = [t for t in self.tests if t.side == side and t.passed is not None]
        return sum(bool(t.passed) for t in ts), len(ts)

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "outcome": self.outcome, "sentence": self.sentence,
                "tests": [dataclasses.asdict(t) for t in self.tests]}


def _finite(x: Any) -> bool:
    return x is not None and bool(np.isfinite(x))


def fmt_p(p: Any) -> str:
    """A p-value (or any number) to 3 significant digits; ``n/a`` when undefined."""
    return f"{p:.3g}" if _finite(p) else "n/a"


def confounded_labellings(langs: Sequence[str]) -> tuple[str, ...]:
    """Genealogical labellings (family, branch) that group ``langs`` exactly as scripts do."""
    def groups(field: str) -> set[frozenset[int]]:
        codes = _codes(language_labels(langs, field))
        return {frozenset(np.flatnonzero(codes == c).tolist()) for c in np.unique(codes)}

    script = groups("script")
    return tuple(f for f in ("family", "branch") if groups(f) == script)


def _rows(table: pd.DataFrame | None, model: str) -> pd.DataFrame:
    if table is None or not len(table):
        return pd.DataFrame()
    return table[table.model == model] if "model" in table.columns else table


def _clustering(ag: pd.DataFrame, confounded: Sequence[str], alpha: float) -> list[Test]:
    ag = ag.set_index("labelling") if "labelling" in ag.columns else ag

    def ari(f: str) -> str:
        return f"{f} ARI {fmt_p(ag.at[f, 'ari'])} (p = {fmt_p(ag.at[f, 'ari_p'])})"

    gen = [f for f in ("branch", "family")
           if f in ag.index and f not in confounded and _finite(ag.at[f, "ari_p"])]
    fam = (Test("families", "clustering", any(ag.at[f, "ari_p"] < alpha for f in gen),
                "; ".join(ari(f) for f in gen)) if gen else
           Test("families", "clustering", None,
                "no family or branch labelling that differs from the scripts has 2..n-1 groups"))
    if "script" not in ag.index or not _finite(ag.at["script", "ari_p"]):
        scr = Test("scripts", "clustering", None, "the scripts do not form 2..n-1 groups")
    elif confounded:
        scr = Test("scripts", "clustering", None,
                   f"the scripts group these languages exactly as the {' and '.join(confounded)} "
                   f"labels do")
    else:
        scr = Test("scripts", "clustering", bool(ag.at["script", "ari_p"] < alpha), ari("script"))
    return [fam, scr]


def _mantel(mt: pd.DataFrame, predictor: str, control: str, side: str, alpha: float) -> Test:
    label = f"{predictor} controlling for {control}"
    if not len(mt):
        return Test(side, "Mantel", None, f"{label}: no Mantel test (fewer than 3 languages)")
    hit = mt[(mt.predictor == predictor) & (mt.controlling_for == control)]
    if not len(hit) or not (_finite(hit.r.iloc[0]) and _finite(hit.p.iloc[0])):
        return Test(side, "Mantel", None, f"{label}: undefined (collinear distances)")
    r, p = float(hit.r.iloc[0]), float(hit.p.iloc[0])
    return Test(side, "Mantel", bool(p < alpha and r > 0),
                f"{label}: partial r = {r:.2f}, p = {fmt_p(p)}")


def _controls(ctrl: pd.DataFrame) -> list[Test]:
    pairs = ctrl[ctrl.pair.isin(SAME_LANGUAGE_PAIRS)] if len(ctrl) else ctrl
    if not len(pairs):
        none = "no same-language pair in two scripts among these languages"
        return [Test("families", "controls", None, none), Test("scripts", "controls", None, none)]
    pct = pairs.percentile.to_numpy(dtype=float)
    detail = "; ".join(f"{p} at the {ordinal(x)} percentile" for p, x in
                       zip(pairs.pair, pct))
    return [Test("families", "controls", bool((pct >= TOP_PERCENTILE).all()), detail),
            Test("scripts", "controls", bool((pct < MEDIAN_PERCENTILE).any()), detail)]


def _supported(tests: Sequence[Test], side: str) -> bool:
    ts = [t for t in tests if t.side == side and t.passed is not None]
    return bool(ts) and sum(bool(t.passed) for t in ts) * 2 > len(ts)


def answer(agreement: pd.DataFrame, mantel: pd.DataFrame | None, controls: pd.DataFrame | None,
           *, model: str, confounded: Sequence[str] = (), alpha: float = ALPHA) -> Answer:
    """Families, scripts, both or neither: the rule of the module docstring.

    Args:
        agreement: :func:`babel.families.stats.label_table` rows (``labelling, ari, ari_p``;
            a ``model`` column selects ``model``'s rows).
        mantel: :func:`babel.families.distances.mantel_table` rows (may be empty).
        controls: :func:`babel.families.stats.control_table` rows (may be empty).
        model: Model name.
        confounded: Genealogical labellings identical to the scripts
            (:func:`confounded_labellings`).
        alpha: Significance level.

    Returns:
        The :class:`Answer`.
    """
    ag = _rows(agreement, model)
    mt, ctrl = _rows(mantel, model), _rows(controls, model)
    clus = _clustering(ag, confounded, alpha)
    cont = _controls(ctrl)
    tests = (clus[0], _mantel(mt, BRANCH, "script", "families", alpha), cont[0],
             clus[1], _mantel(mt, "script", BRANCH, "scripts", alpha), cont[1])
    fam, scr = _supported(tests, "families"), _supported(tests, "scripts")
    outcome = {(True, True): "both", (True, False): "families", (False, True): "scripts",
               (False, False): "neither"}[(fam, scr)]
    probe = Answer(model, outcome, "", tests)
    (gp, gt), (sp, st) = probe.tally("families"), probe.tally("scripts")
    tally = (f"{gp} of {gt} genealogical tests and {sp} of {st} script tests pass "
             f"(α = {alpha:g})")
    sentence = {
        "families": f"For {model}, activation patterns follow language families (genealogy "
                    f"at branch resolution) rather than scripts: {tally}.",
        "scripts": f"For {model}, activation patterns follow scripts rather than language "
                   f"families: {tally}.",
        "both": f"For {model}, activation patterns follow both language families and scripts, "
                f"each beyond the other: {tally}.",
        "neither": (f"For {model}, activation patterns follow neither language families nor "
                    f"scripts clearly: {tally}." if gt + st else
                    f"For {model}, these languages allow no test that separates language "
                    f"families from scripts, so neither can be claimed."),
    }[outcome]
    return Answer(model, outcome, sentence, tests)


def ordinal(x: float) -> str:
    """``99`` → ``"99th"``, ``1`` → ``"1st"``."""
    n = round(x)
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _verdict(p: Any, floor: Any, alpha: float) -> str:
    if not _finite(p):
        return "not testable: no such pair"
    if p < alpha:
        return "significant"
    return "not significant" if _finite(floor) and floor < alpha else \
        "not testable with these languages"


def _effect(row: pd.Series, what: str, control: str, alpha: float) -> str:
    if not _finite(row.separation):
        return f"no two languages share a {what} here"
    text = (f"same-{what} pairs are {row.separation:+.3f} more similar than the rest "
            f"(p = {fmt_p(row.p)}, {_verdict(row.p, row.p_floor, alpha)}; "
            f"ARI {fmt_p(row.ari)})")
    if not _finite(row.separation_controlled):
        return text + f"; no same-{control} pairs differ in {what}"
    return (text + f"; among same-{control} pairs {row.separation_controlled:+.3f} "
            f"(p = {fmt_p(row.p_controlled)}, "
            f"{_verdict(row.p_controlled, row.p_controlled_floor, alpha)})")


def _serbian(pct: float) -> str:
    if pct >= TOP_PERCENTILE:
        return ("among the most similar pairs (top decile), so a change of script alone does "
                "not change the pattern much.")
    if pct < MEDIAN_PERCENTILE:
        return ("less similar than the median pair: the script changes the activation pattern "
                "even when the content is identical.")
    return "similar, but not in the top decile of pairs."


def model_details(model: str, *, agreement: pd.DataFrame, mantel: pd.DataFrame | None,
                  controls: pd.DataFrame | None, overlap: pd.DataFrame | None,
                  alpha: float = ALPHA) -> str:
    """One paragraph of a model's numbers: effects, Mantel tests, controls, LAPE."""
    ag = _rows(agreement, model).set_index("labelling")
    text = (f"**{model}.** Family: {_effect(ag.loc['family'], 'family', 'script', alpha)}. "
            f"Branch: {_effect(ag.loc['branch'], 'branch', 'script', alpha)}. "
            f"Script: {_effect(ag.loc['script'], 'script', 'family', alpha)}.")
    mt = _rows(mantel, model)
    if len(mt):
        simple = mt[mt.controlling_for == ""].dropna(subset=["r"])
        if len(simple):
            best = simple.iloc[0]
            text += (f" Of the linguistic distances, **{best.predictor}** matches activation "
                     f"distance best (Mantel r = {best.r:.2f}, p = {fmt_p(best.p)}).")
        part = mt[mt.controlling_for != ""]
        if len(part):
            text += " Partial Mantel: " + "; ".join(
                f"{r.predictor} controlling for {r.controlling_for} r = {fmt_p(r.r)} "
                f"(p = {fmt_p(r.p)})" for r in part.itertuples()) + "."
    ctrl = _rows(controls, model)
    if len(ctrl):
        ctrl = ctrl.set_index("pair")
        text += " Controls (percentile among all pairs): " + "; ".join(
            f"{p} {ordinal(r.percentile)}" for p, r in ctrl.iterrows()) + "."
        if "sr-Cyrl–sr-Latn" in ctrl.index:
            text += " Identical Serbian text in two scripts is " + _serbian(
                float(ctrl.loc["sr-Cyrl–sr-Latn", "percentile"]))
    ov = _rows(overlap, model)
    if len(ov):
        expected = ov.expected_both.sum()
        text += (f" LAPE assigns {int(ov.lape.sum())} (neuron, language) pairs; "
                 f"{int(ov.both.sum())} lie inside our language-specific experts"
                 + (f" ({ov.both.sum() / expected:.1f}x chance)." if expected > 0 else "."))
    return text


def conclusion_text(answers: Sequence[Answer], *, agreement: pd.DataFrame,
                    mantel: pd.DataFrame | None = None, controls: pd.DataFrame | None = None,
                    overlap: pd.DataFrame | None = None, robustness: pd.DataFrame | None = None,
                    robustness_languages: int = 0, models_mantel: Any = None,
                    alpha: float = ALPHA) -> str:
    """The conclusion (markdown): the main model's one-sentence answer first, then evidence.

    Args:
        answers: :func:`answer` per model, the main model first.
        agreement, mantel, controls, overlap: The section tables (``model`` column).
        robustness: :func:`babel.families.robustness.robustness_table` rows (may be None).
        robustness_languages: Number of languages of the robustness profiles.
        models_mantel: :class:`babel.families.distances.MantelResult` between the first two
            models (None with one model).
        alpha: Significance level.
    """
    if not answers:
        return ("Fewer than 3 languages: the family and script tests need at least 3, so no "
                "answer is given.")
    word = {True: "passes", False: "fails", None: "not testable"}
    parts = [answers[0].sentence, "**The rule.** " + RULE.format(alpha=alpha)]
    for ans in answers:
        parts.append(f"**Evidence, {ans.model}** (answer: {ans.outcome}). " + " ".join(
            f"{t.side.capitalize()}, {t.name}: {word[t.passed]} ({t.detail})."
            for t in ans.tests))
    models = [a.model for a in answers]
    ag = agreement.set_index(["model", "labelling"])

    def where(label: str, col: str) -> str:
        hit = [m for m in models if _finite(ag.loc[(m, label), col])
               and ag.loc[(m, label), col] < alpha]
        return ", ".join(hit) if hit else "no model"

    summary = (f"**Separation tests.** Top-level family: significant on {where('family', 'p')}; "
               f"among same-script pairs on {where('family', 'p_controlled')}. Branch: "
               f"significant on {where('branch', 'p')}; among same-script pairs on "
               f"{where('branch', 'p_controlled')}. Script: significant on {where('script', 'p')};"
               f" among same-family pairs on {where('script', 'p_controlled')}.")
    if robustness is not None and len(robustness):
        rb = robustness
        summary += (f" Robustness ({rb.model.iloc[0]}, {len(rb)} settings on "
                    f"{robustness_languages} languages): family significant in "
                    f"{int((rb.family_p < alpha).sum())}, family among same-script pairs in "
                    f"{int((rb.family_p_controlled < alpha).sum())}, script in "
                    f"{int((rb.script_p < alpha).sum())}, script among same-family pairs in "
                    f"{int((rb.script_p_controlled < alpha).sum())}.")
    if models_mantel is not None:
        summary += (f" The two models order language pairs alike to Mantel r = "
                    f"{models_mantel.r:.2f} (p = {fmt_p(models_mantel.p_value)}).")
    parts.append(summary)
    parts += [model_details(m, agreement=agreement, mantel=mantel, controls=controls,
                            overlap=overlap, alpha=alpha) for m in models]
    return "\n\n".join(parts)
