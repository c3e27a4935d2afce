"""Corpus items (id, topic, text) and the JSONL reader every corpus source shares."""

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
