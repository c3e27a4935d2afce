"""The conclusion of notebook 04, written from its numbers.

It opens with a one-sentence answer to the paper's claim, "per-language pruning gives
comparable quality, faster": **yes** when some pruned share keeps the median perplexity rise
of the frequency-based (global) masks within ``max_rise`` and the model pruned at that share
is faster (measured when the speed table has that share, else from FLOPs); **partly** when
quality holds but the pruned model is not faster; **no** when no pruned share keeps quality.
Bullets follow: the sweep per share, wins per (language, share), the cross-language matrix,
the causal test, the speed table and the construction comparison.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

GLOBAL, ADAPTIVE = "frequency (global)", "frequency (adaptive)"
MATCHED, UNIFORM = "random (matched)", "random (uniform)"


def pct(x: float | None) -> str:
    """``+1.2%`` (``n/a`` for None or a non-finite value)."""
    return "n/a" if x is None or not np.isfinite(x) else f"{100 * x:+.1f}%"


def _ratio(x: float, y: float) -> str:
    return f"{x / y:.2g}×" if y > 0 else "n/a"


def compare(a: float, b: float, *, tol: float = 0.05) -> str:
    """``"better than"`` / ``"worse than"`` / ``"about as good as"`` for rises a vs b.

    Within a relative tolerance ``tol`` of the larger magnitude the two count as equal.
    """
    if abs(a - b) <= tol * max(abs(a), abs(b)):
        return "about as good as"
    return "better than" if a < b else "worse than"


def pruned_shares(summary: pd.DataFrame) -> list[float]:
    """The pruned shares (below 1) of a median-rise table, largest first."""
    return sorted((float(k) for k in summary.index if k < 1.0), reverse=True)


def comparable_share(summary: pd.DataFrame, *, max_rise: float) -> float | None:
    """Smallest pruned share whose median rise (frequency, global) is at most ``max_rise``."""
    ok = [k for k in pruned_shares(summary) if summary.loc[k, GLOBAL] <= max_rise]
    return min(ok) if ok else None


def _measured_speed(speed: pd.DataFrame | None, model: str, k: float) -> float | None:
    if speed is None or not len(speed):
        return None
    row = speed[(speed.model == model) & np.isclose(speed.k, k)]
    return float(row.measured_body.iloc[0]) if len(row) else None


def answer(summary: pd.DataFrame, *, max_rise: float, model: str,
           flops_at_comparable: Mapping[str, float] | None = None,
           speed: pd.DataFrame | None = None) -> str:
    """The one-sentence answer: does per-language pruning give comparable quality, faster?

    Args:
        summary: Median rise ``k x method`` (:func:`babel.prune.experiments.median_rise`).
        max_rise: The largest median rise that still counts as comparable quality.
        model: The model the sweep ran on (its rows of ``speed`` are used).
        flops_at_comparable: Theoretical speedups (``"body"``) at :func:`comparable_share`.
        speed: The speed table (:func:`babel.prune.experiments.speed_table`).
    """
    shares = pruned_shares(summary)
    k_ok = comparable_share(summary, max_rise=max_rise)
    g = summary[GLOBAL]
    if k_ok is None:
        k_min = min(shares, key=lambda k: g[k])
        return (f"**No**: at no pruned share in {shares} does frequency-based pruning keep the "
                f"median perplexity rise within {pct(max_rise)} (the smallest rise is "
                f"{pct(g[k_min])}, at k = {k_min:g}), so no speedup comes at comparable "
                f"quality here.")
    beats = g[k_ok] < min(summary.loc[k_ok, MATCHED], summary.loc[k_ok, UNIFORM])
    measured = _measured_speed(speed, model, k_ok)
    sp, how = ((measured, "measured") if measured is not None else
               ((flops_at_comparable or {}).get("body"), "from FLOPs"))
    faster = sp is not None and sp > 1.0
    verdict = "**Yes**" if faster else "**Partly**"
    speed_txt = (f"the pruned body is ×{sp:.2f} as fast ({how})" if sp is not None
                 else "its speed was not measured")
    return (f"{verdict}: keeping k = {k_ok:g} of the experts, chosen by each language's "
            f"activation frequency, raises the median perplexity by {pct(g[k_ok])} (within "
            f"{pct(max_rise)}, {'better than' if beats else 'not better than'} random masks "
            f"of the same size), and {speed_txt}"
            + ("." if faster or sp is None else ", i.e. not faster."))


def conclusion_text(summary: pd.DataFrame, per_lang: pd.Series, *, n_seeds: int,
                    max_rise: float, model: str, cross: Mapping | None = None,
                    causal: Mapping | None = None, specific_z: float | None = None,
                    flops_at_comparable: Mapping[str, float] | None = None,
                    speed: pd.DataFrame | None = None,
                    construction: pd.DataFrame | None = None) -> str:
    """The notebook's conclusion (markdown): :func:`answer`, then one bullet per finding.

    Args:
        summary: Median rise ``k x method``.
        per_lang: Mean rise over seeds indexed by (k, method, language).
        n_seeds: Seeds of the random baselines (for the text).
        max_rise: Largest median rise counted as comparable quality.
        model: The model of the sweep.
        cross: Summary of :func:`babel.prune.experiments.cross_language` (None: skipped).
        causal: Summary of :func:`babel.prune.experiments.causal_removal` (None: skipped).
        specific_z: The z threshold of specific experts (for the text).
        flops_at_comparable: Theoretical speedups at :func:`comparable_share`.
        speed: The speed table.
        construction: Median rise ``k x construction`` (None: skipped).
    """
    lines = [answer(summary, max_rise=max_rise, model=model,
                    flops_at_comparable=flops_at_comparable, speed=speed), ""]
    for k in pruned_shares(summary):
        r = summary.loc[k]
        g, a, rm, ru = r[GLOBAL], r[ADAPTIVE], r[MATCHED], r[UNIFORM]
        lines.append(
            f"- k = {k:g}: median perplexity rise {pct(g)} (frequency, global), {pct(a)} "
            f"(frequency, adaptive), {pct(rm)} (random, matched counts), {pct(ru)} (random, "
            f"uniform; random = mean of {n_seeds} seeds). Frequency-based (global) "
            + ("beats" if g < min(rm, ru) else "does not beat both")
            + f" random: its rise is {_ratio(g, ru)} the uniform-random one and "
            f"{_ratio(g, rm)} the matched-random one. Adaptive per-layer rates are "
            f"{compare(a, g)} the global ranking (within 5% counts as equal).")
    freq_g = per_lang.xs(GLOBAL, level="method")
    wins = {m: int((freq_g < per_lang.xs(m, level="method")).sum()) for m in (MATCHED, UNIFORM)}
    adaptive_wins = int((per_lang.xs(ADAPTIVE, level="method") < freq_g).sum())
    n = len(freq_g)
    lines.append(f"- Per (language, k): frequency (global) has a smaller rise than uniform "
                 f"random in {wins[UNIFORM]} of {n} and than matched random in {wins[MATCHED]} "
                 f"of {n}; adaptive beats global in {adaptive_wins} of {n}.")
    if cross is not None:
        lines.append(
            f"- Cross-language (k = {cross['k']:g}): a language's own mask is the best for "
            f"{cross['n_diagonal_best']} of {len(cross['diagonal_best'])} evaluated languages; "
            f"mean rise own {pct(cross['mean_rise_own'])}, same branch "
            f"{pct(cross['mean_rise_same_branch'])}, same family but other branch "
            f"{pct(cross['mean_rise_same_family_other_branch'])}, other family "
            f"{pct(cross['mean_rise_other_family'])}, summed multilingual mask "
            f"{pct(cross['mean_rise_summed_mask'])}.")
    if causal is not None and causal.get("n_specific"):
        lines.append(
            f"- Causal test: removing the {causal['n_specific']} experts specific to "
            f"{causal['language']} raises its perplexity by {pct(causal['rise_target'])} vs "
            f"{pct(causal['rise_others_mean'])} on the other languages (random removal of the "
            f"same number: {pct(causal['rise_target_random'])} vs "
            f"{pct(causal['rise_others_random_mean'])}).")
    elif causal is not None:
        lines.append(f"- Causal test: no expert is specific to {causal['language']} at "
                     f"z ≥ {specific_z}.")
    k_ok = comparable_share(summary, max_rise=max_rise)
    if k_ok is not None and flops_at_comparable is not None:
        lines.append(f"- Comparable quality (median rise ≤ {pct(max_rise)}) holds down to k = "
                     f"{k_ok:g} among {pruned_shares(summary)}: theoretical body speedup "
                     f"there ×{flops_at_comparable['body']:.2f}, end to end "
                     f"×{flops_at_comparable['end_to_end']:.2f}.")
    elif k_ok is None:
        lines.append(f"- No pruned k in {pruned_shares(summary)} keeps the median rise within "
                     f"{pct(max_rise)} (frequency, global): no speedup comes at comparable "
                     f"quality here.")
    for _, r in (speed if speed is not None else pd.DataFrame()).iterrows():
        lines.append(f"- Speed, {r.model}, k = {r.k:g}: body ×{r.measured_body:.2f} measured "
                     f"vs ×{r.theoretical_body:.2f} from FLOPs; end to end "
                     f"×{r.measured_end_to_end:.2f} vs ×{r.theoretical_end_to_end:.2f} (the FFN "
                     f"is {100 * r.ffn_share_end_to_end:.0f}% of end-to-end matmul FLOPs).")
    for k, r in (construction if construction is not None else pd.DataFrame()).iterrows():
        lines.append(f"- Construction at k = {k:g}: median rise "
                     + ", ".join(f"{c} {pct(v)}" for c, v in r.items())
                     + f"; best: {r.idxmin()}.")
    return "\n".join(lines)
