"""The conclusion of notebook 04, written from its numbers.

It opens with a one-sentence answer to the paper's claim, "per-language pruning gives
comparable quality, faster": **yes** when some pruned share keeps the median perplexity rise
of the frequency-based (global) masks within ``max_rise`` and the model pruned at that share
is faster (measured when the speed table has that share, else from FLOPs); **partly** when
quality holds but the pruned model is not faster; **no** when no pruned share keeps quality.
"Better than random" is judged against the two headline random baselines, uniform and
frequency-matched; the layer-counts random mask is a diagnostic, only reported. A measured
speedup whose interval lies above its FLOP bound is timing noise: flagged, never used as the
answer's speed. Bullets follow: the sweep per share, wins per (language, share), the
cross-language matrix, the causal test, the speed table (with where the speedup is not
monotonic in k) and the construction comparison.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

GLOBAL, ADAPTIVE = "frequency (global)", "frequency (adaptive)"
UNIFORM, FREQ_MATCHED = "random (uniform)", "random (frequency-matched)"
LAYER_COUNTS = "random (layer counts)"
HEADLINE_RANDOM = (UNIFORM, FREQ_MATCHED)
PARTS = {"body": "body", "end_to_end": "end to end"}


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


def _bounds(r: pd.Series, part: str) -> tuple[float, float]:
    """``(low, high)`` of a measured speedup (the point value when no interval was kept)."""
    v = float(r[f"measured_{part}"])
    lo, hi = r.get(f"measured_{part}_low", v), r.get(f"measured_{part}_high", v)
    return (v if pd.isna(lo) else float(lo)), (v if pd.isna(hi) else float(hi))


def is_noise(r: pd.Series, part: str = "body") -> bool:
    """Whether a measured speedup's lower bound lies above its FLOP bound (timing noise)."""
    return _bounds(r, part)[0] > float(r[f"theoretical_{part}"])


def non_monotonic(speed: pd.DataFrame, part: str = "body") -> list[tuple[str, float, float]]:
    """``(model, k_small, k_large)``: a smaller k measured slower than a larger k, intervals apart.

    Pruning more should never be slower; within the intervals it may look so by chance, so
    only pairs whose intervals do not overlap count.
    """
    out = []
    for name, d in speed.groupby("model", sort=False):
        rows = list(d.sort_values("k").iterrows())
        for i, (_, small) in enumerate(rows):
            for _, large in rows[i + 1:]:
                if small.k < large.k and _bounds(small, part)[1] < _bounds(large, part)[0]:
                    out.append((str(name), float(small.k), float(large.k)))
    return out


def speed_notes(speed: pd.DataFrame) -> list[str]:
    """One note per row of a speed table: noise above the FLOP bound, non-monotonic k ("")."""
    notes = [[] for _ in range(len(speed))]
    pos = {idx: i for i, idx in enumerate(speed.index)}
    for part, label in PARTS.items():
        for idx, r in speed.iterrows():
            if is_noise(r, part):
                notes[pos[idx]].append(f"{label}: above its FLOP bound (noise)")
        for name, k_small, k_large in non_monotonic(speed, part):
            idx = speed.index[(speed.model == name) & np.isclose(speed.k, k_small)][0]
            notes[pos[idx]].append(f"{label}: slower than k={k_large:g}")
    return ["; ".join(n) for n in notes]


def _measured_speed(speed: pd.DataFrame | None, model: str, k: float) -> float | None:
    """The measured body speedup of ``model`` at ``k`` (None: not measured, or noise)."""
    if speed is None or not len(speed):
        return None
    row = speed[(speed.model == model) & np.isclose(speed.k, k)]
    if not len(row) or is_noise(row.iloc[0]):
        return None
    return float(row.measured_body.iloc[0])


def beats_random(summary: pd.DataFrame, k: float) -> bool:
    """Whether frequency (global) has a smaller median rise than every headline random mask."""
    rnd = [summary.loc[k, m] for m in HEADLINE_RANDOM
           if m in summary.columns and pd.notna(summary.loc[k, m])]
    return bool(rnd) and summary.loc[k, GLOBAL] < min(rnd)


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
    beats = beats_random(summary, k_ok)
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
            f"of the same size, uniform and frequency-matched), and {speed_txt}"
            + ("." if faster or sp is None else ", i.e. not faster."))


def _ci(median_ci: pd.DataFrame | None, k: float, method: str) -> str:
    """`` [low, high]`` of a median rise (empty without intervals)."""
    if median_ci is None or not len(median_ci):
        return ""
    r = median_ci[np.isclose(median_ci.k, k) & (median_ci.method == method)]
    return f" [{pct(r.low.iloc[0])}, {pct(r.high.iloc[0])}]" if len(r) else ""


