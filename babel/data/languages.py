"""Language facts: the one table ``data/languages.csv`` read into typed records.

Columns of the table (one row per language):

- ``code``: BCP-47 tag used in corpus file names (``fr``, ``sr-Cyrl``, ``zh-Hans``).
- ``iso639_3``: ISO 639-3 code equivalent to the language's ISO 639-1 code (the macrolanguage
  where one exists: ``ara``, ``fas``, ``zho``, ``swa``); the individual language actually written
  is named by ``flores_code`` and ``uriel_code`` (``arb``, ``pes``, ``cmn``, ``swh``).
- ``name``, ``family``, ``branch`` (the genus), ``script`` (ISO 15924: Latn Cyrl Arab Hebr Deva
  Beng Hans Jpan Kore).
- ``flores_code``: FLORES+ config (``iso639_3_Script``). FLORES+ has no Latin Serbian, so
  ``sr-Latn`` names ``srp_Cyrl`` and the loader transliterates it, as the built-in ``sr-Latn``
  corpus is derived from ``sr-Cyrl``.
- ``wiki_code``: Wikipedia edition (``sr`` for both Serbian scripts).
- ``langid_code``: label py3langid uses for the language (empty when unsupported).
- ``uriel_code``: ISO 639-3 code lang2vec/URIEL knows (empty when unknown).

Your own languages: a CSV with (some of) these columns is merged over the built-in table (its
rows replace built-in rows of the same code, new codes are added): set the environment variable
``BABEL_LANGUAGES_CSV`` (notebooks, ``make``) or pass ``--languages-csv`` (the command line). Only
``code`` and ``script`` are required there; ``family`` and ``branch`` may be empty (statistics that
need them leave such a language out). A code in neither table still works with a text corpus:
:func:`language_from_text` detects its script and :func:`register_language` adds it for the run.
"""

from __future__ import annotations

import csv
import dataclasses
import difflib
import functools
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from babel.core import paths
from babel.core.params import ParameterError, raw_hint

SCRIPTS = ("Latn", "Cyrl", "Arab", "Hebr", "Deva", "Beng", "Hans", "Jpan", "Kore")
_FLORES_RE = re.compile(r"^[a-z]{3}_[A-Z][a-z]{3}$")

_ISO3_RE = re.compile(r"^[a-z]{3}$")
_SCRIPT_RE = re.compile(r"^[A-Z][a-z]{3}$")
USER_CSV_ENV = "BABEL_LANGUAGES_CSV"
_REGISTERED: dict[str, Language] = {}


@dataclasses.dataclass(frozen=True)
class Language:
    """One row of ``data/languages.csv``."""

    code: str
    iso639_3: str
    name: str
    family: str
    branch: str
    script: str
    flores_code: str
    wiki_code: str
    langid_code: str | None
    uriel_code: str | None

    def __post_init__(self) -> None:
        if not self.code:
            raise ValueError("Language.code is empty; fill the code column of data/languages.csv")
        if not _SCRIPT_RE.match(self.script):
            raise ValueError(
                f"language {self.code!r} has script {self.script!r}; use an ISO 15924 code "
                f"({', '.join(SCRIPTS)}, ...)"
            )
        if self.iso639_3 and not _ISO3_RE.match(self.iso639_3):
            raise ValueError(
                f"language {self.code!r} has iso639_3 {self.iso639_3!r}; use 3 lowercase letters"
            )
        if self.flores_code and not _FLORES_RE.match(self.flores_code):
            raise ValueError(
                f"language {self.code!r} has flores_code {self.flores_code!r}; "
                "use the FLORES+ form iso639_3_Script, e.g. fra_Latn"
            )
        if not self.name:
            raise ValueError(f"language {self.code!r} has an empty name; fill it in the table")

    @property
    def flores_script(self) -> str:
        """Script of the FLORES+ config (differs from ``script`` only for ``sr-Latn``)."""
        return self.flores_code.split("_", 1)[1] if self.flores_code else self.script

    @property
    def has_genealogy(self) -> bool:
        """True when the table gives both family and branch (family statistics need them)."""
        return bool(self.family and self.branch)


_REQUIRED_BUILTIN = ("name", "family", "branch", "wiki_code", "iso639_3", "flores_code")


