"""Notebook 04's own settings (besides the experiment's), validated in one place.

Settings that name languages (``pruning_languages``, ``causal_language``,
``construction_languages``) are not here: they follow the experiment's languages by
:meth:`babel.experiment.ExperimentConfig.subset`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from babel.core.params import ParameterError, check_choice, check_number, check_str
from babel.prune.importance import check_score


def check_score_param(name: Any) -> str:
    """An importance score name (:mod:`babel.prune.importance`), or a one-line error."""
    try:
        return check_score(check_str("methods.scores", name))
    except ValueError as err:
        raise ParameterError(f"methods.scores: {err}") from None


def _shares(name: str, value: Any, *, high: float) -> tuple[float, ...]:
    if not isinstance(value, (list, tuple)) or not value:
        raise ParameterError(f"{name} must be a non-empty list of shares in (0, {high:g}], got "
                             f"{value!r}")
    return tuple(sorted({check_number(name, k, low=1e-3, high=high) for k in value},
                        reverse=True))


@dataclasses.dataclass(frozen=True)
class PruningSettings:
    """Validated settings of the pruning notebook (see ``notebooks/params/*.yaml``).

    Attributes:
        kept_shares: Kept shares of the sweep, largest first (1.0 = dense).
        seeds: Seeds of the random baselines.
        eval_max_tokens: Held-out tokens per language (None: no token budget).
        eval_max_items: Held-out items per language, the same ids in every language (None:
            the whole evaluation split).
        eval_seq_len: Tokens per evaluation chunk (BOS included).
        cross_language_share: Kept share of the cross-language matrix.
        construction_compare: Whether to compare expert constructions.
        max_rise: Largest median perplexity rise counted as comparable quality.
        speed_models: Models timed.
        speed_shares: Kept shares timed, largest first (each below 1).
        speed_batch: Sequences per timed batch.
        speed_seq_len: Tokens per timed sequence.
        speed_repeats: Timed rounds at least (median).
        speed_max_repeats: Timed rounds at most: rounds go on until every measured speedup's
            95% bootstrap interval has a half-width below 3% of its value, or this many.
        methods_scores: Importance scores screened by the pruning-methods frontier
            (:mod:`babel.prune.methods`; empty: no frontier).
        methods_compensation: ``"none"`` and/or ``"mean"`` (compensation).
        methods_allocations: The screening allocation, then those tried for the best method.
        methods_screen_shares: Kept shares of the screen (and of choosing the best).
        methods_kept_shares: Every kept share of the frontier.
        methods_sensitivity_share: Share of one layer's experts removed to measure its
            sensitivity.
        methods_sensitivity_items: Profiling items per language in the sensitivity sample.
        methods_contrast: Try the language-contrast variant of the best score.
        methods_full_grid: Every combination at every kept share (slow: ``full`` params).
        methods_models: Other models whose frontier is measured beside the experiment's
            (same settings, same evaluation items).
    """

    kept_shares: tuple[float, ...] = (1.0, 0.9, 0.8)
    seeds: tuple[int, ...] = (0, 1, 2)
    eval_max_tokens: int | None = 300
    eval_max_items: int | None = None
    eval_seq_len: int = 128
    cross_language_share: float = 0.9
    construction_compare: bool = True
    max_rise: float = 0.1
    speed_models: tuple[str, ...] = ("gemma-3-270m",)
    speed_shares: tuple[float, ...] = (0.9, 0.8, 0.7)
    speed_batch: int = 2
    speed_seq_len: int = 128
    speed_repeats: int = 5
    speed_max_repeats: int = 30
    methods_scores: tuple[str, ...] = ()
    methods_compensation: tuple[str, ...] = ("none", "mean")
    methods_allocations: tuple[str, ...] = ("uniform", "global", "adaptive", "sensitivity")
    methods_screen_shares: tuple[float, ...] = (0.9,)
    methods_kept_shares: tuple[float, ...] = (0.95, 0.9, 0.8, 0.7)
    methods_sensitivity_share: float = 0.25
    methods_sensitivity_items: int = 2
    methods_contrast: bool = True
    methods_full_grid: bool = False
    methods_models: tuple[str, ...] = ()

    @classmethod
    def from_params(cls, **p: Any) -> PruningSettings:
        """Validate (one-line errors naming the parameter); missing ones take the defaults."""
        fields = {f.name for f in dataclasses.fields(cls)}
        d = {**dataclasses.asdict(cls()), **{k: v for k, v in p.items() if k in fields}}
        seeds = d["seeds"]
        if not isinstance(seeds, (list, tuple)) or not seeds:
            raise ParameterError(f"seeds must be a non-empty list of ints, got {seeds!r}")
        kept = _shares("kept_shares", d["kept_shares"], high=1.0)
        if not any(k < 1.0 for k in kept):
            raise ParameterError("kept_shares needs at least one share below 1.0 (something "
                                 "to prune)")
        models = d["speed_models"]
        models = [models] if isinstance(models, str) else list(models or [])
        m_scores = tuple(check_score_param(x) for x in (d["methods_scores"] or ()))
        m_comp = tuple(check_choice("methods.compensation", c, ["none", "mean"])
                       for c in d["methods_compensation"])
        m_alloc = tuple(check_choice("methods.allocations", a, ["global", "uniform", "adaptive",
                                                                "sensitivity"])
                        for a in d["methods_allocations"])
        if m_scores and not m_comp:
            raise ParameterError("methods.compensation must list 'none' and/or 'mean'")
        return cls(
            methods_scores=m_scores, methods_compensation=m_comp, methods_allocations=m_alloc,
            methods_screen_shares=_shares("methods.screen_shares", d["methods_screen_shares"],
                                          high=0.999),
            methods_kept_shares=_shares("methods.kept_shares", d["methods_kept_shares"],
                                        high=0.999),
            methods_sensitivity_share=check_number("methods.sensitivity_share",
                                                   d["methods_sensitivity_share"], low=1e-3,
                                                   high=0.999),
            methods_sensitivity_items=check_number("methods.sensitivity_items",
                                                   d["methods_sensitivity_items"], kind=int,
                                                   low=1),
            methods_contrast=check_choice("methods.contrast", d["methods_contrast"],
                                          [True, False]),
            methods_full_grid=check_choice("methods.full_grid", d["methods_full_grid"],
                                           [True, False]),
            methods_models=tuple(check_str("methods.models", m) for m in (
                [d["methods_models"]] if isinstance(d["methods_models"], str)
                else d["methods_models"] or ())),
            kept_shares=kept,
            seeds=tuple(check_number("seeds", s, kind=int, low=0) for s in seeds),
            eval_max_items=check_number("eval_max_items", d["eval_max_items"], kind=int,
                                        low=1, allow_none=True),
            eval_max_tokens=check_number("eval_max_tokens", d["eval_max_tokens"], kind=int,
                                         low=1, allow_none=True),
            eval_seq_len=check_number("eval_seq_len", d["eval_seq_len"], kind=int, low=2),
            cross_language_share=check_number("cross_language_share",
                                              d["cross_language_share"], low=1e-3, high=1.0),
            construction_compare=check_choice("construction_compare",
                                              d["construction_compare"], [True, False]),
            max_rise=check_number("max_rise", d["max_rise"], low=0.0),
            speed_models=tuple(check_str("speed_models", m) for m in models),
            speed_shares=_shares("speed_shares", d["speed_shares"], high=0.999),
            speed_batch=check_number("speed_batch", d["speed_batch"], kind=int, low=1),
            speed_seq_len=check_number("speed_seq_len", d["speed_seq_len"], kind=int, low=2),
            speed_repeats=check_number("speed_repeats", d["speed_repeats"], kind=int, low=1),
            speed_max_repeats=check_number("speed_max_repeats", d["speed_max_repeats"],
                                           kind=int, low=d["speed_repeats"]))

    @classmethod
    def from_namespace(cls, namespace: Mapping[str, Any]) -> PruningSettings:
        """Build from a notebook's variables (the settings it defines).

        Grouped notebook parameters are expanded: ``evaluation = {"max_tokens", "max_items",
        "seq_len", "max_rise"}``
        and ``speed = {"models", "shares", "batch", "seq_len", "repeats", "max_repeats"}``;
        ``construction_languages = []`` turns the construction comparison off.
        """
        flat = {f.name: namespace[f.name] for f in dataclasses.fields(cls)
                if f.name in namespace}
        for group, allowed in (("evaluation", ("max_tokens", "max_items", "seq_len", "max_rise")),
                               ("speed", ("models", "shares", "batch", "seq_len", "repeats",
                                          "max_repeats")),
                               ("methods", ("scores", "compensation", "allocations",
                                            "screen_shares", "kept_shares", "sensitivity_share",
                                            "sensitivity_items", "contrast", "full_grid",
                                            "models"))):
            value = namespace.get(group)
            if value is None:
                continue
            if not isinstance(value, Mapping) or set(value) - set(allowed):
                raise ParameterError(f"{group} must be a mapping with keys {list(allowed)}, got "
                                     f"{value!r}")
            prefix = {"evaluation": "eval"}.get(group, group)
            flat |= {k if k == "max_rise" else f"{prefix}_{k}": v for k, v in value.items()}
        if "construction_languages" in namespace and "construction_compare" not in namespace:
            flat["construction_compare"] = bool(namespace["construction_languages"])
        return cls.from_params(**flat)

    @property
    def pruned_shares(self) -> list[float]:
        """The kept shares below 1, largest first."""
        return [k for k in self.kept_shares if k < 1.0]

