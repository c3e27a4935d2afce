"""A user's own text and languages: the files corpus through the profiling API, and the checks.

tests/data/user_corpus holds 4 languages: en and ru (in the table), qaa (a private-use code,
described by tests/data/user_corpus/languages.csv) and nl (in no table: its script comes from
its text).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from babel.core import paths
from babel.core.artifacts import config_dict
from babel.core.config import ProfileConfig
from babel.data import languages as languages_mod
from babel.data.checks import (
    UserTextError,
    UserTextWarning,
    check_user_text,
    detect_script,
    script_counts,
)
from babel.data.corpus import load_items, parse_corpus
from babel.data.languages import USER_CSV_ENV, get_language
from babel.experiment import ExperimentConfig
from babel.profile.cache import _corpus_digest
from babel.prune.evaluation import evaluation_chunks

CORPUS = Path(__file__).parents[1] / "data" / "user_corpus"
LANGS = ["en", "ru", "qaa", "nl"]


@pytest.fixture(autouse=True)
def _user_table(monkeypatch):
    monkeypatch.setenv(USER_CSV_ENV, str(CORPUS / "languages.csv"))
    monkeypatch.setattr(languages_mod, "_REGISTERED", {})


@pytest.fixture
def corpus(tmp_path) -> Path:
    folder = tmp_path / "texts"
    shutil.copytree(CORPUS, folder)
    return folder


def _experiment(folder: Path, langs=LANGS) -> ExperimentConfig:
    return ExperimentConfig.from_params(model="tiny", languages=langs, corpus=str(folder),
                                        n_experts=8, max_items=None, seq_len=32, batch_size=4)


def _cache_files() -> list[Path]:
    # lock files (filelock) hold no data: a refused run may leave the entry's lock, not a cache
    return [p for p in paths.cache_dir().rglob("*") if p.is_file() and p.suffix != ".lock"]


# ---------------------------------------------------------------- config and cache key
def test_builtin_config_and_key_are_unchanged() -> None:
    cfg = ProfileConfig()
    assert cfg.key == "cross_layer-r0.2_builtin-profiling_L128_Tall_bos0"
    saved = {k: v for k, v in config_dict(cfg).items() if k not in ("path", "compiled")}
    assert cfg.as_dict() == saved  # the saved settings of built-in profiles: no new field
    on = ProfileConfig(compiled=True)  # the compiled path is cached apart
    assert on.key == cfg.key + "_compiled" and on.as_dict() == {**saved, "compiled": True}


def test_corpus_parameter_takes_a_source_or_a_folder(corpus) -> None:
    assert parse_corpus("builtin") == ("builtin", None)
    assert parse_corpus(str(corpus)) == ("files", str(corpus))
    exp = _experiment(corpus, "all")
    assert exp.profile.source == "files" and exp.profile.path == str(corpus)
    assert sorted(exp.languages) == sorted(LANGS)
    assert exp.profile.key != ProfileConfig(source="files", path="/elsewhere").key


def test_new_languages_from_the_user_table_and_from_text(corpus) -> None:
    _experiment(corpus)
    qaa, nl = get_language("qaa"), get_language("nl")
    assert (qaa.family, qaa.script) == ("Constructed", "Latn")
    assert nl.script == "Latn" and not nl.has_genealogy  # in no table: script from its text
    assert get_language("en").family == "Indo-European"


def test_script_detection_uses_the_unicode_script_property() -> None:
    assert detect_script(script_counts("Привет, как дела")) == "Cyrl"
    assert detect_script(script_counts("नमस्ते दुनिया")) == "Deva"
    assert detect_script(script_counts("こんにちは世界")) == "Jpan"
    assert detect_script(script_counts("안녕하세요")) == "Kore"


def test_digest_follows_each_file(corpus) -> None:
    before = {lang: _corpus_digest(lang, "files", str(corpus)) for lang in LANGS}
    with open(corpus / "ru.txt", "a", encoding="utf-8") as fh:
        fh.write("Ещё одна строка.\n")
    after = {lang: _corpus_digest(lang, "files", str(corpus)) for lang in LANGS}
    assert [lang for lang in LANGS if before[lang] != after[lang]] == ["ru"]


# ---------------------------------------------------------------- through the profiling API
def test_files_corpus_profiles_and_reprofiles_only_the_edited_language(
        corpus, tiny_llama, byte_tokenizer) -> None:
    exp = _experiment(corpus)
    part = exp.build_partition(tiny_llama, model_name="tiny")
    profiles = exp.profiles(tiny_llama, byte_tokenizer, part, model_name="tiny", progress=False)
    assert set(profiles) == set(LANGS) and all(p.tokens > 0 for p in profiles.values())
    n_ru = len(load_items("ru", source="files", path=corpus, split="profiling"))
    assert n_ru > 0
    stamps = {p: p.stat().st_mtime_ns for p in _cache_files() if p.suffix == ".npz"}
    with open(corpus / "en.txt", "a", encoding="utf-8") as fh:
        fh.write("One more line of English text about the weather in the mountains.\n")
    exp.profiles(tiny_llama, byte_tokenizer, part, model_name="tiny", progress=False)
    changed = [p.stem for p, t in stamps.items() if p.stat().st_mtime_ns != t]
    assert changed == ["en"]


def test_evaluation_reads_the_user_files_split_by_item_id(corpus, byte_tokenizer) -> None:
    exp = _experiment(corpus)
    held = load_items("nl", source="files", path=corpus, split="evaluation")
    assert 0 < len(held) < len(load_items("nl", source="files", path=corpus))
    ch = evaluation_chunks(byte_tokenizer, "nl", seq_len=32, source=exp.profile.corpus)
    assert ch.n_items == len(held)


# ---------------------------------------------------------------- bad input: one line, no cache
def _assert_refused(folder: Path, lang: str, match: str, tiny_llama, byte_tokenizer) -> str:
    with pytest.raises(UserTextError, match=match) as info:
        exp = _experiment(folder, [lang])
        part = exp.build_partition(tiny_llama, model_name="tiny")
        exp.profiles(tiny_llama, byte_tokenizer, part, model_name="tiny", progress=False)
    message = str(info.value)
    assert "\n" not in message and str(folder / lang) in message
    assert not [p for p in _cache_files() if "profiles" in str(p)]
    return message


def test_empty_file_is_refused(corpus, tiny_llama, byte_tokenizer) -> None:
    (corpus / "en.txt").write_text("\n\n  \n", encoding="utf-8")
    _assert_refused(corpus, "en", r"en\.txt: no text \(0 non-blank lines\)", tiny_llama,
                    byte_tokenizer)


def test_too_short_file_is_refused_with_the_model_tokenizer(corpus, tiny_llama,
                                                            byte_tokenizer) -> None:
    (corpus / "en.txt").write_text("Hi.\n", encoding="utf-8")
    msg = _assert_refused(corpus, "en", r"only 3 tokens \(at least 200 needed\)", tiny_llama,
                          byte_tokenizer)
    assert "add text" in msg


def test_wrong_script_is_refused_with_share_and_detected_script(corpus, tiny_llama,
                                                                byte_tokenizer) -> None:
    shutil.copy(corpus / "en.txt", corpus / "ru.txt")  # English text saved as Russian
    _assert_refused(corpus, "ru", r"ru\.txt: 100% of the letters are not Cyrl .* looks like "
                    r"Latn.*--allow-mixed-script", tiny_llama, byte_tokenizer)


def test_mixed_script_flag_overrides(corpus, monkeypatch) -> None:
    shutil.copy(corpus / "en.txt", corpus / "ru.txt")
    report = check_user_text("ru", corpus, allow_mixed_script=True, langid=False)
    assert report.other_script == 1.0 and report.detected_script == "Latn"


def test_invalid_utf8_names_line_and_byte(corpus, tiny_llama, byte_tokenizer) -> None:
    good = (corpus / "en.txt").read_bytes()
    first = good.index(b"\n") + 1
    (corpus / "en.txt").write_bytes(good[:first] + b"caf\xe9 au lait\n" + good[first:])
    _assert_refused(corpus, "en", rf"en\.txt: invalid UTF-8 at line 2, byte offset "
                    rf"{first + 3} \(byte 0xe9\); re-save the file as UTF-8", tiny_llama,
                    byte_tokenizer)


def test_language_id_disagreement_and_duplicates_are_warnings(corpus) -> None:
    ru = (corpus / "ru.txt").read_text(encoding="utf-8")
    (corpus / "ru.txt").write_text(ru + ru.splitlines()[0] + "\n", encoding="utf-8")
    with pytest.warns(UserTextWarning, match=r"ru\.txt: \d+% of the lines repeat"):
        check_user_text("ru", corpus, langid=False)
    fr_as_en = (
        "Le chat dort sur le canapé pendant que la pluie tombe doucement sur la ville.\n" * 3
        + "Nous avons mangé une soupe chaude et du pain frais avant de partir au marché.\n")
    (corpus / "en.txt").write_text(fr_as_en, encoding="utf-8")
    with pytest.warns(UserTextWarning, match=r"en\.txt: py3langid reads this text as 'fr'"):
        check_user_text("en", corpus)