@functools.lru_cache(maxsize=8)
def _read_table(path: Path, user: bool = False) -> tuple[Language, ...]:
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    fields = [f.name for f in dataclasses.fields(Language)]
    languages = []
    for row in rows:
        required = ("code", "script") if user else fields
        missing = [f for f in required if f not in row]
        if missing:
            raise ValueError(f"{path} lacks column(s) {missing}; add them to the header row")
        values = {f: (row.get(f) or "").strip() for f in fields}
        if not user:
            for field in _REQUIRED_BUILTIN:
                if not values[field]:
                    raise ValueError(f"language {values['code']!r} has an empty {field}; fill "
                                     f"it in {path}")
        values["name"] = values["name"] or values["code"]
        for optional in ("langid_code", "uriel_code"):
            values[optional] = values[optional] or None  # type: ignore[assignment]
        try:
            languages.append(Language(**values))  # type: ignore[arg-type]
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None
    codes = [lang.code for lang in languages]
    duplicates = sorted({c for c in codes if codes.count(c) > 1})
    if duplicates:
        raise ValueError(f"{path} lists {duplicates} more than once; keep one row per language")
    return tuple(languages)


def user_path(value: str | Path) -> Path:
    """A path the user gave: as is when it exists, else relative to the project root (notebooks
    run in ``notebooks/``, so ``./my_texts`` typed at the root means ``<root>/my_texts``).
    Absolute."""
    path = Path(value).expanduser()
    if not path.exists() and not path.is_absolute() and (paths.PROJ_ROOT / path).exists():
        path = paths.PROJ_ROOT / path
    return path.resolve()


def user_languages_csv() -> Path | None:
    """The user's language table (``BABEL_LANGUAGES_CSV``), or None."""
    value = os.environ.get(USER_CSV_ENV, "").strip()
    if not value:
        return None
    path = user_path(value)
    if not path.is_file():
        raise FileNotFoundError(f"{USER_CSV_ENV}={value}: no such file; point it at a CSV with "
                                "the columns of data/languages.csv (code and script at least)")
    return path


def merge_tables(base: Sequence[Language], extra: Sequence[Language]) -> list[Language]:
    """``base`` with ``extra`` merged over it: same code replaced in place, new codes appended."""
    by_code = {lang.code: lang for lang in extra}
    merged = [by_code.pop(lang.code, lang) for lang in base]
    return merged + list(by_code.values())


def load_languages(path: Path | None = None) -> list[Language]:
    """All languages of the table, in table order (read once, then cached).

    The built-in table with the user's table (``BABEL_LANGUAGES_CSV``) merged over it, then the
    languages registered from their text (:func:`register_language`).

    Args:
        path: Another table with the same columns; default ``data/languages.csv``.

    Returns:
        One ``Language`` per row.
    """
    if path is not None:
        return list(_read_table(Path(path)))
    languages = list(_read_table(paths.LANGUAGES_CSV))
    user = user_languages_csv()
    if user is not None:
        languages = merge_tables(languages, _read_table(user, True))
    return merge_tables(languages, list(_REGISTERED.values()))


def read_user_languages(path: Path) -> list[Language]:
    """The rows of a user's language table (``code`` and ``script`` required)."""
    return list(_read_table(Path(path), True))


def register_language(language: Language) -> Language:
    """Add a language that is in no table (detected from its text) for this process."""
    known = {lang.code for lang in load_languages()} - set(_REGISTERED)
    if language.code not in known:
        _REGISTERED[language.code] = language
    return language


def language_from_text(code: str, script: str) -> Language:
    """A table row for a code in no table: its text's script, no family or branch."""
    iso3 = code.split("-")[0].lower()
    return Language(code=code, iso639_3=iso3 if _ISO3_RE.match(iso3) else "", name=code,
                    family="", branch="", script=script, flores_code="", wiki_code="",
                    langid_code=None, uriel_code=None)


def language_codes() -> list[str]:
    """Codes of every language in the table, in table order."""
    return [lang.code for lang in load_languages()]


def _check_code_type(code: object) -> str:
    if not isinstance(code, str):
        raise TypeError(
            f"language code {code!r} is a {type(code).__name__}, not a str; pass it as a string "
            "(with papermill use -r, e.g. -r lang nan, so the value is not parsed)"
        )
    return code


def _suggestion(code: str, languages: Sequence[Language]) -> str | None:
    """The code a mistyped ``code`` most likely meant (case, ISO 639-3, name, or spelling)."""
    aliases: dict[str, str] = {}
    for lang in languages:
        for alias in (lang.code, lang.iso639_3, lang.flores_code, lang.name, lang.wiki_code):
            aliases.setdefault(alias.casefold(), lang.code)
        aliases.setdefault(lang.name.split(" (")[0].casefold(), lang.code)
    if code.casefold() in aliases:
        return aliases[code.casefold()]
    close = difflib.get_close_matches(code.casefold(), list(aliases), n=1, cutoff=0.5)
    return aliases[close[0]] if close else None


