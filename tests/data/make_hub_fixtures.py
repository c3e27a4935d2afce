"""Write the tiny offline copies of the hub datasets that tests load (run once; output tracked).

``python tests/data/make_hub_fixtures.py`` writes, under ``tests/data/hub/``:

- ``flores_plus/<split>/<flores_code>.parquet``: rows shaped like openlanguagedata/flores_plus
  (id, iso_639_3, iso_15924, glottocode, text, url, domain, topic, has_image, has_hyperlink,
  last_updated) for fra_Latn and srp_Cyrl, dev and devtest.
- ``wikipedia/20231101.fr/train-00000-of-00001.parquet``: rows shaped like wikimedia/wikipedia
  (id, url, title, text).
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from babel.core import paths

HUB = paths.TESTS_DATA_DIR / "hub"
FLORES_SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("iso_639_3", pa.string()),
        ("iso_15924", pa.string()),
        ("glottocode", pa.string()),
        ("text", pa.string()),
        ("url", pa.string()),
        ("domain", pa.string()),
        ("topic", pa.string()),
        ("has_image", pa.bool_()),
        ("has_hyperlink", pa.bool_()),
        ("last_updated", pa.string()),
    ]
)
WIKI_SCHEMA = pa.schema(
    [("id", pa.string()), ("url", pa.string()), ("title", pa.string()), ("text", pa.string())]
)
FLORES_TEXTS = {
    "fra_Latn": [
        "Le train pour la capitale part à sept heures.",
        "Les abeilles transportent le pollen de fleur en fleur.",
        "Le vieux château a été construit il y a huit cents ans.",
        "Boire assez d'eau chaque jour est important.",
        "La montagne est couverte de neige toute l'année.",
        "Le musée a ouvert une nouvelle exposition.",
    ],
    "srp_Cyrl": [
        "Воз за престоницу полази у седам сати.",
        "Љубав и Џем су наслов књиге.",
        "ЊЕГОШ је написао Горски вијенац.",
        "Пчеле преносе полен са цвета на цвет.",
        "Ђорђе живи у Чачку и ради у Шапцу.",
        "Музеј је отворио нову изложбу.",
    ],
}
GLOTTOCODES = {"fra_Latn": "stan1290", "srp_Cyrl": "serb1264"}
WIKI_ARTICLES = [
    {
        "id": "101",
        "url": "https://fr.wikipedia.org/wiki/Paris",
        "title": "Paris",
        "text": "Paris est la capitale de la France et la ville la plus peuplée du pays, "
        "sur les rives de la Seine, au cœur du bassin parisien.\n\nHistoire\n\nLa ville est habitée depuis "
        "l'Antiquité par la tribu gauloise des Parisii, qui lui a donné son nom "
        "au temps de la conquête romaine.\n",
    },
    {
        "id": "102",
        "url": "https://fr.wikipedia.org/wiki/Lyon",
        "title": "Lyon",
        "text": "Lyon est une ville française située au confluent du Rhône et de la "
        "Saône, au centre-est du pays, à mi-chemin entre Paris et Marseille.\nCourt.\n",
    },
    {
        "id": "103",
        "url": "https://fr.wikipedia.org/wiki/Marseille",
        "title": "Marseille",
        "text": "Marseille est la plus ancienne ville de France, fondée vers 600 av. J.-C. "
        "par des marins grecs venus de Phocée.\n",
    },
]


def flores_rows(code: str, split: str) -> list[dict]:
    """Rows of one FLORES+ config and split (devtest ids continue after dev, as on the hub)."""
    iso, script = code.split("_")
    start = 1 if split == "dev" else 101
    return [
        {
            "id": start + i,
            "iso_639_3": iso,
            "iso_15924": script,
            "glottocode": GLOTTOCODES[code],
            "text": text,
            "url": f"https://en.wikinews.org/wiki/Example_{i}",
            "domain": "wikinews",
            "topic": ["travel", "science", "history"][i % 3],
            "has_image": False,
            "has_hyperlink": i % 2 == 0,
            "last_updated": "1.0",
        }
        for i, text in enumerate(FLORES_TEXTS[code])
    ]


def main() -> None:
    """Write every fixture file."""
    root = HUB / "flores_plus"
    for code in FLORES_TEXTS:
        for split in ("dev", "devtest"):
            file = paths.flores_plus_file(root, code, split)
            file.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.Table.from_pylist(flores_rows(code, split), FLORES_SCHEMA), file)
    folder = paths.wikipedia_config_dir(HUB / "wikipedia", "20231101.fr")
    folder.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(WIKI_ARTICLES, WIKI_SCHEMA)
    pq.write_table(table, folder / "train-00000-of-00001.parquet")


if __name__ == "__main__":
    main()
