"""Corpus items of every language: loading, the profiling/evaluation split, and statistics.

Sources (``load_items(lang, source=...)``):

- ``"builtin"``: ``data/corpus/<code>.jsonl``, 216 aligned items per language, one JSON object a
  line: ``{"id": "science-01", "topic": "science", "text": "..."}``. Ids and their order are
  the same in every language. ``sr-Latn.jsonl`` is *derived*: it is the letter-for-letter
  transliteration of ``sr-Cyrl.jsonl`` (same ids, same content), rewritten by
  ``python -m babel.data.corpus transliterate-serbian``; never edit it by hand.
- ``"files"``: a user's own file (``path``): plain text with one item per line (id = line
  number, blank lines skipped) or JSONL with ``text`` and optional ``id``/``topic``. ``path`` may
  be a folder holding ``<code>.jsonl`` or ``<code>.txt``.
- ``"flores_plus"`` and ``"wikipedia"``: see ``babel.corpus_hub``.

The split is a function of the item id alone (``split_of``), so it is identical across languages.


CLI: ``python -m babel.data.corpus stats [--tokenizer gemma-3-270m]`` and
``python -m babel.data.corpus transliterate-serbian``.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class Item:
    """One corpus item: a sentence or short passage with its id and topic."""

    id: str
    topic: str
    text: str

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not isinstance(self.text, str):
            raise TypeError(
                f"item {self.id!r} has a {type(self.id).__name__} id and a "
                f"{type(self.text).__name__} text; both must be str"
            )
        if not self.id:
            raise ValueError("an item has an empty id; give every item a non-empty id")


def _parse_jsonl_line(line: str, where: str, default_id: str | None) -> Item:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where} is not valid JSON ({exc.msg}); write one object a line") from exc
    for field in ("text",) if default_id is not None else ("id", "text"):
        if not isinstance(obj, dict) or field not in obj:
            raise ValueError(f'{where} lacks an "{field}" field; write {{"id": ..., "text": ...}}')
    return Item(str(obj.get("id", default_id)), str(obj.get("topic") or ""), obj["text"])


def read_jsonl_items(file: Path, *, require_ids: bool = True) -> list[Item]:
    """Items of a JSONL corpus file (blank lines skipped).

    Args:
        file: The file.
        require_ids: Every line must carry an ``id`` (built-in corpus); else the line number is
            the default id.
    """
    items = []
    with open(file, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            default_id = None if require_ids else str(number)
            items.append(_parse_jsonl_line(line, f"{file}:{number}", default_id))
    return items
