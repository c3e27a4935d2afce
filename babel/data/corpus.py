"""Corpus items of every language: loading, the profiling/evaluation split, and statistics.

Sources (``load_items(lang, source=...)``):

- ``"builtin"``: ``data/corpus/<code>.jsonl``, 216 aligned items per language, one JSON object a
  line: ``{"id": "science-01", "topic": "science", "text": "..."}``. Ids and their order are
  the same in every language. ``sr-Latn.jsonl`` is *derived*: it is the letter-for-letter
  transliteration of ``sr-Cyrl.jsonl`` (same ids, same content), rewritten by
  ``python -m babel.data.corpus transliterate-serbian``; never edit it by hand.
- ``"files"``: a user's own file (``path``): plain text with one item per line (id = line
  number, blank lines skipped) or JSONL with ``text`` and optional ``id``/``topic``. ``path`` may
  be a folder holding ``<code>.jsonl`` or ``<code>.txt``. Wherever a source name is taken, a
  folder path stands for ``"files"`` with that folder (:func:`parse_corpus`).
- ``"flores_plus"`` and ``"wikipedia"``: see ``babel.data.sources``.

The split is a function of the item id alone (``split_of``), so it is identical across languages.


CLI: ``python -m babel.data.corpus stats [--tokenizer gemma-3-270m]`` and
``python -m babel.data.corpus transliterate-serbian``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from babel.core import paths
from babel.core.artifacts import atomic_path
from babel.data import sources as corpus_hub
from babel.data.chunking import tokens_per_item
from babel.data.items import Item, read_jsonl_items
from babel.data.languages import (
    available_languages,
    get_language,
    select_languages,
    user_path,
)
from babel.data.serbian import cyrillic_to_latin

SOURCES = ("builtin", "files", "flores_plus", "wikipedia")
SPLITS = ("all", "profiling", "evaluation")
EVALUATION_MODULUS = 3  # an id whose sha256 is 0 mod 3 is held out for evaluation (~1/3)


_SOURCE_OPTIONS = {
    "builtin": set(),
    "files": set(),
    "flores_plus": {"flores_split", "token", "data_files"},
    "wikipedia": {"n_articles", "date", "min_chars", "data_files"},
}


UNSPACED_SCRIPTS = ("Hans", "Jpan")  # whitespace words are meaningless without spaces


def _digest_mod(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest(), "big") % EVALUATION_MODULUS


SPLIT_RULE = "topic-stratified-v1"  # recorded beside profiles: changing the rule re-profiles


def split_of(item_id: str) -> str:
    """``"evaluation"`` for one id in three, else ``"profiling"``; a function of the id alone.

    Ids of the form ``<topic>-<number>`` (the built-in corpus) are split *within each topic*:
    the item is held out when ``(number + sha256(topic)) % 3 == 0``, so every topic gives
    exactly a third of its consecutive items to evaluation (a plain hash of the id held out
    1 of 18 technology items but 9 of 18 travel items). Other ids fall back to
    ``sha256(id) % 3 == 0``. The same in every language and on every machine.
    """
    m = re.fullmatch(r"(.+)-(\d+)", str(item_id))
    if m:
        held = (int(m.group(2)) + _digest_mod(m.group(1))) % EVALUATION_MODULUS == 0
    else:
        held = _digest_mod(str(item_id)) == 0
    return "evaluation" if held else "profiling"


@dataclasses.dataclass(frozen=True)
class CorpusSpec:
    """Which items to load: the corpus part of an experiment's config.

    Attributes:
        source: One of ``SOURCES``.
        split: ``"all"``, ``"profiling"`` or ``"evaluation"``.
        path: Built-in: another corpus folder; files: the file or folder (required);
            flores_plus/wikipedia: a local copy (same as the ``data_files`` option).
        max_items: Keep the first N items of the split (``None``: all).
        options: Source options (flores_plus: flores_split, token, data_files;
            wikipedia: n_articles, date, min_chars, data_files).
    """

    source: str = "builtin"
    split: str = "all"
    path: str | None = None
    max_items: int | None = None
    options: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"source={self.source!r}; use one of {', '.join(SOURCES)}")
        if self.split not in SPLITS:
            raise ValueError(f"split={self.split!r}; use one of {', '.join(SPLITS)}")
        if self.max_items is not None and (
            not isinstance(self.max_items, int) or self.max_items < 1
        ):
            raise ValueError(f"max_items={self.max_items!r}; use an int >= 1, or None for all")
        unknown = sorted(set(self.options) - _SOURCE_OPTIONS[self.source])
        if unknown:
            allowed = sorted(_SOURCE_OPTIONS[self.source]) or "none"
            raise TypeError(
                f"source {self.source!r} takes no option(s) {unknown}; its options: {allowed}"
            )
        if self.source == "files" and self.path is None:
            raise ValueError('source="files" needs path= a text/JSONL file or a folder of them')
        if self.path is not None and "data_files" in self.options:
            raise ValueError("give the local copy once: path= or data_files=, not both")

    def load(self, lang: str) -> list[Item]:
        """Items of ``lang`` under this spec (see ``load_items``)."""
        items = _load_source(self, lang)
        if self.split != "all":
            items = [it for it in items if split_of(it.id) == self.split]
        return items[: self.max_items] if self.max_items is not None else items


def _load_builtin(lang: str, folder: Path | None) -> list[Item]:
    code = get_language(lang).code
    file = paths.corpus_file(code, folder=folder)
    if not file.is_file():
        hint = (
            " (run `python -m babel.data.corpus transliterate-serbian` to derive it from sr-Cyrl)"
            if code == "sr-Latn"
            else ""
        )
        raise FileNotFoundError(
            f"no corpus file {file}{hint}; languages with a corpus: "
            f"{', '.join(available_languages(folder))}"
        )
    return read_jsonl_items(file)


def parse_corpus(value: str) -> tuple[str, str | None]:
    """``(source, path)`` of a corpus setting: a source name, or a folder of the user's files.

    A value containing ``/`` or naming an existing folder means ``("files", value)``.
    """
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"corpus={value!r}; use one of {', '.join(SOURCES)} or a folder of "
                         "<code>.txt / <code>.jsonl files")
    if value in SOURCES:
        return value, None
    if "/" in value or Path(value).expanduser().is_dir():
        folder = user_path(value)
        if not folder.exists():
            raise FileNotFoundError(f"corpus={value!r}: no such folder; give a folder of "
                                    "<code>.txt / <code>.jsonl files")
        return "files", str(folder)
    raise ValueError(f"corpus={value!r}; use one of {', '.join(SOURCES)} or a folder of "
                     "<code>.txt / <code>.jsonl files")


def corpus_languages(folder: str | Path) -> list[str]:
    """Codes of the ``<code>.txt`` / ``<code>.jsonl`` files of a user's folder (sorted)."""
    folder = Path(folder)
    return sorted({f.stem for f in folder.iterdir()
                   if f.is_file() and f.suffix in (".txt", ".jsonl") and not f.name.startswith(".")})


