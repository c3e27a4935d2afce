"""Tests of babel.data.corpus, babel.data.chunking, babel.data.sources, babel.serbian and validation.

Everything runs offline and loads no model: a character-level tokenizer is built in the test,
the hub loaders read the small parquet copies in ``tests/data/hub``.
"""
from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from babel import cli
from babel.core import paths
from babel.data import corpus
from babel.data import sources as corpus_hub
from babel.data.chunking import chunk_texts, separator_ids, tokens_per_item
from babel.data.corpus import CorpusSpec, corpus_stats, load_items, split_of
from babel.data.items import Item
from babel.data.languages import get_language, language_codes
from babel.data.serbian import cyrillic_to_latin
from babel.data.validation import render, script_share, validate_corpus

HUB = paths.TESTS_DATA_DIR / "hub"


MINI = paths.TESTS_DATA_DIR / "mini_corpus"


@pytest.fixture(scope="module")
def char_tokenizer():
    """A character-level fast tokenizer: one token per character, with BOS and PAD."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    chars = [chr(c) for c in range(32, 127)] + ["\n", "é", "à"]
    vocab = {"<pad>": 0, "<bos>": 1, "<unk>": 2, **{c: i + 3 for i, c in enumerate(chars)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", pad_token="<pad>", unk_token="<unk>"
    )


@pytest.fixture
def mini_corpus(tmp_path: Path) -> Path:
    """A writable copy of the 12-item en/fr/ru/sr-Cyrl corpus, with sr-Latn derived."""
    folder = tmp_path / "corpus"
    shutil.copytree(MINI, folder)
    corpus.write_serbian_latin(corpus_dir=folder)
    return folder


def edit_corpus(folder: Path, lang: str, change: Callable[[list[dict]], list[dict]]) -> None:
    """Rewrite ``<lang>.jsonl`` in ``folder`` after applying ``change`` to its rows."""
    file = paths.corpus_file(lang, folder=folder)
    rows = [json.loads(line) for line in file.read_text().splitlines() if line.strip()]
    file.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in change(rows)))



def test_split_is_deterministic_and_about_a_third() -> None:
    ids = [f"item-{i}" for i in range(3000)]
    first = [split_of(i) for i in ids]
    assert first == [split_of(i) for i in ids]
    assert set(first) == {"profiling", "evaluation"}
    assert 0.30 < first.count("evaluation") / len(ids) < 0.37
    assert split_of("science-01") == split_of("science-01")


def test_split_partitions_the_builtin_corpus() -> None:
    everything = load_items("en")
    prof = load_items("en", split="profiling")
    evaluation = load_items("en", split="evaluation")
    assert len(everything) == 216
    assert {i.id for i in prof} | {i.id for i in evaluation} == {i.id for i in everything}
    assert not {i.id for i in prof} & {i.id for i in evaluation}
    assert 0.25 < len(evaluation) / len(everything) < 0.42


def test_split_is_the_same_in_every_language() -> None:
    english = [i.id for i in load_items("en", split="evaluation")]
    for code in language_codes():
        if paths.corpus_file(code).is_file():
            assert [i.id for i in load_items(code, split="evaluation")] == english, code


def test_builtin_items_and_max_items() -> None:
    items = load_items("en", max_items=5)
    assert len(items) == 5 and all(isinstance(i, Item) for i in items)
    assert items[0].id == "science-01" and items[0].topic == "science"
    assert len(load_items("en", split="profiling", max_items=3)) == 3


def test_builtin_from_another_folder(mini_corpus: Path) -> None:
    assert [i.id for i in load_items("fr", path=mini_corpus)][:2] == ["mini-01", "mini-02"]


def test_missing_builtin_file_names_the_languages_present(mini_corpus: Path) -> None:
    with pytest.raises(FileNotFoundError, match="languages with a corpus: en, fr"):
        load_items("de", path=mini_corpus)


def test_spec_validation_names_the_fix() -> None:
    with pytest.raises(ValueError, match="use one of builtin, files"):
        CorpusSpec(source="web")
    with pytest.raises(ValueError, match="split='test'"):
        CorpusSpec(split="test")
    with pytest.raises(ValueError, match="max_items"):
        CorpusSpec(max_items=0)
    with pytest.raises(TypeError, match="flores_split"):
        load_items("en", source="builtin", flores_split="dev")
    with pytest.raises(ValueError, match="needs path"):
        load_items("en", source="files")
    with pytest.raises(TypeError, match="pass it as a string"):
        load_items(float("nan"))  # type: ignore[arg-type]


def test_files_source_plain_text(tmp_path: Path) -> None:
    file = tmp_path / "mine.txt"
    file.write_text("first line\n\n  third line  \n", encoding="utf-8")
    items = load_items("en", source="files", path=file)
    assert [(i.id, i.text) for i in items] == [("1", "first line"), ("3", "third line")]


def test_files_source_jsonl_and_folder(tmp_path: Path) -> None:
    rows = [{"id": "a", "text": "Bonjour", "topic": "greeting"}, {"text": "Salut"}]
    (tmp_path / "fr.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (tmp_path / "de.txt").write_text("Hallo\nTschüss\n")
    fr = load_items("fr", source="files", path=tmp_path)
    assert [(i.id, i.topic, i.text) for i in fr] == [
        ("a", "greeting", "Bonjour"),
        ("2", "", "Salut"),
    ]
    assert [i.text for i in load_items("de", source="files", path=tmp_path)] == ["Hallo", "Tschüss"]
    with pytest.raises(FileNotFoundError, match=r"no it.jsonl or it.txt"):
        load_items("it", source="files", path=tmp_path)


def test_bad_jsonl_line_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "fr.jsonl").write_text('{"id": "a", "text": "ok"}\n{"id": "b"}\n')
    with pytest.raises(ValueError, match=r"fr.jsonl:2 lacks an \"text\""):
        load_items("fr", path=tmp_path)


def test_flores_plus_from_local_copy() -> None:
    dev = load_items("fr", source="flores_plus", path=HUB / "flores_plus")
    assert [i.id for i in dev] == ["1", "2", "3", "4", "5", "6"]
    assert dev[0].topic == "travel" and dev[0].text.startswith("Le train")
    devtest = load_items(
        "fr", source="flores_plus", data_files=HUB / "flores_plus", flores_split="devtest"
    )
    assert devtest[0].id == "101"
    file = paths.flores_plus_file(HUB / "flores_plus", "fra_Latn", "dev")
    assert load_items("fr", source="flores_plus", data_files=file) == dev
    evaluation = load_items(
        "fr", source="flores_plus", path=HUB / "flores_plus", split="evaluation"
    )
    assert all(split_of(i.id) == "evaluation" for i in evaluation)


def test_flores_plus_serbian_latin_is_transliterated() -> None:
    cyrl = load_items("sr-Cyrl", source="flores_plus", path=HUB / "flores_plus")
    latn = load_items("sr-Latn", source="flores_plus", path=HUB / "flores_plus")
    assert [i.id for i in latn] == [i.id for i in cyrl]
    assert latn[1].text == "Ljubav i Džem su naslov knjige."
    assert latn[2].text.startswith("NJEGOŠ")


def test_flores_plus_rejects_another_languages_file() -> None:
    file = paths.flores_plus_file(HUB / "flores_plus", "srp_Cyrl", "dev")
    with pytest.raises(ValueError, match="holds.*srp_Cyrl.*not fra_Latn"):
        load_items("fr", source="flores_plus", data_files=file)
    with pytest.raises(FileNotFoundError, match="no local FLORES\\+ file"):
        load_items("de", source="flores_plus", path=HUB / "flores_plus")


def test_wikipedia_from_local_copy() -> None:
    items = load_items("fr", source="wikipedia", path=HUB / "wikipedia")
    assert [i.id for i in items] == ["101.0", "101.1", "102.0", "103.0"]  # headings dropped
    assert items[0].topic == "Paris" and items[0].text.startswith("Paris est")
    two = load_items("fr", source="wikipedia", path=HUB / "wikipedia", n_articles=2)
    assert {i.topic for i in two} == {"Paris", "Lyon"}
    short = load_items("fr", source="wikipedia", path=HUB / "wikipedia", min_chars=5)
    assert "Court." in [i.text for i in short]
    assert len(load_items("fr", source="wikipedia", path=HUB / "wikipedia", max_items=1)) == 1


def test_offline_error_names_builtin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for source in ("flores_plus", "wikipedia"):
        with pytest.raises(corpus_hub.HubUnreachableError, match='source="builtin"') as info:
            load_items("fr", source=source)
        assert "\n" not in str(info.value) and "unreachable" in str(info.value)


def test_connection_error_names_builtin(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    def no_network(*args: object, **kwargs: object) -> None:
        raise ConnectionError("Couldn't reach 'openlanguagedata/flores_plus' on the Hub")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setattr(datasets, "load_dataset", no_network)
    with pytest.raises(corpus_hub.HubUnreachableError, match='unreachable.*source="builtin"'):
        load_items("fr", source="flores_plus")


def test_gated_error_says_how_to_get_access(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    def gated(*args: object, **kwargs: object) -> None:
        raise RuntimeError("Dataset 'openlanguagedata/flores_plus' is a gated dataset on the Hub.")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setattr(datasets, "load_dataset", gated)
    with pytest.raises(PermissionError, match="accept its conditions.*HF_TOKEN"):
        load_items("fr", source="flores_plus")


def test_chunks_start_with_bos_and_pad_the_last(char_tokenizer) -> None:
    texts = ["abcde", "fgh"]  # 5 + 1 separator + 3 = 9 content tokens
    chunks = chunk_texts(texts, char_tokenizer, seq_len=4)
    bos, pad = char_tokenizer.bos_token_id, char_tokenizer.pad_token_id
    assert chunks.input_ids.shape == (3, 4) and chunks.input_ids.dtype == torch.long
    assert chunks.attention_mask.dtype == torch.long
    assert (chunks.input_ids[:, 0] == bos).all() and chunks.has_bos
    assert chunks.n_content_tokens == 9 and chunks.n_tokens == 12
    assert int(chunks.attention_mask.sum()) == chunks.n_tokens
    assert chunks.attention_mask[-1].tolist() == [1, 1, 1, 1]  # 9 = 3 chunks x 3, no padding
    decoded = char_tokenizer.decode(chunks.input_ids[:, 1:].reshape(-1)).replace(" ", "")
    assert decoded == "abcde\nfgh"
    short = chunk_texts(["abcd"], char_tokenizer, seq_len=4)
    d = char_tokenizer.convert_tokens_to_ids("d")
    assert short.input_ids[-1].tolist() == [bos, d, pad, pad]
    assert short.attention_mask.tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]
    assert short.n_tokens == 6 and short.n_content_tokens == 4 and len(short) == 2


def test_max_tokens_is_a_content_budget(char_tokenizer) -> None:
    chunks = chunk_texts(["abcdefghij"] * 3, char_tokenizer, seq_len=5, max_tokens=10)
    assert chunks.n_content_tokens == 10
    assert chunks.input_ids.shape == (3, 5)
    assert chunks.attention_mask.sum(1).tolist() == [5, 5, 3]


def test_no_bos_without_add_bos_or_bos_token(char_tokenizer) -> None:
    chunks = chunk_texts(["abcdef"], char_tokenizer, seq_len=3, add_bos=False)
    assert chunks.input_ids.shape == (2, 3) and not chunks.has_bos
    assert chunks.n_tokens == chunks.n_content_tokens == 6
    empty = chunk_texts([], char_tokenizer, seq_len=8)
    assert empty.input_ids.shape == (0, 8) and empty.n_tokens == 0
    with pytest.raises(ValueError, match="seq_len"):
        chunk_texts(["abc"], char_tokenizer, seq_len=1)
    with pytest.raises(ValueError, match="max_tokens"):
        chunk_texts(["abc"], char_tokenizer, seq_len=4, max_tokens=0)


def test_separator_and_tokens_per_item(char_tokenizer) -> None:
    assert separator_ids(char_tokenizer) == [char_tokenizer.convert_tokens_to_ids("\n")]
    items = [Item("a", "t", "abc"), Item("b", "t", "de")]
    counts = tokens_per_item(items, char_tokenizer)
    assert counts.to_dict() == {"a": 3, "b": 2} and counts.name == "tokens"


def test_corpus_stats(mini_corpus: Path, char_tokenizer) -> None:
    df = corpus_stats(["en", "fr"], tokenizer=char_tokenizer, corpus_dir=mini_corpus)
    assert list(df.index) == ["en", "fr"]
    assert (df["items"] == 12).all()
    assert (df["profiling_items"] + df["evaluation_items"] == df["items"]).all()
    assert df.loc["en", "tokens_per_en_token"] == 1.0
    assert df.loc["en", "characters"] == sum(
        len(i.text) for i in load_items("en", path=mini_corpus)
    )
    plain = corpus_stats(corpus_dir=mini_corpus)
    assert set(plain.index) == {"en", "fr", "ru", "sr-Cyrl", "sr-Latn"} and "tokens" not in plain


def test_words_are_not_counted_for_unspaced_scripts(tmp_path: Path) -> None:
    for code, text in (("en", "one two three"), ("ja", "水は山の上で沸騰する。")):
        paths.corpus_file(code, folder=tmp_path).write_text(
            json.dumps({"id": "x", "topic": "t", "text": text}, ensure_ascii=False) + "\n"
        )
    df = corpus_stats(corpus_dir=tmp_path)
    assert df.loc["en", "words"] == 3 and df["words"].isna()["ja"]


def test_stats_cli(mini_corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["corpus", "stats", "--corpus-dir", str(mini_corpus), "--langs", "en,fr"]) == 0
    assert "profiling_items" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("cyrillic", "latin"),
    [
        ("Љубав и Џем", "Ljubav i Džem"),
        ("ЉУБАВ", "LJUBAV"),
        ("ЏЕМ и Њива", "DŽEM i Njiva"),
        ("Ђорђе, Ћирилица, Жена, Чачак, Шабац", "Đorđe, Ćirilica, Žena, Čačak, Šabac"),
        ("ПОЉ", "POLJ"),
        ("Џ", "Dž"),
        ("њега љубав џеп", "njega ljubav džep"),
        ("2024. DNA", "2024. DNA"),
    ],
)
def test_transliteration_examples(cyrillic: str, latin: str) -> None:
    assert cyrillic_to_latin(cyrillic) == latin


def test_transliterate_cli_derives_same_content(
    mini_corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths.corpus_file("sr-Latn", folder=mini_corpus).unlink()
    assert cli.main(["corpus", "transliterate-serbian", "--corpus-dir", str(mini_corpus)]) == 0
    assert "sr-Latn.jsonl" in capsys.readouterr().out
    cyrl = load_items("sr-Cyrl", path=mini_corpus)
    latn = load_items("sr-Latn", path=mini_corpus)
    assert [(i.id, i.topic) for i in latn] == [(i.id, i.topic) for i in cyrl]
    assert [i.text for i in latn] == [cyrillic_to_latin(i.text) for i in cyrl]
    assert script_share([i.text for i in latn], "Latn") == 1.0


def test_builtin_serbian_latin_is_current() -> None:
    if not paths.corpus_file("sr-Cyrl").is_file():
        pytest.skip("sr-Cyrl.jsonl is not written yet")
    if not paths.corpus_file("sr-Latn").is_file():
        pytest.fail("sr-Latn.jsonl is missing; run `python -m babel.data.corpus transliterate-serbian`")
    cyrl = load_items("sr-Cyrl")
    assert [i.text for i in load_items("sr-Latn")] == [cyrillic_to_latin(i.text) for i in cyrl], (
        "sr-Latn.jsonl is stale; run `python -m babel.data.corpus transliterate-serbian`"
    )


def test_script_share_handles_cjk() -> None:
    assert script_share(["日本語のテキストです"], "Jpan") == 1.0
    assert script_share(["한국어 文章"], "Kore") == 1.0
    assert script_share(["中文文本"], "Hans") == 1.0
    assert script_share(["日本語のテキスト"], "Hans") < 0.95
    assert script_share(["abc где"], "Cyrl") == 0.5


def test_validation_passes_a_clean_corpus(mini_corpus: Path) -> None:
    df = validate_corpus(corpus_dir=mini_corpus)
    assert df["passed"].all(), render(df)
    assert df.loc["sr-Latn", "ok_derived"]
    assert df["ok_not_english"].isna()["en"]


def test_validation_catches_planted_problems(mini_corpus: Path) -> None:
    english = load_items("en", path=mini_corpus)

    def english_line_and_duplicate(rows: list[dict]) -> list[dict]:
        rows[2]["text"] = english[2].text
        rows[5]["text"] = rows[4]["text"]
        return rows

    def latin_script(rows: list[dict]) -> list[dict]:
        rows[1]["text"] = (
            "Moya babushka kazhdoe voskresnoe utro pechyot svezhiy khleb dlya vsey semi."
        )
        return rows

    edit_corpus(mini_corpus, "fr", english_line_and_duplicate)
    edit_corpus(mini_corpus, "ru", latin_script)
    edit_corpus(mini_corpus, "sr-Cyrl", lambda rows: rows[1:])  # drops an id; sr-Latn now stale
    df = validate_corpus(corpus_dir=mini_corpus)
    assert df.loc["fr", "identical_to_en"] == 1 and df.loc["fr", "langid_en"] == 1
    assert df.loc["fr", "duplicate_texts"] == 1
    assert set(df.loc["fr", "failed"].split(",")) == {"clean", "not_english", "langid"}
    assert set(df.loc["ru", "failed"].split(",")) == {"script", "langid"}
    assert df.loc["sr-Cyrl", "failed"] == "ids"
    assert "derived" in df.loc["sr-Latn", "failed"]
    assert df.loc["en", "passed"]
    assert "FAIL" in render(df)


def test_validation_reports_blank_lines_and_bad_files(mini_corpus: Path) -> None:
    fr = paths.corpus_file("fr", folder=mini_corpus)
    fr.write_text(fr.read_text() + "\n")
    paths.corpus_file("ru", folder=mini_corpus).write_text("not json\n")
    df = validate_corpus(["en", "fr", "ru", "de"], corpus_dir=mini_corpus)
    assert df.loc["fr", "blank_lines"] == 1 and df.loc["fr", "failed"] == "clean"
    assert "not valid JSON" in df.loc["ru", "error"] and not df.loc["ru", "passed"]
    assert df.loc["de", "error"] == "missing de.jsonl"


def test_validation_cli_exit_code(mini_corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from babel.data import validation as corpus_validation

    assert corpus_validation.main(["--corpus-dir", str(mini_corpus)]) == 0
    edit_corpus(mini_corpus, "fr", lambda rows: [*rows[:-1], {**rows[-1], "text": ""}])
    assert corpus_validation.main(["--corpus-dir", str(mini_corpus)]) == 1
    assert "failing: fr" in capsys.readouterr().out


@pytest.mark.parametrize("code", language_codes())
def test_builtin_corpus_passes_validation(code: str) -> None:
    if not paths.corpus_file(code).is_file():
        pytest.skip(f"{code}.jsonl is not written yet")
    df = validate_corpus([code])
    assert df.loc[code, "passed"], render(df)
    assert get_language(code).code == code
