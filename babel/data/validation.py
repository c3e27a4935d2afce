"""Checks of the built-in parallel corpus: alignment, script, length and language identity.

One row per language (``validate_corpus``); the CLI ``python -m babel.data.validation``
prints the table and exits 1 if any check fails. Checks:

- ``ids``: the same ids, in the same order, as English.
- ``clean``: no blank line, empty text, duplicate id or duplicate text.
- ``not_english``: no item left in English: none identical to its English text, and none that
  py3langid labels ``en`` with probability >= ``ENGLISH_PROB`` (non-English languages only).
- ``script``: >= ``SCRIPT_SHARE`` of letters in the declared ISO 15924 script (Hans = Han;
  Jpan = Han + Hiragana + Katakana; Kore = Hangul + Han).
- ``length``: the median per-item character ratio to English lies in ``LENGTH_BANDS`` for the
  script: logographic scripts are much shorter than English (about 0.3 for Chinese, 0.4 for
  Japanese, 0.5 for Korean); alphabets, abjads and abugidas stay near 1. The bands are wide on
  purpose: they catch truncated, doubled or half-translated files, not stylistic variation.
- ``langid``: py3langid agrees with the declared language on >= ``LANGID_AGREEMENT`` of items.
  The classifier is restricted to the langid codes of the languages in ``data/languages.csv``,
  a fair closed-set test (so Latin Serbian is not confused with Croatian or Bosnian, which are
  outside the set; py3langid's ``sr`` label covers both Serbian scripts). Languages py3langid
  does not support report ``n/a``.
- ``derived`` (sr-Latn only): the file equals the transliteration of sr-Cyrl
  (``python -m babel.data.corpus transliterate-serbian`` rewrites it).
"""

from __future__ import annotations

import argparse
import functools
import unicodedata
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from babel.core import paths
from babel.data.items import Item, read_jsonl_items
from babel.data.languages import Language, available_languages, load_languages, select_languages
from babel.data.serbian import cyrillic_to_latin

REFERENCE = "en"
SCRIPT_SHARE = 0.95
LANGID_AGREEMENT = 0.95
ENGLISH_PROB = 0.9


LENGTH_BANDS: dict[str, tuple[float, float]] = {
    "Hans": (0.15, 0.8),
    "Jpan": (0.2, 1.0),
    "Kore": (0.25, 1.2),
}


DEFAULT_LENGTH_BAND = (0.5, 2.0)
CHECKS = ("ids", "clean", "not_english", "script", "length", "langid", "derived")


_SCRIPT_BLOCKS: dict[str, tuple[str, ...]] = {
    "Latn": ("Latn",),
    "Cyrl": ("Cyrl",),
    "Arab": ("Arab",),
    "Hebr": ("Hebr",),
    "Deva": ("Deva",),
    "Beng": ("Beng",),
    "Hans": ("Hani",),
    "Jpan": ("Hani", "Hira", "Kana"),
    "Kore": ("Hang", "Hani"),
}


_NAME_PREFIXES = (
    ("LATIN", "Latn"),
    ("CYRILLIC", "Cyrl"),
    ("ARABIC", "Arab"),
    ("HEBREW", "Hebr"),
    ("DEVANAGARI", "Deva"),
    ("BENGALI", "Beng"),
    ("CJK", "Hani"),
    ("IDEOGRAPHIC", "Hani"),
    ("HIRAGANA", "Hira"),
    ("KATAKANA", "Kana"),
    ("HALFWIDTH KATAKANA", "Kana"),
    ("HANGUL", "Hang"),
    ("FULLWIDTH LATIN", "Latn"),
)


@functools.lru_cache(maxsize=4096)
def char_script(ch: str) -> str:
    """Rough ISO 15924 code of one letter from its Unicode name (``Zyyy`` if unknown)."""
    name = unicodedata.name(ch, "")
    for prefix, script in _NAME_PREFIXES:
        if name.startswith(prefix):
            return script
    return "Zyyy"


def script_share(texts: Sequence[str], script: str) -> float:
    """Fraction of letters (Unicode category L*) that belong to ``script``."""
    counts = Counter(char_script(ch) for text in texts for ch in text if ch.isalpha())
    total = sum(counts.values())
    return sum(counts[s] for s in _SCRIPT_BLOCKS[script]) / total if total else float("nan")


@functools.lru_cache(maxsize=4)
def _identifier(langid_codes: tuple[str, ...]) -> Any:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    identifier.set_languages(list(langid_codes))
    return identifier


def _table_codes() -> tuple[str, ...]:
    return tuple(sorted({lang.langid_code for lang in load_languages() if lang.langid_code}))


