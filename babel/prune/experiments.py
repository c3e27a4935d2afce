"""The pruning experiments of notebook 04 (and the pruning benchmark), one function per step.

Every step takes an :class:`~babel.prune.evaluation.Evaluator` (held-out perplexity of one
model under neuron masks, memoised), per-language expert frequencies ``[L, E]`` and the
partition that turns expert masks into neuron masks (:func:`babel.prune.masks.neuron_keep_mask`,
the one expansion), and returns a tidy table plus a JSON-ready summary:

- :func:`perplexity_sweep` — frequency-based masks (global ranking, adaptive per-layer
  allocation) against random masks over seeds: uniform counts and frequency-matched experts
  (the headline controls), and the global mask's per-layer counts (a diagnostic);
  :func:`median_rise` aggregates it (mean over seeds per language, median over languages)
  and :func:`sweep_intervals` puts paired bootstrap intervals over evaluation items on
  every rise;
- :func:`prune_check` — the structurally sliced model equals the masked one; save/reload;
- :func:`cross_language` — masks from language A evaluated on language B;
- :func:`causal_removal` — remove only one language's specific experts (and a
  frequency-matched random control);
- :func:`speed_rows` / :func:`speed_table` — measured speedups of sliced models (with
  bootstrap intervals over timing rounds) against FLOPs;
- :func:`construction_comparison` — the same pruning under different expert constructions.

The rise of a mask on a language is ``ppl / ppl_dense - 1``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from babel.construct.partition import Partition, get_partition, single_neuron_partition
from babel.core import paths
from babel.core.config import PartitionConfig
from babel.data.chunking import chunk_texts
from babel.data.corpus import load_items
from babel.data.languages import get_language
from babel.models.ffn import ffn_layers
from babel.models.surgery import load_pruned, prune_model, save_pruned
from babel.prune.conclusion import comparable_share, speed_notes
from babel.prune.controls import matched_random_experts
from babel.prune.evaluation import (
    Evaluator,
    Perplexity,
    evaluation_chunks,
    perplexity,
    speedups,
    throughput,
)
from babel.prune.flops import flops_per_token, theoretical_speedup
from babel.prune.intervals import Interval, interval, rise_draws
from babel.prune.masks import (
    group_keep_mask,
    keep_mask,
    neuron_keep_mask,
    random_keep_mask,
    random_like,
    removal_mask,
    uniform_random_mask,
)

GLOBAL, ADAPTIVE = "frequency (global)", "frequency (adaptive)"
UNIFORM, FREQ_MATCHED = "random (uniform)", "random (frequency-matched)"
LAYER_COUNTS = "random (layer counts)"
#: The mask kinds of the sweep, in display order.
MASK_METHODS = (GLOBAL, ADAPTIVE, UNIFORM, FREQ_MATCHED, LAYER_COUNTS)
#: The random baselines "frequency beats random" is judged against; :data:`LAYER_COUNTS`
#: (the global mask's per-layer counts, random experts) is a diagnostic only: at small k it
#: keeps whole layers almost intact, so its rises are degenerate.
HEADLINE_RANDOM = (UNIFORM, FREQ_MATCHED)
SUMMED = "all (summed)"


def frequency_matched_keep(freq: np.ndarray, keep: np.ndarray, *, seed: int) -> np.ndarray:
    """Keep-mask removing random experts frequency-matched to the ones ``keep`` removes.

    The removed experts are drawn from those ``keep`` keeps, with the same distribution of
    ``freq`` as the experts ``keep`` removes
    (:func:`babel.prune.controls.matched_random_experts`); a layer never loses all its
    experts (:func:`babel.prune.masks.removal_mask`).

    Args:
        freq: ``[L, E]`` activation frequency of the language.
        keep: ``[L, E]`` bool keep-mask whose removed set is matched (it must remove at most
            half of the experts).
        seed: Random seed.
    """
    return removal_mask(matched_random_experts(freq, ~np.asarray(keep, dtype=bool), seed=seed),
                        freq)


def expert_masks(freq: np.ndarray, share: float, *,
                 seeds: Sequence[int]) -> list[tuple[str, int | None, np.ndarray]]:
    """The sweep's expert keep-masks ``[L, E]`` of one language at kept share ``share``.

    Args:
        freq: ``[L, E]`` activation frequency of the language.
        share: Kept share ``k`` of all experts.
        seeds: Seeds of the random baselines.

    Returns:
        ``(method, seed, mask)`` triples: the two frequency masks (seed None), then per seed
        a uniform random mask (the same share of random experts in every layer) and a
        frequency-matched one (:func:`frequency_matched_keep` of the global mask; left out when
        the global mask removes more than half of the experts: there are not enough others to
        match), and, for the first seed only, the diagnostic random mask with the global mask's
        per-layer counts.
    """
    g = keep_mask(freq, share, allocation="global")
    out = [(GLOBAL, None, g), (ADAPTIVE, None, keep_mask(freq, share, allocation="adaptive"))]
    matchable = (~g).sum() <= g.sum()
    for i, s in enumerate(seeds):
        out.append((UNIFORM, s, uniform_random_mask(*g.shape, share, seed=s)))
        if matchable:
            out.append((FREQ_MATCHED, s, frequency_matched_keep(freq, g, seed=s)))
        if i == 0:
            out.append((LAYER_COUNTS, s, random_like(g, seed=s)))
    return out


def perplexity_sweep(ev: Evaluator, freqs: Mapping[str, np.ndarray], partition: Partition, *,
                     kept_shares: Sequence[float], seeds: Sequence[int],
                     languages: Sequence[str] | None = None,
                     methods: Sequence[str] = MASK_METHODS) -> pd.DataFrame:
    """Held-out perplexity of every mask of :func:`expert_masks`, per language and share.

    Args:
        ev: Evaluator with chunks for every language.
        freqs: ``{language: [L, E] frequency}`` (from the profiling split).
        partition: The partition the frequencies were profiled with.
        kept_shares: Shares ``k``; ``1.0`` evaluates the dense model (method ``"dense"``).
        seeds: Seeds of the random baselines.
        languages: Languages to sweep (default: every key of ``freqs``).
        methods: The mask kinds evaluated (default: all of :data:`MASK_METHODS`).

    Returns:
        One row per (language, k, method, seed): ``ppl``, ``rise``, counted ``tokens``,
        ``mask`` (:meth:`Evaluator.mask_key`: the evaluator's memo holds its per-item NLL, read
        by :func:`sweep_intervals`) and ``removed_freq``, the mean frequency (in the
        language's profile) of the experts the mask removes.
    """
    rows = []
    for lang in languages or list(freqs):
        dense = ev(None, lang)
        for k in kept_shares:
            masks = ([("dense", None, None)] if k == 1.0 else
                     [m for m in expert_masks(freqs[lang], k, seeds=seeds) if m[0] in methods])
            for name, s, m in masks:
                nm = None if m is None else neuron_keep_mask(m, partition)
                p = ev(nm, lang)
                rows.append({"language": lang, "k": k, "method": name, "seed": s, "ppl": p.ppl,
                             "rise": p.ppl / dense.ppl - 1, "tokens": p.tokens,
                             "mask": ev.mask_key(nm),
                             "removed_freq": (float(freqs[lang][~m].mean())
                                              if m is not None and (~m).any() else np.nan)})
    return pd.DataFrame(rows)


def _draws(dense: Perplexity, pruned: Sequence[Perplexity], *, n_bootstrap: int,
           seed: int) -> tuple[float, np.ndarray]:
    """:func:`babel.prune.intervals.rise_draws` of evaluator results (several: a seed mean)."""
    if dense.item_nll is None or any(p.item_nll is None for p in pruned):
        raise ValueError("bootstrap intervals need per-item NLL: build the evaluation chunks "
                         "with chunk_texts (they carry item_index)")
    return rise_draws(dense.item_nll, np.stack([p.item_nll for p in pruned]),
                      dense.item_tokens, n_bootstrap=n_bootstrap, seed=seed)


def rise_ci(ev: Evaluator, masks: Sequence, lang: str, *, n_bootstrap: int = 1000,
            seed: int = 0, level: float = 0.95) -> Interval:
    """Rise of one neuron mask (several: their mean) on ``lang`` with a bootstrap interval.

    Paired over the evaluation items: each resample of the items is applied to the dense and
    the masked NLL alike (:func:`babel.prune.intervals.rise_draws`).
    """
    value, draws = _draws(ev(None, lang), [ev(m, lang) for m in masks],
                          n_bootstrap=n_bootstrap, seed=seed)
    return interval(value, draws, level=level)


def sweep_intervals(ev: Evaluator, sweep: pd.DataFrame, *, n_bootstrap: int = 1000,
                    seed: int = 0, level: float = 0.95) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Paired bootstrap intervals over evaluation items for every rise of a sweep.

    Per (language, k, method) the rise is resampled over the language's items (random
    methods: the mean over seeds, resampled as one statistic). Per (k, method) the median over
    languages is taken draw by draw: its interval is the percentile interval of those
    medians. Every language uses the same bootstrap seed. No evaluation runs: the per-item
    NLLs come from the evaluator's memo (the sweep's ``mask`` column).

    Args:
        ev: The evaluator that ran ``sweep``.
        sweep: From :func:`perplexity_sweep`.
        n_bootstrap: Resamples of the items.
        seed: Bootstrap seed.
        level: Interval level.

    Returns:
        ``(per_language, median)``: rows (language, k, method, rise, low, high) and rows
        (k, method, rise, low, high), pruned shares only.
    """
    rows, draws = [], {}
    for (lang, k, m), g in sweep[sweep.k < 1].groupby(["language", "k", "method"], sort=False):
        value, d = _draws(ev(None, lang), [ev.memo[(key, lang)] for key in g["mask"]],
                          n_bootstrap=n_bootstrap, seed=seed)
        iv = interval(value, d, level=level)
        rows.append({"language": lang, "k": k, "method": m, "rise": iv.value, "low": iv.low,
                     "high": iv.high})
        draws.setdefault((k, m), []).append((value, d))
    med = []
    for (k, m), vd in draws.items():
        iv = interval(float(np.median([v for v, _ in vd])),
                      np.median(np.stack([d for _, d in vd]), axis=0), level=level)
        med.append({"k": k, "method": m, "rise": iv.value, "low": iv.low, "high": iv.high})
    return pd.DataFrame(rows), pd.DataFrame(med)


def ci_record(table: pd.DataFrame) -> dict[str, dict[str, dict[str, float]]]:
    """``{f"{k:g}": {method: {"value", "low", "high"}}}`` of :func:`sweep_intervals`' median."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for r in table.itertuples():
        out.setdefault(f"{r.k:g}", {})[r.method] = {"value": float(r.rise),
                                                    "low": float(r.low), "high": float(r.high)}
    return out


def ci_table(table: pd.DataFrame, *, index: Sequence[str] = ("k",)) -> pd.DataFrame:
    """Rises with intervals as text, in %: ``"+1.2 [+0.8, +1.6]"``, ``index x method``."""
    txt = table.assign(ci=[f"{100 * r:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]"
                           for r, lo, hi in zip(table.rise, table.low, table.high, strict=True)])
    out = txt.pivot_table(index=list(index), columns="method", values="ci", aggfunc="first")
    return out[[m for m in MASK_METHODS if m in out.columns]]


def removed_frequency(sweep: pd.DataFrame) -> pd.DataFrame:
    """Median over languages of the mean frequency of the removed experts, ``k x method``.

    Shows how well the frequency-matched control matches the global mask: when the global
    mask removes the least frequent experts, the control can only draw the nearest
    frequencies among the kept ones.
    """
    d = sweep[sweep.k < 1]
    return (d.groupby(["k", "method", "language"]).removed_freq.mean()
            .groupby(["k", "method"]).median().unstack("method"))


def median_rise(sweep: pd.DataFrame) -> tuple[pd.Series, pd.DataFrame]:
    """Aggregate a sweep: mean rise over seeds per language, then the median over languages.

    Returns:
        ``(per_language, summary)``: the Series indexed by (k, method, language) and the
        table ``k x method`` of median rises.
    """
    per_lang = sweep.groupby(["k", "method", "language"]).rise.mean()
    summary = per_lang.groupby(["k", "method"]).median().unstack("method")
    return per_lang, summary


def table_record(table: pd.DataFrame) -> dict[str, dict[str, float]]:
    """``{f"{k:g}": {column: value}}`` of a table indexed by share (NaN cells left out)."""
    return {f"{k:g}": {c: float(v) for c, v in r.items() if pd.notna(v)}
            for k, r in table.iterrows()}


def sweep_record(sweep: pd.DataFrame) -> list[dict]:
    """The sweep's rows as JSON-ready records (rounded to 6 digits, NaN as None)."""
    return sweep.round(6).astype(object).where(sweep.notna(), None).to_dict("records")


def rise_table(sweep: pd.DataFrame) -> pd.DataFrame:
    """Per language and pruned share: mean and standard deviation over seeds of each method."""
    return (sweep[sweep.k < 1].groupby(["language", "k", "method"])
            .agg(rise=("rise", "mean"), rise_sd=("rise", "std")).unstack("method"))


def allocation_table(freq: np.ndarray, share: float) -> pd.DataFrame:
    """Kept share of each layer's experts under the global and the adaptive allocation."""
    return pd.DataFrame({"layer": np.arange(freq.shape[0]),
                         "global": keep_mask(freq, share, allocation="global").mean(1),
                         "adaptive": keep_mask(freq, share, allocation="adaptive").mean(1)})


def prune_check(ev: Evaluator, keep_neurons: np.ndarray, lang: str, *, folder,
                meta: Mapping | None = None) -> dict:
    """Slice the weights of one mask for real: same perplexity as masking; save and reload.

    Args:
        ev: Evaluator of the dense model (its chunks, batch size and BOS id are used).
        keep_neurons: ``[L, N]`` neuron keep-mask.
        lang: Language evaluated.
        folder: Where the pruned model is saved (:func:`babel.models.surgery.save_pruned`).
        meta: Extra settings saved beside it.

    Returns:
        Masked and sliced perplexities and their difference, the largest logit difference
        after reloading, parameter counts and the saved size in MB.
    """
    lm = ev.model
    pruned = prune_model(lm, keep_neurons)
    p_sliced = perplexity(pruned, ev.chunks[lang], batch_size=ev.batch_size, bos_id=ev.bos_id)
    p_masked = ev(keep_neurons, lang)
    folder = save_pruned(pruned, folder, meta=dict(meta or {}))
    reloaded = load_pruned(folder)
    ids = ev.chunks[lang].input_ids[:1, :32]
    with torch.no_grad():
        diff = float((reloaded(input_ids=ids).logits - pruned(input_ids=ids).logits).abs().max())
    return {"ppl_masked": p_masked.ppl, "ppl_sliced": p_sliced.ppl,
            "abs_diff": abs(p_masked.ppl - p_sliced.ppl), "reload_max_logit_diff": diff,
            "params_dense": sum(p.numel() for p in lm.parameters()),
            "params_pruned": sum(p.numel() for p in pruned.parameters()),
            "saved_mb": round(sum(f.stat().st_size for f in folder.iterdir()) / 2**20, 1)}


def _mean_or_none(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def cross_language(ev: Evaluator, freqs: Mapping[str, np.ndarray], partition: Partition, *,
                   share: float, languages: Sequence[str],
                   family: Mapping[str, str] | None = None,
                   branch: Mapping[str, str] | None = None, n_bootstrap: int = 1000,
                   bootstrap_seed: int = 0, level: float = 0.95) -> tuple[pd.DataFrame, dict]:
    """Masks from language A (global allocation) evaluated on language B, at one share.

    The last row is a multilingual mask ranked by the languages' summed frequencies.

    Args:
        ev: Evaluator with chunks for every language.
        freqs: ``{language: [L, E] frequency}``.
        partition: The partition of the frequencies.
        share: Kept share ``k``.
        languages: Languages crossed (at least 2).
        family: Family of each language (pairs are grouped by it; default: the language
            table's) ...
        branch: ... and by branch (e.g. Romance; default: the language table's).
        n_bootstrap: Resamples of the evaluated language's items for each cell's interval
            (0: no intervals).
        bootstrap_seed: Bootstrap seed (the same for every cell).
        level: Interval level.

    Returns:
        ``(matrix, summary)``: rises ``[mask language (+ summed), evaluated language]`` and
        the summary: for each evaluated language whether its own mask is the best
        (``diagonal_best``), mean rises of own / same-branch / same-family-other-branch /
        other-family pairs and of the summed mask, and ``intervals``
        ``{mask language: {evaluated language: [low, high]}}`` (paired bootstrap over items).
    """
    langs = list(languages)
    if len(langs) < 2:
        raise ValueError(f"the cross-language matrix needs >= 2 languages, got {langs}")
    family = family or {x: get_language(x).family for x in langs}
    branch = branch or {x: get_language(x).branch for x in langs}
    cross = pd.DataFrame(index=langs + [SUMMED], columns=langs, dtype=float)
    intervals: dict[str, dict[str, list[float]]] = {}
    for a in langs + [SUMMED]:
        m = (group_keep_mask(np.stack([freqs[x] for x in langs]), share, combine="sum")
             if a == SUMMED else keep_mask(freqs[a], share))
        nm = neuron_keep_mask(m, partition)
        for b in langs:
            cross.loc[a, b] = ev.rise(nm, b)
            if n_bootstrap:
                iv = rise_ci(ev, [nm], b, n_bootstrap=n_bootstrap, seed=bootstrap_seed,
                             level=level)
                intervals.setdefault(a, {})[b] = [iv.low, iv.high]
    own = cross.loc[langs, langs]
    diag_best = {b: bool(own[b].idxmin() == b) for b in langs}
    pairs = [(a, b) for a in langs for b in langs if a != b]
    same_branch = [own.loc[a, b] for a, b in pairs if branch[a] == branch[b]]
    same_fam = [own.loc[a, b] for a, b in pairs
                if family[a] == family[b] and branch[a] != branch[b]]
    other_fam = [own.loc[a, b] for a, b in pairs if family[a] != family[b]]
    summary = {"k": share, "diagonal_best": diag_best,
               "n_diagonal_best": sum(diag_best.values()),
               "mean_rise_own": float(np.diag(own.values).mean()),
               "mean_rise_same_branch": _mean_or_none(same_branch),
               "mean_rise_same_family_other_branch": _mean_or_none(same_fam),
               "mean_rise_other_family": _mean_or_none(other_fam),
               "mean_rise_summed_mask": float(cross.loc[SUMMED].mean())}
    if intervals:
        summary["intervals"] = intervals
    return cross, summary


def matrix_record(matrix: pd.DataFrame) -> dict[str, dict[str, float]]:
    """``{row: {column: value}}`` of a numeric matrix."""
    return {a: {b: float(v) for b, v in r.items()} for a, r in matrix.iterrows()}


def causal_removal(ev: Evaluator, specific: np.ndarray, specific_languages: Sequence[str],
                   freq: np.ndarray, partition: Partition, *, target: str,
                   languages: Sequence[str], seeds: Sequence[int], n_bootstrap: int = 1000,
                   bootstrap_seed: int = 0, level: float = 0.95) -> tuple[pd.DataFrame, dict]:
    """Remove only the experts specific to ``target``; evaluate every language.

    The control removes, per seed, as many random experts with the same distribution of
    frequencies in ``target`` (:func:`babel.prune.controls.matched_random_experts`, disjoint
    from the specific ones): the same activity taken away, without specificity. Every rise has
    a paired bootstrap interval over the evaluated language's items (the control: the mean
    over seeds, resampled as one statistic); the mean over the other languages takes the mean
    of their draws, draw by draw. A layer never loses all its experts
    (:func:`babel.prune.masks.removal_mask`).

    Args:
        ev: Evaluator with chunks for every language.
        specific: ``[n_lang, L, E]`` bool, the experts specific to each language
            (:attr:`babel.profile.classes.ExpertClasses.specific`).
        specific_languages: The languages of ``specific``'s first axis (``target`` among them).
        freq: ``[L, E]`` frequency of ``target`` (the control matches it; keeps a layer's most
            frequent expert if all its experts are removed).
        partition: The partition of the frequencies.
        target: The language whose specific experts are removed.
        languages: Languages evaluated (``target`` among them).
        seeds: Seeds of the random control.
        n_bootstrap: Resamples of the items.
        bootstrap_seed: Bootstrap seed (the same for every language).
        level: Interval level.

    Returns:
        ``(table, summary)``; the table has per language the rises with ``_low``/``_high``
        bounds; the summary ``rise_target``, ``rise_others_mean``, ``rise_target_random``,
        ``rise_others_random_mean`` and each one's ``_ci`` ``[low, high]``. With no specific
        expert the table is empty and the summary holds ``n_specific = 0`` only.
    """
    specific = np.asarray(specific, dtype=bool)
    spec = specific[list(specific_languages).index(target)]
    n_spec = int(spec.sum())
    if not n_spec:
        return pd.DataFrame(), {"language": target, "n_specific": 0}
    nm = neuron_keep_mask(removal_mask(spec, freq), partition)
    controls = [neuron_keep_mask(removal_mask(matched_random_experts(freq, spec, seed=s), freq),
                                 partition) for s in seeds]
    rows, draws = [], {}
    for b in languages:
        row = {"language": b, "is_target": b == target}
        for col, masks in (("rise_specific_removed", [nm]), ("rise_random_removed", controls)):
            value, d = _draws(ev(None, b), [ev(m, b) for m in masks], n_bootstrap=n_bootstrap,
                              seed=bootstrap_seed)
            iv = interval(value, d, level=level)
            row |= {col: iv.value, f"{col}_low": iv.low, f"{col}_high": iv.high}
            draws[(b, col)] = d
        rnd = [ev.rise(m, b) for m in controls]
        row["rise_random_sd"] = float(np.std(rnd, ddof=1)) if len(rnd) > 1 else 0.0
        rows.append(row)
    table = pd.DataFrame(rows)
    tgt, others = table[table.is_target].iloc[0], table[~table.is_target]
    summary = {"language": target, "n_specific": n_spec,
               "specific_per_language": {x: int(specific[i].sum())
                                         for i, x in enumerate(specific_languages)}}
    for key, col in (("rise_target", "rise_specific_removed"),
                     ("rise_target_random", "rise_random_removed")):
        summary |= {key: float(tgt[col]), f"{key}_ci": [float(tgt[f"{col}_low"]),
                                                        float(tgt[f"{col}_high"])]}
    for key, col in (("rise_others_mean", "rise_specific_removed"),
                     ("rise_others_random_mean", "rise_random_removed")):
        if len(others):
            iv = interval(float(others[col].mean()),
                          np.mean([draws[(b, col)] for b in others.language], axis=0),
                          level=level)
            summary |= {key: iv.value, f"{key}_ci": [iv.low, iv.high]}
        else:
            summary[key] = float("nan")
    return table, summary


def speed_batch(tokenizer, lang: str, *, batch: int, seq_len: int,
                source: str = "builtin") -> torch.Tensor:
    """``[batch, seq_len]`` token ids of held-out text (the evaluation split) of ``lang``."""
    text = " ".join(it.text for it in load_items(lang, source=source, split="evaluation"))
    return chunk_texts([text], tokenizer, seq_len=seq_len,
                       max_tokens=batch * (seq_len - 1)).input_ids[:batch]


def layer_share_keep(model: nn.Module, share: float) -> list[np.ndarray]:
    """Neuron keep-masks keeping ``round(share·N)`` random neurons in every layer (seed = layer).

    For models without profiles: speed depends only on the kept counts, not on which neurons.
    """
    return [random_keep_mask([round(share * v.n_neurons)], v.n_neurons, seed=i)[0]
            for i, v in enumerate(ffn_layers(model))]


def flop_speedup(model: nn.Module, keep_neurons, *, seq_len: int) -> dict[str, float]:
    """Theoretical (FLOP) speedups of pruning ``model`` to ``keep_neurons``: FFN, body, e2e."""
    return theoretical_speedup(flops_per_token(model, seq_len=seq_len),
                               flops_per_token(model, keep_neurons=keep_neurons,
                                               seq_len=seq_len))


def speed_rows(name: str, dense: nn.Module, batch: torch.Tensor,
               keeps: Mapping[float, object], *, repeats: int, seq_len: int,
               max_repeats: int | None = None, warmup: int = 1,
               rel_half_width: float = 0.03) -> list[dict]:
    """Time ``dense`` and its sliced copies (one per kept share) together; compare with FLOPs.

    Args:
        name: Model name (the ``model`` column).
        dense: The dense model.
        batch: Token ids ``[B, T]`` every model sees.
        keeps: ``{share: neuron keep-mask}``; each is sliced with
            :func:`babel.models.surgery.prune_model`.
        repeats: Timed rounds at least (median), after ``warmup`` rounds.
        seq_len: Context length for the attention FLOPs.
        max_repeats: Timed rounds at most: rounds go on until every speedup's 95% interval
            has a half-width below ``rel_half_width`` of its value
            (:func:`babel.prune.evaluation.throughput`; None: exactly ``repeats``).
        rel_half_width: The relative precision aimed at.

    Returns:
        One row per share: FFN share of the dense FLOPs, theoretical and measured speedups of
        the body and end to end (measured with ``_low``/``_high`` bounds of the 95% bootstrap
        interval over the paired rounds), the timed ``rounds`` and the dense body's tokens
        per second.
    """
    models = {"dense": dense} | {f"k={k:g}": prune_model(dense, kp) for k, kp in keeps.items()}
    timing = throughput(models, batch, repeats=repeats, warmup=warmup, max_repeats=max_repeats,
                        rel_half_width=rel_half_width)
    sp = speedups(timing, intervals=True)
    f_dense = flops_per_token(dense, seq_len=seq_len)
    dense_tok_s = float(timing.set_index(["model", "part"]).tokens_per_s[("dense", "body")])
    rows = []
    for (label, pm), k in zip(list(models.items())[1:], keeps, strict=True):
        th = theoretical_speedup(f_dense, flops_per_token(pm, seq_len=seq_len))
        row = {"model": name, "k": float(k), "ffn_share_body": f_dense.ffn / f_dense.body,
               "ffn_share_end_to_end": f_dense.ffn / f_dense.total}
        for part in ("body", "end_to_end"):
            row |= {f"theoretical_{part}": th[part],
                    f"measured_{part}": float(sp.loc[label, f"speedup_{part}"]),
                    f"measured_{part}_low": float(sp.loc[label, f"speedup_{part}_low"]),
                    f"measured_{part}_high": float(sp.loc[label, f"speedup_{part}_high"])}
        rows.append(row | {"rounds": int(timing.repeats.max()), "dense_body_tok_s": dense_tok_s})
    return rows


def speed_table(rows: Sequence[dict]) -> pd.DataFrame:
    """:func:`speed_rows` of several models, with measured / theoretical ratios and a ``note``.

    The note (:func:`babel.prune.conclusion.speed_notes`) names a measured speedup whose lower
    bound lies above its FLOP bound (noise, not a result) and a share slower than a larger
    share with non-overlapping intervals (not monotonic in k).
    """
    speed = pd.DataFrame(list(rows))
    speed["measured/theoretical body"] = speed.measured_body / speed.theoretical_body
    speed["measured/theoretical e2e"] = speed.measured_end_to_end / speed.theoretical_end_to_end
    speed["note"] = speed_notes(speed)
    return speed


def construction_partitions(model: nn.Module, cfg: PartitionConfig, *, model_name: str,
                            current: Partition | None = None) -> dict[str, Partition]:
    """The constructions compared: ``cfg``'s method, the other of k-means/random, single neurons.

    Args:
        model: The model.
        cfg: The experiment's partition settings (the other construction changes only the
            method).
        model_name: Name of the partition cache.
        current: The partition of ``cfg`` if already built.
    """
    other = "random" if cfg.method == "kmeans" else "kmeans"
    return {cfg.method: current or get_partition(model, cfg, model_name=model_name),
            other: get_partition(model, dataclasses.replace(cfg, method=other),
                                 model_name=model_name),
            "single neuron": single_neuron_partition(model, model_name=model_name)}


def data_table(profiles: Mapping, chunks: Mapping) -> pd.DataFrame:
    """Per language: family, profiled tokens and held-out (evaluation) content tokens."""
    return pd.DataFrame([{"language": lang, "family": get_language(lang).family,
                          "profiled tokens": profiles[lang].tokens,
                          "evaluation tokens": chunks[lang].n_content_tokens}
                         for lang in chunks])


def construction_comparison(ev: Evaluator,
                            constructions: Mapping[str, tuple[Partition, Mapping[str, np.ndarray]]],
                            *, languages: Sequence[str],
                            shares: Sequence[float]) -> pd.DataFrame:
    """Frequency-based pruning (global allocation) under several expert constructions.

    Args:
        ev: Evaluator with chunks for every language.
        constructions: ``{name: (partition, {language: [L, E] frequency})}``.
        languages: Languages evaluated.
        shares: Kept shares.

    Returns:
        One row per (construction, language, k) with the rise.
    """
    rows = []
    for cname, (part, freqs) in constructions.items():
        for lang in languages:
            for k in shares:
                nm = neuron_keep_mask(keep_mask(freqs[lang], k), part)
                rows.append({"construction": cname, "language": lang, "k": k,
                             "rise": ev.rise(nm, lang)})
    return pd.DataFrame(rows)


def construction_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Median rise over languages, ``k x construction``."""
    return table.groupby(["k", "construction"]).rise.median().unstack()



def speed_section(exp, model: nn.Module, tokenizer, freq: np.ndarray, partition: Partition,
                  settings, *, language: str) -> pd.DataFrame:
    """Notebook 04's speed table: every model of ``settings.speed_models`` timed dense and
    pruned at ``settings.speed_shares`` (:func:`speed_rows`, :func:`speed_table`).

    For the experiment's model the masks are ``language``'s global frequency masks; another
    model (no profiles here) keeps the same share of neurons per layer at random
    (:func:`layer_share_keep`): speed depends only on the kept counts.

    Args:
        exp: The :class:`babel.experiment.ExperimentConfig` (loads the other models).
        model, tokenizer: The experiment's model.
        freq: ``[L, E]`` frequency of ``language``.
        partition: The experiment's partition.
        settings: :class:`babel.prune.settings.PruningSettings`.
        language: Whose text (and masks) are timed.
    """
    s, rows = settings, []
    for name in s.speed_models:
        m, m_tok = (model, tokenizer) if name == exp.model else exp.load_model(name)
        keeps = {k: neuron_keep_mask(keep_mask(freq, k), partition) if m is model
                 else layer_share_keep(m, k) for k in s.speed_shares}
        batch = speed_batch(m_tok, language, batch=s.speed_batch, seq_len=s.speed_seq_len,
                            source=exp.profile.corpus)
        rows += speed_rows(name, m, batch, keeps, repeats=s.speed_repeats,
                           max_repeats=s.speed_max_repeats, seq_len=s.speed_seq_len)
    return speed_table(rows)


def construction_section(exp, ev: Evaluator, model: nn.Module, tokenizer,
                         partition: Partition, freqs: Mapping[str, np.ndarray], *,
                         languages: Sequence[str], share: float) -> pd.DataFrame:
    """Notebook 04's construction comparison: the same frequency pruning with k-means, random
    and single-neuron experts (:func:`construction_partitions`), each profiled under the
    experiment's rule for ``languages``, at kept share ``share``; the median rise table
    (:func:`construction_summary`)."""
    cparts = construction_partitions(model, exp.partition, model_name=exp.model,
                                     current=partition)
    cons = {n: (p, freqs if p is partition else {x: pr.frequency for x, pr in exp.profiles(
        model, tokenizer, p, languages=languages, model_name=exp.model,
        progress=False).items()}) for n, p in cparts.items()}
    return construction_summary(construction_comparison(ev, cons, languages=languages,
                                                        shares=[share]))


def flops_at_comparable(model: nn.Module, summary: pd.DataFrame, freq: np.ndarray,
                        partition: Partition, *, max_rise: float,
                        seq_len: int) -> dict[str, float] | None:
    """FLOP speedups (:func:`flop_speedup`) of the global frequency mask of ``freq`` at the
    smallest kept share whose median rise is within ``max_rise``
    (:func:`babel.prune.conclusion.comparable_share`); ``None`` when no share is."""
    k_ok = comparable_share(summary, max_rise=max_rise)
    if k_ok is None:
        return None
    return flop_speedup(model, neuron_keep_mask(keep_mask(freq, k_ok), partition),
                        seq_len=seq_len)


def evaluation_set(tokenizer, languages: Sequence[str], settings, *,
                   source: str = "builtin") -> dict[str, object]:
    """The held-out chunks of every language under notebook 04's evaluation settings
    (:func:`babel.prune.evaluation.evaluation_chunks`: the evaluation split only)."""
    s = settings
    return {lang: evaluation_chunks(tokenizer, lang, seq_len=s.eval_seq_len,
                                    max_tokens=s.eval_max_tokens, max_items=s.eval_max_items,
                                    source=source) for lang in languages}


def prune_check_section(exp, ev: Evaluator, freq: np.ndarray, partition: Partition, *,
                        language: str, share: float) -> dict:
    """Notebook 04's check that slicing equals masking (:func:`prune_check`) for
    ``language``'s global frequency mask at ``share``, saved and reloaded under
    ``data/cache/pruned/<model>/…`` with the settings that made it."""
    key = f"{exp.partition.key}_{exp.profile.key}_{language}_global_k{share:g}"
    return prune_check(ev, neuron_keep_mask(keep_mask(freq, share), partition), language,
                       folder=paths.pruned_model_dir(exp.model, key),
                       meta={"language": language, "kept_share": share, "allocation": "global",
                             "partition": exp.partition.key, "profile": exp.profile.key})
