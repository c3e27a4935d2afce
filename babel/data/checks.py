"""Checks of a user's own text before any model work: one-line errors that name the file and the fix.

Errors (:class:`UserTextError`, nothing is profiled or cached):

- invalid UTF-8: the file, the line and the byte offset;
- an empty file, or one shorter than ``min_tokens`` tokens (default 200) of the model's
  tokenizer (counted when a tokenizer is given: at the start of profiling, before any forward
  pass);
- more than 10% of the letters outside the language's script (from the language table, or
  detected from the text for a code in no table): the share and the detected script. An
  explicit flag overrides (``allow_mixed_script=True``, ``--allow-mixed-script`` on the command
  line, ``BABEL_ALLOW_MIXED_SCRIPT=1`` for notebooks).

Warnings (:class:`UserTextWarning`): py3langid reads the text as another language (only where
py3langid knows the language), and the share of duplicated lines.

Scripts are read with the Unicode Script property (the ``regex`` module's ``\\p{Script=…}``);
ISO 15924 codes that are not Unicode scripts are unions: ``Hans``/``Hant`` = Han,
``Jpan`` = Han + Hiragana + Katakana, ``Kore`` = Hangul + Han.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import warnings
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import regex

from babel.data.chunking import tokens_per_item
from babel.data.corpus import _load_files, read_utf8_lines, user_file
from babel.data.languages import (
    Language,
    language_from_text,
    load_languages,
    register_language,
)
from babel.data.validation import identify

MIN_TOKENS = 200
MAX_OTHER_SCRIPT = 0.10
ALLOW_MIXED_ENV = "BABEL_ALLOW_MIXED_SCRIPT"

#: Unicode scripts checked when detecting a text's script (ISO 15924 codes).
UNICODE_SCRIPTS = (
    "Latn", "Cyrl", "Grek", "Arab", "Hebr", "Deva", "Beng", "Guru", "Gujr", "Orya", "Taml",
    "Telu", "Knda", "Mlym", "Sinh", "Thai", "Laoo", "Tibt", "Mymr", "Khmr", "Geor", "Armn",
    "Ethi", "Hani", "Hira", "Kana", "Hang", "Thaa", "Syrc", "Tfng", "Cher", "Mong",
)
#: Table scripts that are unions of Unicode scripts.
SCRIPT_UNIONS = {"Hans": ("Hani",), "Hant": ("Hani",), "Jpan": ("Hani", "Hira", "Kana"),
                 "Kore": ("Hang", "Hani")}


class UserTextError(ValueError):
    """A user's text cannot be profiled; the message is one line naming the file and the fix."""


class UserTextWarning(UserWarning):
    """A user's text looks suspicious (language ID, duplicates) but can be profiled."""


@functools.lru_cache(maxsize=64)
def _script_pattern(script: str) -> Any:
    return regex.compile(rf"\p{{Script={script}}}")


def script_counts(text: str) -> Counter:
    """Letters of ``text`` per Unicode script (ISO 15924 code; ``Zzzz`` for any other)."""
    counts: Counter = Counter()
    for ch in text:
        if not ch.isalpha():
            continue
        for script in UNICODE_SCRIPTS:
            if _script_pattern(script).match(ch):
                counts[script] += 1
                break
        else:
            counts["Zzzz"] += 1
    return counts


def detect_script(counts: Counter) -> str:
    """The table script of letter counts: the dominant Unicode script (Han with kana: Jpan;
    Hangul: Kore; Han alone: Hans)."""
    if not counts:
        return "Zzzz"
    top = counts.most_common(1)[0][0]
    if top in ("Hani", "Hira", "Kana"):
        return "Jpan" if counts["Hira"] + counts["Kana"] > 0 else "Hans"
    return "Kore" if top == "Hang" else top


def other_script_share(counts: Counter, script: str) -> float:
    """Share of letters outside ``script`` (a table script; unions count as one)."""
    total = sum(counts.values())
    inside = sum(counts[s] for s in SCRIPT_UNIONS.get(script, (script,)))
    return 1.0 - inside / total if total else 0.0


