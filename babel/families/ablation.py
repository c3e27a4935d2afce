"""Does the answer depend on the profiles' budget? Content-parallel versus token-budget profiles."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from babel.core.artifacts import jsonable
from babel.families.analysis import (
    FamilyRun,
    agreement_section,
    controls_section,
    mantel_section,
)
from babel.families.conclusion import Answer, answer, confounded_labellings


def answer_for(run: FamilyRun, *, n_permutations: int = 1000, seed: int = 0,
               n_bootstrap: int = 50) -> tuple[Answer, pd.DataFrame, pd.DataFrame]:
    """The rule's answer for one set of profiles, with the agreement and control tables."""
    agreement, _, _ = agreement_section([run], n_permutations=n_permutations,
                                        n_bootstrap=n_bootstrap, seed=seed)
    controls, _ = controls_section([run])
    mantel, _, _ = mantel_section([run], n_permutations=n_permutations, seed=seed)
    return (answer(agreement, mantel, controls, model=run.name,
                   confounded=confounded_labellings(run.langs)), agreement, controls)


def budget_comparison(runs: Mapping[str, FamilyRun], *, n_permutations: int = 1000,
                      seed: int = 0) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The answer and its main evidence under each profile budget (one row per budget).

    Args:
        runs: ``{budget label: FamilyRun}``, e.g. the content-parallel profiles (the same items
            in every language) and a token budget (the same number of tokens, so different
            items where token fertility differs).
        n_permutations: Permutations of each test.
        seed: Random seed.

    Returns:
        The table (columns ``budget, outcome, families tests, scripts tests, ARI family, ARI
        branch, ARI script, tokens min, tokens max`` and the percentile of every control pair
        present; empty without runs) and the record ``budget_comparison`` (its rows).
    """
    rows = []
    for label, run in runs.items():
        ans, ag, ctrl = answer_for(run, n_permutations=n_permutations, seed=seed)
        ari = ag.set_index("labelling").ari
        tokens = [run.profiles[lg].tokens for lg in run.langs]
        row = {"budget": label, "outcome": ans.outcome,
               "families tests": "{}/{}".format(*ans.tally("families")),
               "scripts tests": "{}/{}".format(*ans.tally("scripts")),
               **{f"ARI {f}": float(ari.get(f, float("nan")))
                  for f in ("family", "branch", "script")},
               "tokens min": min(tokens), "tokens max": max(tokens)}
        if len(ctrl):
            row |= {f"{pair} percentile": float(p)
                    for pair, p in zip(ctrl.pair, ctrl.percentile, strict=True)}
        rows.append(row)
    table = pd.DataFrame(rows)
    return table, {"budget_comparison": jsonable(table.to_dict("records"))}
