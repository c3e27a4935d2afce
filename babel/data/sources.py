"""Corpus sources on the Hugging Face Hub: FLORES+ sentences and Wikipedia paragraphs.

Both loaders accept ``data_files``, a local copy shaped exactly like the hub data, so they run
offline (tests use small parquet files under ``tests/data/hub``):

- FLORES+ (``openlanguagedata/flores_plus``, gated): one config per ``flores_code``; files
  ``<split>/<flores_code>.parquet`` with columns id, iso_639_3, iso_15924, glottocode, text,
  url, domain, topic, has_image, has_hyperlink, last_updated. Ids are the same in every language.
- Wikipedia (``wikimedia/wikipedia``): config ``<date>.<wiki_code>``, files
  ``<config>/train-*.parquet`` with columns id, url, title, text; streamed, first N articles,
  each article split into paragraphs (one item per paragraph, topic = article title).

Serbian Latin (``sr-Latn``) is transliterated from the Cyrillic data, as the built-in corpus is.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from babel.core import paths
from babel.data.items import Item
from babel.data.languages import Language
from babel.data.serbian import cyrillic_to_latin

FLORES_REPO = "openlanguagedata/flores_plus"
FLORES_SPLITS = ("dev", "devtest")
WIKIPEDIA_REPO = "wikimedia/wikipedia"
WIKIPEDIA_DATE = "20231101"


_CONNECTION_ERRORS = {
    "ConnectError",
    "ConnectTimeout",
    "LocalEntryNotFoundError",
    "MaxRetryError",
    "NameResolutionError",
    "OfflineModeIsEnabled",
}


T = TypeVar("T")


class HubUnreachableError(ConnectionError):
    """The Hugging Face Hub cannot be reached (offline mode or no connection)."""


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` or ``HF_DATASETS_OFFLINE`` asks for offline mode."""
    flags = (os.environ.get(v, "") for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))
    return any(f.strip().upper() in {"1", "ON", "YES", "TRUE"} for f in flags)


def _unreachable(repo: str, reason: str) -> HubUnreachableError:
    return HubUnreachableError(
        f"the Hugging Face Hub is unreachable ({reason}), so {repo} cannot be loaded; "
        'use source="builtin" for the built-in corpus, or pass data_files= a local copy'
    )


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _from_hub(repo: str, fetch: Callable[[], T]) -> T:
    """Run ``fetch`` (a ``datasets`` call), turning hub failures into one-line errors."""
    if hub_offline():
        raise _unreachable(repo, "HF_HUB_OFFLINE is set")
    try:
        return fetch()
    except Exception as exc:
        chain = list(_chain(exc))
        if any(type(e).__name__ == "GatedRepoError" or "gated" in str(e).lower() for e in chain):
            raise PermissionError(
                f"{repo} is gated; accept its conditions at https://huggingface.co/datasets/{repo} "
                'and set HF_TOKEN (or pass token=...), or use source="builtin"'
            ) from exc
        for e in chain:
            if isinstance(e, (ConnectionError, TimeoutError)) or (
                type(e).__name__ in _CONNECTION_ERRORS
            ):
                raise _unreachable(repo, type(e).__name__) from exc
        raise


def _for_language(items: list[Item], lang: Language) -> list[Item]:
    """Transliterate Serbian Cyrillic source data when the language is Serbian Latin."""
    if lang.iso639_3 == "srp" and lang.script == "Latn":
        return [Item(i.id, i.topic, cyrillic_to_latin(i.text)) for i in items]
    return items


def _require_columns(rows: list[dict[str, Any]], columns: set[str], where: str) -> None:
    if rows and not columns <= set(rows[0]):
        raise ValueError(
            f"{where} has columns {sorted(rows[0])}, lacking {sorted(columns - set(rows[0]))}; "
            "pass data_files shaped like the hub dataset"
        )


def _read_local_flores(root: Path, flores_code: str, split: str) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    file = root if root.is_file() else paths.flores_plus_file(root, flores_code, split)
    if not file.is_file():
        raise FileNotFoundError(
            f"no local FLORES+ file {file}; lay data_files out like the hub "
            "(<root>/<split>/<flores_code>.parquet) or pass the parquet file itself"
        )
    return pq.read_table(file).to_pylist()


