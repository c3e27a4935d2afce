"""Tests of babel.data.languages: the language table, lookup errors and selection."""
from __future__ import annotations

from pathlib import Path

import pytest

from babel.core import paths
from babel.data.languages import (
    SCRIPTS,
    Language,
    available_languages,
    get_language,
    language_codes,
    load_languages,
    select_languages,
)
from babel.families.distances import uriel_data

CODES = [
    "en", "fr", "es", "pt", "it", "de", "fi", "ru", "sr-Cyrl", "sr-Latn", "tr", "hi",
    "ur", "bn", "ar", "fa", "he", "zh-Hans", "ja", "ko", "id", "vi", "sw",
]  # fmt: skip



def test_table_has_every_language_once() -> None:
    assert language_codes() == CODES
    assert all(isinstance(lang, Language) for lang in load_languages())


def test_every_corpus_file_is_in_the_table() -> None:
    codes = set(language_codes())
    for file in paths.CORPUS_DIR.glob("*.jsonl"):
        assert file.stem in codes, f"{file.name} has no row in data/languages.csv"


def test_load_languages_returns_a_fresh_list() -> None:
    first = load_languages()
    first.clear()
    assert len(load_languages()) == len(CODES)


def test_fields_are_consistent() -> None:
    for lang in load_languages():
        assert lang.script in SCRIPTS
        if lang.code != "sr-Latn":  # FLORES+ has only Cyrillic Serbian; the loader transliterates
            expected = {"Kore": "Hang"}.get(lang.script, lang.script)
            assert lang.flores_script == expected, lang.code
    serbian = get_language("sr-Latn")
    assert (serbian.flores_code, serbian.wiki_code) == ("srp_Cyrl", "sr")
    assert get_language("ar").flores_code == "arb_Arab"
    assert get_language("zh-Hans").langid_code == "zh"


def test_langid_codes_are_py3langid_labels() -> None:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    labels = set(LanguageIdentifier.from_model_file(MODEL_FILE).labels)
    for lang in load_languages():
        if lang.langid_code is not None:
            assert lang.langid_code in labels, lang.code


def test_uriel_codes_are_known_to_lang2vec() -> None:
    # through babel's locator: `import lang2vec` can pick the wheel's bin/lang2vec.py script
    known = set(uriel_data("feature_predictions")["langs"].tolist())
    for lang in load_languages():
        if lang.uriel_code is not None:
            assert lang.uriel_code in known, lang.code


def test_select_by_family_script_and_branch() -> None:
    romance = select_languages(branch="Romance")
    assert [lang.code for lang in romance] == ["fr", "es", "pt", "it"]
    arabic_script = {lang.code for lang in select_languages(script="Arab")}
    assert arabic_script == {"ur", "ar", "fa"}
    semitic = select_languages(family="Afro-Asiatic", script=["Hebr"])
    assert [lang.code for lang in semitic] == ["he"]
    assert len(select_languages("all")) == len(select_languages()) == len(CODES)


def test_select_codes_keeps_their_order_and_parses_strings() -> None:
    assert [lang.code for lang in select_languages(["ja", "en"])] == ["ja", "en"]
    assert [lang.code for lang in select_languages("fr, sr-Latn")] == ["fr", "sr-Latn"]
    assert [lang.code for lang in select_languages(["en", "ja"], script="Latn")] == ["en"]


def test_select_unknown_family_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown family.*Indo-European"):
        select_languages(family="Klingon")


@pytest.mark.parametrize(
    ("typo", "meant"),
    [("fre", "fr"), ("fra", "fr"), ("French", "fr"), ("zh-hans", "zh-Hans"), ("sr", "sr-Cyrl")],
)
def test_unknown_code_suggests_the_closest(typo: str, meant: str) -> None:
    with pytest.raises(ValueError, match=f"did you mean '{meant}'") as info:
        get_language(typo)
    message = str(info.value)
    assert "\n" not in message
    assert "sr-Latn" in message and "zh-Hans" in message  # lists the available codes


def test_float_code_says_pass_a_string() -> None:
    with pytest.raises(TypeError, match="pass it as a string.*-r"):
        get_language(float("nan"))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not a str"):
        select_languages([float("nan")])  # type: ignore[list-item]


def test_available_languages_lists_codes_with_a_corpus_file(tmp_path: Path) -> None:
    for code in ("fr", "en", "xx"):
        paths.corpus_file(code, folder=tmp_path).write_text("{}\n")
    assert available_languages(tmp_path) == ["en", "fr"]  # table order; unknown files ignored
    assert "en" in available_languages()


def test_invalid_row_names_the_field() -> None:
    with pytest.raises(ValueError, match="script 'Latin'.*Latn"):
        Language("xx", "xxx", "X", "F", "B", "Latin", "xxx_Latn", "xx", None, None)
    with pytest.raises(ValueError, match="flores_code"):
        Language("xx", "xxx", "X", "F", "B", "Latn", "xx_Latn", "xx", None, None)