def get_language(code: str) -> Language:
    """The table row of one language.

    Args:
        code: Language code as in the corpus file names (``fr``, ``sr-Latn``).

    Raises:
        TypeError: ``code`` is not a str (papermill turns ``nan`` into a float).
        ValueError: ``code`` is not in the table; the message suggests the closest code.
    """
    code = _check_code_type(code)
    languages = load_languages()
    for lang in languages:
        if lang.code == code:
            return lang
    guess = _suggestion(code, languages)
    hint = f"did you mean {guess!r}? " if guess else ""
    raise ValueError(
        f"unknown language code {code!r}; {hint}"
        f"use one of {', '.join(lang.code for lang in languages)} (data/languages.csv)"
    )


def _as_set(name: str, value: str | Iterable[str], allowed: Iterable[str]) -> set[str]:
    values = {value} if isinstance(value, str) else set(value)
    allowed = sorted(set(allowed))
    unknown = sorted(values - set(allowed))
    if unknown:
        raise ValueError(f"unknown {name} {unknown}; use one of {', '.join(allowed)}")
    return values


def select_languages(
    codes: str | Sequence[str] | None = None,
    *,
    family: str | Iterable[str] | None = None,
    script: str | Iterable[str] | None = None,
    branch: str | Iterable[str] | None = None,
) -> list[Language]:
    """Languages by code and/or by family, script or branch.

    Args:
        codes: ``None`` or ``"all"`` for every language; a sequence of codes; or one string of
            codes separated by commas or spaces (``"en,fr"``), as notebook parameters pass them.
        family: Keep only these families (``"Indo-European"``).
        script: Keep only these ISO 15924 scripts (``"Latn"``).
        branch: Keep only these branches (``"Romance"``).

    Returns:
        The matching languages, in the order of ``codes`` when given, else table order.
    """
    languages = load_languages()
    if codes is None or (isinstance(codes, str) and codes.strip().lower() == "all"):
        selected = list(languages)
    else:
        if isinstance(codes, str):
            codes = [c for c in re.split(r"[,\s]+", codes) if c]
        selected = [get_language(c) for c in codes]
    if family is not None:
        keep = _as_set("family", family, (lang.family for lang in languages))
        selected = [lang for lang in selected if lang.family in keep]
    if script is not None:
        keep = _as_set("script", script, (lang.script for lang in languages))
        selected = [lang for lang in selected if lang.script in keep]
    if branch is not None:
        keep = _as_set("branch", branch, (lang.branch for lang in languages))
        selected = [lang for lang in selected if lang.branch in keep]
    return selected


def available_languages(corpus_dir: Path | None = None) -> list[str]:
    """Codes (table order) whose corpus file exists.

    Args:
        corpus_dir: Another corpus folder; default the built-in ``data/corpus``.
    """
    return [
        lang.code
        for lang in load_languages()
        if paths.corpus_file(lang.code, folder=corpus_dir).is_file()
    ]


def check_languages(value: Any, *, name: str = "languages",
                    corpus_codes: Sequence[str] | None = None) -> list[str]:
    """A list of language codes (``"all"`` = every language with a corpus file).

    Args:
        value: The parameter (a list, a comma list or ``"all"``).
        name: The parameter's name, for errors.
        corpus_codes: The codes of a user's corpus folder: ``"all"`` means these, and they are
            accepted even when no table lists them (their script comes from their text).
    """

    if value == "all":
        return list(corpus_codes) if corpus_codes is not None else available_languages()
    if isinstance(value, str):
        value = [c.strip() for c in value.split(",") if c.strip()]  # "en,fr" is a list too
    elif isinstance(value, float):
        value = [value]  # papermill's -p turned a code (nan) into a float: the hint below
    if not isinstance(value, (list, tuple)) or not value:
        raise ParameterError(f"{name} must be a non-empty list of language codes or 'all', "
                             f"got {value!r}")
    out = []
    for code in value:
        if not isinstance(code, str):
            raise ParameterError(
                f"{name} contains {code!r} ({type(code).__name__}), not a string: "
                f"{raw_hint(name)}")
        if corpus_codes is not None and code in corpus_codes:
            out.append(code)
            continue
        try:
            get_language(code)  # raises with the closest code
        except ValueError as err:
            raise ParameterError(f"{name}: {err}") from None
        out.append(code)
    return out