def load_flores_plus(
    lang: Language,
    *,
    flores_split: str = "dev",
    token: str | bool | None = None,
    data_files: str | Path | None = None,
) -> list[Item]:
    """FLORES+ sentences of one language, one item per sentence (id = FLORES id).

    Args:
        lang: The language (its ``flores_code`` names the config).
        flores_split: ``"dev"`` (997 sentences) or ``"devtest"`` (1012).
        token: Hugging Face token for the gated dataset (default: the logged-in one).
        data_files: A local parquet file, or a folder laid out like the hub repo.

    Raises:
        HubUnreachableError: Offline or no connection (names ``source="builtin"``).
        PermissionError: The gated dataset's conditions are not accepted.
    """
    if flores_split not in FLORES_SPLITS:
        raise ValueError(f"flores_split={flores_split!r}; use one of {FLORES_SPLITS}")
    if data_files is not None:
        where = str(data_files)
        rows = _read_local_flores(Path(data_files), lang.flores_code, flores_split)
    else:
        import datasets

        where = f"{FLORES_REPO}/{lang.flores_code}"
        ds = _from_hub(
            FLORES_REPO,
            lambda: datasets.load_dataset(
                FLORES_REPO, name=lang.flores_code, split=flores_split, token=token
            ),
        )
        rows = ds.to_list()
    _require_columns(rows, {"id", "text"}, where)
    found = {f"{r['iso_639_3']}_{r['iso_15924']}" for r in rows if "iso_639_3" in r}
    if found and found != {lang.flores_code}:
        raise ValueError(
            f"{where} holds {sorted(found)}, not {lang.flores_code} ({lang.code}); "
            "pass the FLORES+ file of this language"
        )
    items = [Item(str(r["id"]), str(r.get("topic") or ""), str(r["text"])) for r in rows]
    return _for_language(items, lang)


def _local_wikipedia_rows(root: Path, config: str, n_articles: int) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    if root.is_file():
        files = [root]
    else:
        folder = paths.wikipedia_config_dir(root, config)
        files = sorted((folder if folder.is_dir() else root).glob("*.parquet"))
    if not files:
        raise FileNotFoundError(
            f"no local Wikipedia parquet in {root}; lay data_files out like the hub "
            f"(<root>/{config}/train-*.parquet) or pass the parquet file itself"
        )
    rows: list[dict[str, Any]] = []
    for file in files:
        for batch in pq.ParquetFile(file).iter_batches(batch_size=max(n_articles, 1)):
            rows.extend(batch.to_pylist()[: n_articles - len(rows)])
            if len(rows) >= n_articles:
                return rows
    return rows


def paragraphs(text: str, *, min_chars: int) -> list[str]:
    """Paragraphs (lines) of an article with at least ``min_chars`` characters (drops headings)."""
    return [p.strip() for p in text.split("\n") if len(p.strip()) >= min_chars]


def load_wikipedia(
    lang: Language,
    *,
    n_articles: int = 50,
    date: str = WIKIPEDIA_DATE,
    min_chars: int = 100,
    data_files: str | Path | None = None,
) -> list[Item]:
    """Paragraphs of the first ``n_articles`` Wikipedia articles (streamed, not downloaded whole).

    Args:
        lang: The language (its ``wiki_code`` names the edition).
        n_articles: Articles to read from the start of the dump.
        date: Dump date of the ``wikimedia/wikipedia`` config.
        min_chars: Shortest paragraph kept (shorter lines are headings or list stubs).
        data_files: A local parquet file, or a folder laid out like the hub repo.

    Returns:
        One item per paragraph: id ``<article id>.<paragraph number>``, topic = article title.

    Raises:
        HubUnreachableError: Offline or no connection (names ``source="builtin"``).
    """
    if n_articles < 1 or min_chars < 1:
        raise ValueError(f"n_articles={n_articles}, min_chars={min_chars}; both must be >= 1")
    config = f"{date}.{lang.wiki_code}"
    if data_files is not None:
        where = str(data_files)
        rows = _local_wikipedia_rows(Path(data_files), config, n_articles)
    else:
        import datasets

        where = f"{WIKIPEDIA_REPO}/{config}"

        def fetch() -> list[dict[str, Any]]:
            ds = datasets.load_dataset(WIKIPEDIA_REPO, name=config, split="train", streaming=True)
            return list(itertools.islice(ds, n_articles))

        rows = _from_hub(WIKIPEDIA_REPO, fetch)
    _require_columns(rows, {"id", "title", "text"}, where)
    items = [
        Item(f"{row['id']}.{k}", str(row["title"]), para)
        for row in rows
        for k, para in enumerate(paragraphs(str(row["text"]), min_chars=min_chars))
    ]
    return _for_language(items, lang)