def _sweep_line(summary: pd.DataFrame, k: float, *, n_seeds: int,
                median_ci: pd.DataFrame | None, removed_freq: pd.DataFrame | None) -> str:
    r = summary.loc[k]

    def val(m: str) -> str:
        return pct(r.get(m)) + _ci(median_ci, k, m)

    g, a = r[GLOBAL], r[ADAPTIVE]
    rnd = {m: r[m] for m in HEADLINE_RANDOM if m in r.index and pd.notna(r[m])}
    ratios = " and ".join(f"{_ratio(g, v)} the {m.split('(')[1][:-1]} one"
                          for m, v in rnd.items())
    beats = beats_random(summary, k)
    clear = ""
    if beats and median_ci is not None and len(median_ci) and _ci(median_ci, k, GLOBAL):
        row = median_ci[np.isclose(median_ci.k, k)].set_index("method")
        apart = all(row.high[GLOBAL] < row.low[m] for m in rnd if m in row.index)
        clear = (" (intervals apart)" if apart else " (but the intervals overlap)")
    match = ""
    if removed_freq is not None and k in removed_freq.index and {GLOBAL, FREQ_MATCHED} <= set(
            removed_freq.columns):
        match = (f" The frequency-matched control removes experts of mean frequency "
                 f"{removed_freq.loc[k, FREQ_MATCHED]:.3g} (the global mask's: "
                 f"{removed_freq.loc[k, GLOBAL]:.3g}; median over languages).")
    return (f"- k = {k:g}: median perplexity rise {val(GLOBAL)} (frequency, global), "
            f"{val(ADAPTIVE)} (frequency, adaptive), {val(UNIFORM)} (random, uniform), "
            f"{val(FREQ_MATCHED)} (random, frequency-matched); random = mean of {n_seeds} "
            f"seeds, [95% intervals] over evaluation items. Frequency-based (global) "
            + ("beats" if beats else "does not beat both")
            + f" random{clear}: its rise is {ratios}. Adaptive per-layer rates are "
            f"{compare(a, g)} the global ranking (within 5% counts as equal). Diagnostic "
            f"only: random with the global mask's per-layer counts {val(LAYER_COUNTS)} (it "
            f"copies the global mask's uneven per-layer counts, so its rises are degenerate)."
            + match)


def _speed_lines(speed: pd.DataFrame | None) -> list[str]:
    if speed is None or not len(speed):
        return []
    lines = []
    for _, r in speed.iterrows():
        parts = []
        for part, label in PARTS.items():
            lo, hi = _bounds(r, part)
            th = r[f"theoretical_{part}"]
            if is_noise(r, part):
                parts.append(f"{label}: measured ×{r[f'measured_{part}']:.2f} [{lo:.2f}, "
                             f"{hi:.2f}] lies above its FLOP bound ×{th:.2f}, so it is timing "
                             f"noise, not a result")
            else:
                parts.append(f"{label} ×{r[f'measured_{part}']:.2f} [{lo:.2f}, {hi:.2f}] "
                             f"measured vs ×{th:.2f} from FLOPs")
        rounds = f", {int(r.rounds)} rounds" if "rounds" in r and pd.notna(r.rounds) else ""
        lines.append(f"- Speed, {r.model}, k = {r.k:g}{rounds}: " + "; ".join(parts)
                     + f" (the FFN is {100 * r.ffn_share_end_to_end:.0f}% of end-to-end "
                     f"matmul FLOPs).")
    for part, label in PARTS.items():
        bad = non_monotonic(speed, part)
        if bad:
            lines.append(f"- Speed ({label}) is not monotonic in k: "
                         + "; ".join(f"{m} at k = {a:g} is slower than at k = {b:g}"
                                     for m, a, b in bad)
                         + " (95% intervals apart).")
    return lines


def conclusion_text(summary: pd.DataFrame, per_lang: pd.Series, *, n_seeds: int,
                    max_rise: float, model: str, cross: Mapping | None = None,
                    causal: Mapping | None = None, specific_z: float | None = None,
                    flops_at_comparable: Mapping[str, float] | None = None,
                    speed: pd.DataFrame | None = None,
                    construction: pd.DataFrame | None = None,
                    median_ci: pd.DataFrame | None = None,
                    removed_freq: pd.DataFrame | None = None) -> str:
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
        speed: The speed table (measured speedups with ``_low``/``_high`` bounds).
        construction: Median rise ``k x construction`` (None: skipped).
        median_ci: Intervals of the median rises, rows (k, method, rise, low, high)
            (:func:`babel.prune.experiments.sweep_intervals`; None: no intervals in the text).
        removed_freq: Mean frequency of the removed experts, ``k x method``
            (:func:`babel.prune.experiments.removed_frequency`; None: not reported).
    """
    lines = [answer(summary, max_rise=max_rise, model=model,
                    flops_at_comparable=flops_at_comparable, speed=speed), ""]
    for k in pruned_shares(summary):
        lines.append(_sweep_line(summary, k, n_seeds=n_seeds, median_ci=median_ci,
                                 removed_freq=removed_freq))
    methods = set(per_lang.index.get_level_values("method"))
    freq_g = per_lang.xs(GLOBAL, level="method")
    n = len(freq_g)
    wins = []
    for m in (*HEADLINE_RANDOM, LAYER_COUNTS):
        if m in methods:
            other = per_lang.xs(m, level="method")
            wins.append(f"than {m.split('(')[1][:-1]} random in "
                        f"{int((freq_g.reindex(other.index) < other).sum())} of {len(other)}")
    adaptive_wins = int((per_lang.xs(ADAPTIVE, level="method") < freq_g).sum())
    lines.append("- Per (language, k): frequency (global) has a smaller rise "
                 + ", ".join(wins) + f"; adaptive beats global in {adaptive_wins} of {n}.")
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
        def c(key: str) -> str:
            iv = causal.get(f"{key}_ci")
            return pct(causal[key]) + (f" [{pct(iv[0])}, {pct(iv[1])}]" if iv else "")

        lines.append(
            f"- Causal test: removing the {causal['n_specific']} experts specific to "
            f"{causal['language']} raises its perplexity by {c('rise_target')} vs "
            f"{c('rise_others_mean')} on the other languages (removing as many random experts "
            f"of the same frequencies in {causal['language']}: {c('rise_target_random')} vs "
            f"{c('rise_others_random_mean')}).")
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
    lines += _speed_lines(speed)
    for k, r in (construction if construction is not None else pd.DataFrame()).iterrows():
        lines.append(f"- Construction at k = {k:g}: median rise "
                     + ", ".join(f"{c} {pct(v)}" for c, v in r.items())
                     + f"; best: {r.idxmin()}.")
    return "\n".join(lines)
