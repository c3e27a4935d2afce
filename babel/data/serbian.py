"""Serbian Cyrillic to Latin (gajica) transliteration: a deterministic letter-for-letter map.

Serbian's two scripts correspond one to one, so the Latin corpus (``sr-Latn``) is derived from
the Cyrillic one (``sr-Cyrl``) and holds exactly the same content. Љ, Њ and Џ become the
digraphs Lj, Nj and Dž: title case before a lower-case letter (``Љубав`` → ``Ljubav``) and all
capitals inside an all-capital word (``ЉУБАВ`` → ``LJUBAV``). Characters outside the Serbian
alphabet (digits, punctuation, Latin letters, other Cyrillic letters) pass through unchanged.
"""

from __future__ import annotations

import re

_LOWER = {
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "ђ": "đ", "е": "e", "ж": "ž", "з": "z",
    "и": "i", "ј": "j", "к": "k", "л": "l", "љ": "lj", "м": "m", "н": "n", "њ": "nj", "о": "o",
    "п": "p", "р": "r", "с": "s", "т": "t", "ћ": "ć", "у": "u", "ф": "f", "х": "h", "ц": "c",
    "ч": "č", "џ": "dž", "ш": "š",
}  # fmt: skip


_TABLE = str.maketrans({**_LOWER, **{cyr.upper(): lat.capitalize() for cyr, lat in _LOWER.items()}})
_DIGRAPH_CAPITALS = {"Љ": "LJ", "Њ": "NJ", "Џ": "DŽ"}
_DIGRAPH_RE = re.compile("[ЉЊЏ]")


def _digraph(match: re.Match[str]) -> str:
    """All-capital digraph when the neighbouring letters are capitals, else title case."""
    text, i = match.string, match.start()
    after = text[i + 1] if i + 1 < len(text) else ""
    before = text[i - 1] if i > 0 else ""
    if after.isalpha():
        all_caps = after.isupper()
    else:  # last letter of a word: follow the letter before it
        all_caps = before.isalpha() and before.isupper()
    letter = match.group()
    return _DIGRAPH_CAPITALS[letter] if all_caps else letter.translate(_TABLE)


def cyrillic_to_latin(text: str) -> str:
    """Transliterate Serbian Cyrillic ``text`` to Latin (gajica).

    Args:
        text: Serbian text in Cyrillic (mixed text is fine: non-Serbian characters are kept).

    Returns:
        The same text in Serbian Latin script.
    """
    return _DIGRAPH_RE.sub(_digraph, text).translate(_TABLE)
