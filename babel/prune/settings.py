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
        return cls(
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
                                          "max_repeats"))):
            value = namespace.get(group)
            if value is None:
                continue
            if not isinstance(value, Mapping) or set(value) - set(allowed):
                raise ParameterError(f"{group} must be a mapping with keys {list(allowed)}, got "
                                     f"{value!r}")
            prefix = "eval" if group == "evaluation" else group
            flat |= {k if k == "max_rise" else f"{prefix}_{k}": v for k, v in value.items()}
        if "construction_languages" in namespace and "construction_compare" not in namespace:
            flat["construction_compare"] = bool(namespace["construction_languages"])
        return cls.from_params(**flat)

    @property
    def pruned_shares(self) -> list[float]:
        """The kept shares below 1, largest first."""
        return [k for k in self.kept_shares if k < 1.0]