def read_utf8_lines(file: Path) -> list[str]:
    """The lines of a text file; invalid UTF-8 is a one-line error with line and byte offset."""
    raw = Path(file).read_bytes()
    lines, offset = [], 0
    for number, line in enumerate(raw.splitlines(keepends=True), start=1):
        try:
            lines.append(line.decode("utf-8"))
        except UnicodeDecodeError as err:
            raise UnicodeError(
                f"{file}: invalid UTF-8 at line {number}, byte offset {offset + err.start} "
                f"(byte 0x{line[err.start]:02x}); re-save the file as UTF-8") from None
        offset += len(line)
    return lines


def user_file(lang: str, path: str | Path) -> Path:
    """The user's file of ``lang``: ``path`` itself, or ``<lang>.jsonl`` / ``<lang>.txt`` in it."""
    return _user_file(lang, Path(path))


def _user_file(lang: str, path: Path) -> Path:
    if path.is_file():
        return path
    for ext in ("jsonl", "txt"):
        candidate = paths.corpus_file(lang, folder=path, ext=ext)
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"no {lang}.jsonl or {lang}.txt in {path}; pass a file, or a folder of <code>.txt/.jsonl"
    )


def _load_files(lang: str, path: Path) -> list[Item]:
    file = _user_file(lang, path)
    lines = read_utf8_lines(file)  # a one-line error on invalid UTF-8
    if file.suffix in (".jsonl", ".json"):
        return read_jsonl_items(file, require_ids=False)
    return [Item(str(n), "", line.strip()) for n, line in enumerate(lines, 1) if line.strip()]


def _load_source(spec: CorpusSpec, lang: str) -> list[Item]:
    if not isinstance(lang, str):
        get_language(lang)  # raises the papermill-friendly TypeError
    path = Path(spec.path).expanduser() if spec.path is not None else None
    if spec.source == "builtin":
        return _load_builtin(lang, path)
    if spec.source == "files":
        assert path is not None
        return _load_files(lang, path)

    options = dict(spec.options)
    if path is not None:
        options["data_files"] = path
    if spec.source == "flores_plus":
        return corpus_hub.load_flores_plus(get_language(lang), **options)
    return corpus_hub.load_wikipedia(get_language(lang), **options)


