"""One experiment config, built once from a notebook's parameters and shared by every stage.

Every notebook declares the same common parameters (:data:`COMMON_PARAMETERS`) in its
``parameters`` cell and builds the experiment with one call::

    exp = ExperimentConfig.from_namespace(globals())

so an override given to ``make reproduce PARAMS=…`` or ``babel run … -p NAME VALUE`` reaches
every notebook alike, and notebooks 03 and 04 read exactly the profiles 02 wrote (the cache key
is a function of this config). Validation happens here, before any model work, with one-line
errors that name the parameter and the fix.

Settings of a later notebook that name languages (the pruning languages, the causal-test
language) follow the experiment's languages by one stated rule, :meth:`ExperimentConfig.subset`:
keep the requested codes that the experiment has; when none is left, take the experiment's
first languages; say so in one line.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from torch import nn

from babel.construct.partition import Partition, get_partition
from babel.core.artifacts import config_dict
from babel.core.config import (
    METHODS,
    PROJECTIONS,
    RULES,
    ExpertClassSpec,
    PartitionConfig,
    ProfileConfig,
    SelectionRule,
)
from babel.core.params import (
    ParameterError,
    check_choice,
    check_number,
    check_str,
    raw_hint,
)
from babel.data.checks import MIN_TOKENS, check_user_corpus
from babel.data.corpus import corpus_languages, parse_corpus
from babel.data.languages import (
    USER_CSV_ENV,
    check_languages,
    read_user_languages,
    user_path,
)
from babel.models.loading import load_model
from babel.profile.cache import frequency_tensor, profile_languages
from babel.profile.classes import ExpertClasses, classify
from babel.profile.profiler import Profile

#: The parameters every notebook declares, with the defaults of ``notebooks/params/default.yaml``.
COMMON_PARAMETERS: dict[str, Any] = {
    "model": "gemma-3-270m",
    "languages": "all",
    "corpus": "builtin",
    "corpus_path": None,
    "languages_csv": None,
    "n_experts": 256,
    "method": "kmeans",
    "projection": "gate",
    "seed": 0,
    "rule": "cross_layer",
    "share": 0.2,
    "z": 1.0,
    "max_tokens": None,
    "max_items": 100,
    "seq_len": 128,
    "batch_size": 8,
    "high_factor": 1.0,
    "low_factor": 0.25,
    "specific_z": 3.0,
}


def _as_list(value: Any) -> Any:
    """``"en,fr"`` → ``["en", "fr"]`` (comma lists are accepted wherever a list is)."""
    if isinstance(value, str) and "," in value:
        return [v.strip() for v in value.split(",") if v.strip()]
    return value


def _corpus(value: Any, folder: Any = None) -> tuple[str, str | None, list[str] | None]:
    """``(source, folder, codes of the folder)`` of the ``corpus`` and ``corpus_path`` parameters.

    ``corpus`` is a source name (``builtin``, ``files``, ``flores_plus``, ``wikipedia``) or,
    as a shorthand, the folder itself (a value with ``/`` or naming a folder). ``corpus_path``
    is the folder of the user's ``<code>.txt`` / ``<code>.jsonl`` files; giving it means
    ``corpus="files"`` (with the default ``corpus="builtin"`` too, so ``-p corpus_path DIR``
    alone is enough).
    """
    check_str("corpus", value)
    if folder is not None:
        check_str("corpus_path", folder)
        if value not in ("files", "builtin"):
            raise ParameterError(f"corpus={value!r} with corpus_path={folder!r}: a folder is "
                                 "read as corpus='files'; drop one of the two")
        if not user_path(folder).is_dir():
            raise ParameterError(f"corpus_path={folder!r}: no such folder; give a folder of "
                                 "<code>.txt / <code>.jsonl files")
        value = str(user_path(folder))
    try:
        source, path = parse_corpus(value)
    except (ValueError, FileNotFoundError) as err:
        raise ParameterError(str(err)) from None
    if source == "files" and path is None:
        raise ParameterError("corpus='files' needs the folder: add -p corpus_path DIR (a folder "
                             "of <code>.txt / <code>.jsonl files)")
    codes = corpus_languages(path) if path is not None else None
    if codes is not None and not codes:
        raise ParameterError(f"corpus folder {path} holds no <code>.txt or <code>.jsonl file; "
                             "name each language's file by its code, e.g. fr.txt")
    return source, path, codes


def _languages_csv(value: Any) -> str | None:
    """The user's language table (``languages_csv``), checked and made this process's table.

    The table is process-wide (:data:`babel.data.languages.USER_CSV_ENV`), so every later
    stage of the notebook (family labels, scripts, the checks of the text) sees the same rows.
    """
    if value is None:
        return None
    check_str("languages_csv", value)
    path = user_path(value)
    if not path.is_file():
        raise ParameterError(f"languages_csv={value!r}: no such file; give a CSV with the "
                             "columns of data/languages.csv (code and script at least)")
    try:
        read_user_languages(path)
    except (ValueError, KeyError) as err:
        raise ParameterError(f"languages_csv={value!r}: {err}") from None
    os.environ[USER_CSV_ENV] = str(path)
    return str(path)


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """Everything that decides a profile: model, languages, partition, rule, corpus, classes.

    Attributes:
        model: Embedded model name, Hugging Face id or local folder.
        languages: Language codes, in order.
        partition: How experts are built.
        profile: The selection rule, corpus source and split, chunking and token budget.
        classes: The one definition of co-activated / specific / rare experts.
        languages_csv: The user's language table merged over ``data/languages.csv``, or None.
    """

    model: str = "gemma-3-270m"
    languages: tuple[str, ...] = ("en", "fr")
    partition: PartitionConfig = dataclasses.field(default_factory=PartitionConfig)
    profile: ProfileConfig = dataclasses.field(default_factory=ProfileConfig)
    classes: ExpertClassSpec = dataclasses.field(default_factory=ExpertClassSpec)
    languages_csv: str | None = None

    def __post_init__(self) -> None:
        check_str("model", self.model)
        if not self.languages or len(set(self.languages)) != len(self.languages):
            raise ParameterError(f"languages must be distinct codes, got {list(self.languages)}")

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_params(cls, **params: Any) -> ExperimentConfig:
        """Validate the common parameters (missing ones take their defaults) and build."""
        unknown = sorted(set(params) - set(COMMON_PARAMETERS))
        if unknown:
            raise ParameterError(f"unknown experiment parameter(s) {unknown}; known: "
                                 f"{sorted(COMMON_PARAMETERS)}")
        p = {**COMMON_PARAMETERS, **params}
        rule = SelectionRule(
            kind=check_choice("rule", p["rule"], RULES),
            share=check_number("share", p["share"], low=1e-6, high=1.0),
            z=check_number("z", p["z"]))
        partition = PartitionConfig(
            n_experts=check_number("n_experts", p["n_experts"], kind=int, low=1),
            method=check_choice("method", p["method"], METHODS),
            projection=check_choice("projection", p["projection"], PROJECTIONS),
            seed=check_number("seed", p["seed"], kind=int, low=0))
        languages_csv = _languages_csv(p["languages_csv"])
        source, path, corpus_codes = _corpus(p["corpus"], p["corpus_path"])
        profile = ProfileConfig(
            rule=rule,
            source=source,
            path=path,
            seq_len=check_number("seq_len", p["seq_len"], kind=int, low=2),
            batch_size=check_number("batch_size", p["batch_size"], kind=int, low=1),
            max_tokens=check_number("max_tokens", p["max_tokens"], kind=int, low=1,
                                    allow_none=True),
            max_items=check_number("max_items", p["max_items"], kind=int, low=1,
                                   allow_none=True))
        try:
            classes = ExpertClassSpec(
                high_factor=check_number("high_factor", p["high_factor"], low=0.0),
                low_factor=check_number("low_factor", p["low_factor"], low=0.0),
                specific_z=check_number("specific_z", p["specific_z"]))
        except ValueError as err:
            raise ParameterError(str(err)) from None
        languages = tuple(check_languages(_as_list(p["languages"]), corpus_codes=corpus_codes))
        if path is not None:  # the user's text, checked before any model work
            check_user_corpus(languages, path)
        return cls(model=check_str("model", p["model"]), languages=languages,
                   partition=partition, profile=profile, classes=classes,
                   languages_csv=languages_csv)

    @classmethod
    def from_namespace(cls, namespace: Mapping[str, Any]) -> ExperimentConfig:
        """Build from a notebook's variables: the common parameters it defines."""
        return cls.from_params(**{k: namespace[k] for k in COMMON_PARAMETERS if k in namespace})

    def replace(self, **changes: Any) -> ExperimentConfig:
        """A copy with some fields changed (``model=…``, ``languages=…``, ``partition=…``)."""
        if "languages" in changes:
            changes["languages"] = tuple(changes["languages"])
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------ derived settings
    @property
    def rule(self) -> SelectionRule:
        return self.profile.rule

    @property
    def share(self) -> float:
        return float(self.profile.rule.share)

    @property
    def thresholds(self) -> tuple[float, float]:
        """``(high, low)`` frequencies of the expert classes."""
        return self.classes.thresholds(self.share)

    def subset(self, wanted: str | Iterable[str] | None, *, name: str,
               fallback: int = 1) -> list[str]:
        """Languages for a setting that names some: the rule every notebook follows.

        Keep the codes of ``wanted`` that this experiment has (in ``wanted``'s order); when none
        is left, take the experiment's first ``fallback`` languages. A one-line note says what
        was changed. ``wanted=None`` (or ``"all"``) means every experiment language.

        Args:
            wanted: Requested codes (a list, a comma list, one code, ``"all"`` or None).
            name: The parameter's name, for the note.
            fallback: How many of the experiment's languages to take when none is present.
        """
        if wanted is None or wanted == "all":
            return list(self.languages)
        wanted = _as_list(wanted)
        if isinstance(wanted, str):
            wanted = [wanted]
        if not isinstance(wanted, (list, tuple)) or not all(isinstance(w, str) for w in wanted):
            raise ParameterError(f"{name} must be language codes (a list, a comma list or "
                                 f"'all'), got {wanted!r}; {raw_hint(name)}")
        wanted = list(wanted)
        kept = [w for w in wanted if w in self.languages]
        if kept == wanted:
            return kept
        if not kept:
            kept = list(self.languages[:max(1, fallback)])
        missing = [w for w in wanted if w not in self.languages]
        print(f"note: {name}: {missing} not among this run's languages; using {kept}")
        return kept

    @property
    def budget(self) -> str:
        """The profiles' budget in words: the same items everywhere, or a token budget."""
        if self.profile.max_tokens is not None:
            return f"{self.profile.max_tokens} tokens per language (different items)"
        items = "all" if self.profile.max_items is None else f"the first {self.profile.max_items}"
        return f"{items} {self.profile.split} items in every language"

    def other_budget(self, max_tokens: int) -> ExperimentConfig:
        """The budget ablation: when this run is content-parallel, ``max_tokens`` tokens of
        each language's split (no item cap: exactly the earlier token-budget method); else
        the same items in every language (the whole split)."""
        if self.profile.max_tokens is not None:
            budget = dataclasses.replace(self.profile, max_tokens=None, max_items=None)
        else:
            budget = dataclasses.replace(self.profile, max_tokens=max_tokens, max_items=None)
        return self.replace(profile=budget)

    def to_dict(self) -> dict[str, Any]:
        """The config as plain JSON (recorded beside every result)."""
        return config_dict(self)

    # ------------------------------------------------------------------ one call per stage
    def load_model(self, name: str | None = None, *, min_tokens: int = MIN_TOKENS,
                   **kw: Any) -> tuple[nn.Module, Any]:
        """``(model, tokenizer)`` of this experiment (or of another model ``name``).

        With a user's corpus, its files are checked against ``min_tokens`` with this tokenizer
        here, before the partition and the profiles are computed or cached.
        """
        model, tokenizer = load_model(name or self.model, **kw)
        if self.profile.path is not None:
            check_user_corpus(self.languages, self.profile.path, tokenizer=tokenizer,
                              langid=False, min_tokens=min_tokens)
        return model, tokenizer

    def build_partition(self, model: nn.Module, *, model_name: str | None = None) -> Partition:
        """The cached expert partition of ``model`` under this experiment's settings."""
        return get_partition(model, self.partition, model_name=model_name)

    def profiles(self, model: nn.Module, tokenizer: Any, partition: Partition, *,
                 languages: Sequence[str] | None = None, model_name: str | None = None,
                 **kw: Any) -> dict[str, Profile]:
        """Cached per-language profiles (computed only where missing)."""
        return profile_languages(model, tokenizer, partition, languages or self.languages,
                                 self.profile, model_name=model_name, **kw)

    def classify(self, freq: np.ndarray) -> ExpertClasses:
        """Co-activated, specific and rare experts of ``[n_lang, L, E]`` frequencies."""
        return classify(freq, self.classes, self.share)

    def frequencies(self, profiles: Mapping[str, Profile]) -> tuple[list[str], np.ndarray]:
        """Languages and stacked ``[n_lang, L, E]`` frequencies.

        Content-parallel profiles (no token budget) must cover the same items in every
        language, or this raises; under the token-budget ablation they may differ. A user's
        folder of files is not assumed parallel (its item ids are line numbers): not checked.
        """
        same = self.profile.content_parallel and self.profile.source != "files"
        return frequency_tensor(dict(profiles), same_items=same)