@dataclasses.dataclass(frozen=True)
class TextReport:
    """What the checks found in one language's file.

    Attributes:
        lang: Language code.
        file: The file.
        items: Non-blank items.
        tokens: Tokens with the model's tokenizer (None: not counted).
        script: The language's script (table, or detected for a code in no table).
        detected_script: The dominant script of the text.
        other_script: Share of letters outside ``script``.
        duplicate_share: Share of items whose text repeats an earlier item.
        warnings: The warnings issued (one line each).
    """

    lang: str
    file: Path
    items: int
    tokens: int | None
    script: str
    detected_script: str
    other_script: float
    duplicate_share: float
    warnings: tuple[str, ...] = ()


def _allow_mixed(flag: bool | None) -> bool:
    if flag is not None:
        return flag
    return os.environ.get(ALLOW_MIXED_ENV, "").strip().lower() in ("1", "true", "yes")


def _language(lang: str, script: str) -> Language:
    known = {x.code: x for x in load_languages()}
    if lang in known:
        return known[lang]
    return register_language(language_from_text(lang, script))


def _langid_warning(file: Path, language: Language, texts: Sequence[str]) -> str | None:
    sample = " ".join(texts)[:5000]
    if not language.langid_code or len(sample) < 100:  # too short to identify reliably
        return None
    label, prob = identify([sample])[0]
    if label == language.langid_code:
        return None
    return (f"{file}: py3langid reads this text as {label!r} (p={prob:.2f}), not "
            f"{language.langid_code!r} ({language.code}); check the file's name or content")


def check_user_text(lang: str, path: str | Path, *, tokenizer: Any = None,
                    min_tokens: int = MIN_TOKENS, allow_mixed_script: bool | None = None,
                    langid: bool = True) -> TextReport:
    """Check one language's file of a user's corpus; raise a one-line error when unusable.

    Args:
        lang: Language code (the file's name without extension).
        path: The file, or the folder holding ``<lang>.txt`` / ``<lang>.jsonl``.
        tokenizer: The model's tokenizer: counts tokens against ``min_tokens`` (None: only an
            empty file is refused).
        min_tokens: Fewest tokens a file must hold.
        allow_mixed_script: Accept more than 10% of letters outside the script (None: the
            ``BABEL_ALLOW_MIXED_SCRIPT`` environment variable).
        langid: Run py3langid (a warning when it disagrees).

    Returns:
        The report; a code in no table is registered with its detected script.

    Raises:
        UserTextError: Invalid UTF-8, an empty or too short file, or mixed scripts.
    """
    try:
        file = user_file(lang, path)
        read_utf8_lines(file)
        items = _load_files(lang, file)
    except (UnicodeError, FileNotFoundError, ValueError) as err:
        raise UserTextError(str(err).splitlines()[0]) from None
    texts = [it.text for it in items]
    if not texts:
        raise UserTextError(f"{file}: no text (0 non-blank lines); write one item a line, at "
                            f"least {min_tokens} tokens in all")
    counts = script_counts("".join(texts))
    detected = detect_script(counts)
    table = {x.code: x for x in load_languages()}
    script = table[lang].script if lang in table else detected
    share = other_script_share(counts, script)
    if share > MAX_OTHER_SCRIPT and not _allow_mixed(allow_mixed_script):
        raise UserTextError(
            f"{file}: {share:.0%} of the letters are not {script} (the script of {lang}); the "
            f"text looks like {detected}; fix the file or its name, or accept it with "
            f"--allow-mixed-script ({ALLOW_MIXED_ENV}=1)")
    n_tokens = None
    if tokenizer is not None:
        n_tokens = int(tokens_per_item(items, tokenizer).sum())
        if n_tokens < min_tokens:
            raise UserTextError(
                f"{file}: only {n_tokens} tokens (at least {min_tokens} needed); add text, one "
                "item a line")
    language = _language(lang, script)
    notes = []
    dup = 1.0 - len(set(texts)) / len(texts)
    if dup > 0:
        notes.append(f"{file}: {dup:.0%} of the lines repeat an earlier line")
    if langid and (note := _langid_warning(file, language, texts)):
        notes.append(note)
    for note in notes:
        warnings.warn(note, UserTextWarning, stacklevel=2)
    return TextReport(lang=lang, file=file, items=len(texts), tokens=n_tokens, script=script,
                      detected_script=detected, other_script=share, duplicate_share=dup,
                      warnings=tuple(notes))


def check_user_corpus(langs: Sequence[str], path: str | Path, **kw: Any) -> dict[str, TextReport]:
    """:func:`check_user_text` for every language (stops at the first unusable file)."""
    return {lang: check_user_text(lang, path, **kw) for lang in langs}