def load_items(
    lang: str,
    *,
    source: str = "builtin",
    split: str = "all",
    path: str | Path | None = None,
    max_items: int | None = None,
    **options: Any,
) -> list[Item]:
    """Items of one language.

    Args:
        lang: Language code (``fr``, ``sr-Latn``); for ``source="files"`` any name of a file in
            the ``path`` folder.
        source: ``"builtin"``, ``"files"``, ``"flores_plus"`` or ``"wikipedia"``, or a folder of
            the user's files (the same as ``source="files", path=folder``).
        split: ``"all"``, ``"profiling"`` (~2/3 of ids) or ``"evaluation"`` (~1/3).
        path: Built-in: another corpus folder; files: the file or folder (required);
            flores_plus/wikipedia: a local copy of the hub data.
        max_items: Keep the first N items of the split.
        **options: Source options (flores_plus: ``flores_split``, ``token``, ``data_files``;
            wikipedia: ``n_articles``, ``date``, ``min_chars``, ``data_files``).

    Returns:
        The items, in corpus order.
    """
    if source not in SOURCES and path is None:
        source, path = parse_corpus(source)  # a folder of the user's files
    spec = CorpusSpec(
        source=source,
        split=split,
        path=str(path) if path is not None else None,
        max_items=max_items,
        options=options,
    )
    return spec.load(lang)


def write_serbian_latin(*, corpus_dir: Path | None = None) -> Path:
    """(Re)write ``sr-Latn.jsonl`` as the transliteration of ``sr-Cyrl.jsonl`` (atomically).

    Args:
        corpus_dir: Corpus folder holding ``sr-Cyrl.jsonl``; default the built-in one.

    Returns:
        The path written.
    """
    source = read_jsonl_items(paths.corpus_file("sr-Cyrl", folder=corpus_dir))
    target = paths.corpus_file("sr-Latn", folder=corpus_dir)
    lines = [
        json.dumps(
            {"id": it.id, "topic": it.topic, "text": cyrillic_to_latin(it.text)},
            ensure_ascii=False,
        )
        for it in source
    ]
    with atomic_path(target) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return target


def _stats_row(items: list[Item], script: str) -> dict[str, Any]:
    texts = [it.text for it in items]
    splits = [split_of(it.id) for it in items]
    return {
        "items": len(items),
        "profiling_items": splits.count("profiling"),
        "evaluation_items": splits.count("evaluation"),
        "characters": sum(len(t) for t in texts),
        "words": np.nan if script in UNSPACED_SCRIPTS else sum(len(t.split()) for t in texts),
    }


def corpus_stats(
    langs: str | Sequence[str] | None = None,
    *,
    tokenizer: Any = None,
    corpus_dir: Path | None = None,
) -> pd.DataFrame:
    """Size of the built-in corpus per language.

    Args:
        langs: Codes (or ``"all"``); default every language with a corpus file.
        tokenizer: A Hugging Face tokenizer; adds token counts and the ratio to English.
        corpus_dir: Another corpus folder.

    Returns:
        One row per language (index ``code``): items, profiling_items, evaluation_items,
        characters, words (whitespace words; NaN for Hans/Jpan, written without spaces), and with
        a tokenizer tokens, tokens_per_item, tokens_per_en_token (total tokens over English's).
    """
    if langs is None:
        codes = available_languages(corpus_dir)
    else:
        codes = [lang.code for lang in select_languages(langs)]
    rows, tokens = {}, {}
    for code in codes:
        items = load_items(code, path=corpus_dir)
        rows[code] = _stats_row(items, get_language(code).script)
        if tokenizer is not None:
            tokens[code] = int(tokens_per_item(items, tokenizer).sum())
    df = pd.DataFrame.from_dict(rows, orient="index")
    df.index.name = "code"
    if tokenizer is not None and codes:
        if "en" not in tokens and "en" in available_languages(corpus_dir):
            tokens["en"] = int(tokens_per_item(load_items("en", path=corpus_dir), tokenizer).sum())
        df["tokens"] = pd.Series(tokens)
        df["tokens_per_item"] = df["tokens"] / df["items"]
        df["tokens_per_en_token"] = df["tokens"] / tokens["en"] if "en" in tokens else np.nan
    return df