def identify(texts: Sequence[str]) -> list[tuple[str, float]]:
    """py3langid (label, probability) per text, over the langid codes of the language table."""
    identifier = _identifier(_table_codes())
    return [identifier.classify(t) for t in texts]


def language_probability(text: str, code: str | None) -> float:
    """py3langid's probability that ``text`` is in ``code`` (NaN when py3langid lacks it).

    The classifier is the one :func:`identify` uses, restricted to the language table's codes.
    """
    if code is None:
        return float("nan")
    return float(dict(_identifier(_table_codes()).rank(text)).get(code, 0.0))


def _read(file: Path) -> tuple[list[Item], int]:
    """Items of a corpus file and its number of blank lines."""
    with open(file, encoding="utf-8") as fh:
        blank = sum(1 for line in fh if not line.strip())
    return read_jsonl_items(file), blank


def _check_clean(items: list[Item], blank: int) -> dict[str, Any]:
    texts = [it.text.strip() for it in items]
    row = {
        "blank_lines": blank,
        "empty_texts": sum(1 for t in texts if not t),
        "duplicate_ids": len(items) - len({it.id for it in items}),
        "duplicate_texts": len(texts) - len(set(texts)),
    }
    return {**row, "ok_clean": not any(row.values())}


def _check_not_english(
    items: list[Item], en_text: dict[str, str], labels: list[tuple[str, float]]
) -> dict[str, Any]:
    identical = sum(1 for it in items if en_text.get(it.id, "").strip() == it.text.strip())
    said_en = sum(1 for lab, p in labels if lab == "en" and p >= ENGLISH_PROB)
    return {
        "identical_to_en": identical,
        "langid_en": said_en,
        "ok_not_english": not (identical or said_en),
    }


def _check_length(items: list[Item], en_text: dict[str, str], script: str) -> dict[str, Any]:
    ratios = [len(it.text) / len(en_text[it.id]) for it in items if en_text.get(it.id)]
    low, high = LENGTH_BANDS.get(script, DEFAULT_LENGTH_BAND)
    median = float(np.median(ratios)) if ratios else float("nan")
    return {
        "length_ratio": median,
        "length_band": f"{low}-{high}",
        "ok_length": low <= median <= high,
    }


def _check_langid(labels: list[tuple[str, float]], expected: str | None) -> dict[str, Any]:
    if not labels or expected is None:
        return {"langid_agreement": np.nan, "langid_confusion": "", "ok_langid": pd.NA}
    agreement = float(np.mean([lab == expected for lab, _ in labels]))
    wrong = Counter(lab for lab, _ in labels if lab != expected).most_common(1)
    return {
        "langid_agreement": agreement,
        "langid_confusion": f"{wrong[0][0]}:{wrong[0][1]}" if wrong else "",
        "ok_langid": agreement >= LANGID_AGREEMENT,
    }


def _check_derived(items: list[Item], corpus_dir: Path | None) -> bool:
    """Whether sr-Latn equals the transliteration of sr-Cyrl, line for line."""
    cyrl = paths.corpus_file("sr-Cyrl", folder=corpus_dir)
    if not cyrl.is_file():
        return False
    source = read_jsonl_items(cyrl)
    expected = [(it.id, it.topic, cyrillic_to_latin(it.text)) for it in source]
    return expected == [(it.id, it.topic, it.text) for it in items]


def _check_language(
    lang: Language, items: list[Item], blank: int, english: list[Item], corpus_dir: Path | None
) -> dict[str, Any]:
    en_text = {it.id: it.text for it in english}
    labels = identify([it.text for it in items]) if lang.langid_code else []
    ids_match = [it.id for it in items] == [it.id for it in english]
    share = script_share([it.text for it in items], lang.script)
    row: dict[str, Any] = {"items": len(items), "ids_match": ids_match, "ok_ids": ids_match}
    row |= _check_clean(items, blank)
    if lang.code == REFERENCE:
        row |= {"identical_to_en": pd.NA, "langid_en": pd.NA, "ok_not_english": pd.NA}
    else:
        row |= _check_not_english(items, en_text, labels)
    row |= {"script_share": share, "ok_script": share >= SCRIPT_SHARE}
    row |= _check_length(items, en_text, lang.script)
    row |= _check_langid(labels, lang.langid_code)
    row["ok_derived"] = _check_derived(items, corpus_dir) if lang.code == "sr-Latn" else pd.NA
    return row


def _failed_row(error: str) -> dict[str, Any]:
    return {"error": error, **{f"ok_{c}": False for c in CHECKS[:5]}}


def validate_corpus(
    langs: str | Sequence[str] | None = None, *, corpus_dir: Path | None = None
) -> pd.DataFrame:
    """Check every language's corpus file against English.

    Args:
        langs: Codes (or ``"all"``); default every language with a corpus file.
        corpus_dir: Corpus folder to check; default the built-in ``data/corpus``.

    Returns:
        One row per language (index ``code``): each check's values, ``ok_<check>`` columns
        (nullable booleans: ``<NA>`` where a check does not apply), ``passed`` and ``failed``
        (names of the failed checks).
    """
    if langs is None:
        languages = select_languages(available_languages(corpus_dir))
    else:
        languages = select_languages(langs)
    english_file = paths.corpus_file(REFERENCE, folder=corpus_dir)
    if not english_file.is_file():
        raise FileNotFoundError(f"no English corpus {english_file}; every check compares to it")
    english = read_jsonl_items(english_file)
    rows: dict[str, dict[str, Any]] = {}
    for lang in languages:
        file = paths.corpus_file(lang.code, folder=corpus_dir)
        if not file.is_file():
            rows[lang.code] = _failed_row(f"missing {file.name}")
            continue
        try:
            items, blank = _read(file)
        except (ValueError, TypeError) as exc:
            rows[lang.code] = _failed_row(str(exc))
            continue
        rows[lang.code] = {"error": "", **_check_language(lang, items, blank, english, corpus_dir)}
    df = pd.DataFrame.from_dict(rows, orient="index")
    df.index.name = "code"
    for check in CHECKS:
        col = f"ok_{check}"
        df[col] = (df[col] if col in df else pd.Series(pd.NA, index=df.index)).astype("boolean")
    failed = {c: df[f"ok_{c}"].eq(False).fillna(False) for c in CHECKS}
    df["failed"] = [",".join(c for c in CHECKS if failed[c][code]) for code in df.index]
    df["passed"] = df["failed"] == ""
    return df


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value))


def _cell(value: Any, ok: Any) -> str:
    """``value`` followed by ok/FAIL (just the value when the check does not apply)."""
    text = "n/a" if _missing(value) else str(value)
    return text if _missing(ok) else f"{text} {'ok' if ok else 'FAIL'}"


def _render_row(r: pd.Series) -> dict[str, str]:
    def num(col: str, digits: int) -> Any:
        return pd.NA if _missing(r.get(col)) else f"{r[col]:.{digits}f}"

    def counts(*cols: str) -> Any:
        values = [r.get(c) for c in cols]
        return pd.NA if any(_missing(v) for v in values) else "/".join(str(int(v)) for v in values)

    ids = pd.NA if _missing(r.get("ids_match")) else ("same" if r["ids_match"] else "differ")
    clean = counts("blank_lines", "empty_texts", "duplicate_ids", "duplicate_texts")
    return {
        "items": "" if _missing(r.get("items")) else str(int(r["items"])),
        "ids": _cell(ids, r["ok_ids"]),
        "clean": _cell(clean, r["ok_clean"]),
        "not_english": _cell(counts("identical_to_en", "langid_en"), r["ok_not_english"]),
        "script": _cell(num("script_share", 3), r["ok_script"]),
        "length": _cell(num("length_ratio", 2), r["ok_length"]),
        "langid": _cell(num("langid_agreement", 3), r["ok_langid"]),
        "confusion": r.get("langid_confusion") or "",
        "derived": "" if _missing(r["ok_derived"]) else ("ok" if r["ok_derived"] else "FAIL"),
        "passed": "yes" if r["passed"] else "NO",
        "error": r.get("error") or "",
    }


def render(df: pd.DataFrame) -> str:
    """The validation table in a compact, printable form (one column per check)."""
    table = pd.DataFrame([_render_row(r) for _, r in df.iterrows()], index=df.index)
    legend = (
        "clean = blank lines/empty texts/duplicate ids/duplicate texts; "
        "not_english = identical to English/langid says en; confusion = top wrong langid label"
    )
    return f"{table.to_string()}\n{legend}"


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: print the validation table; exit 1 if any check fails."""
    parser = argparse.ArgumentParser(
        prog="python -m babel.data.validation", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--langs", default=None, help="codes, e.g. en,fr (default: all present)")
    parser.add_argument("--corpus-dir", type=Path, default=None, help="another corpus folder")
    args = parser.parse_args(argv)
    df = validate_corpus(args.langs, corpus_dir=args.corpus_dir)
    print(render(df))
    failed = df.index[~df["passed"]].tolist()
    summary = f"{len(df) - len(failed)}/{len(df)} languages pass"
    print(summary + (f"; failing: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0

if __name__ == "__main__":
    raise SystemExit(main())
