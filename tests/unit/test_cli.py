"""The ``babel`` command line on a tiny model folder (save_pretrained) and the test user corpus."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch

from babel import cli
from babel.core import paths
from babel.data import languages as languages_mod
from babel.data.languages import USER_CSV_ENV

CORPUS = Path(__file__).parents[1] / "data" / "user_corpus"
LANGS = ["en", "ru", "qaa", "nl"]


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    monkeypatch.delenv(USER_CSV_ENV, raising=False)
    monkeypatch.setattr(languages_mod, "_REGISTERED", {})


@pytest.fixture
def model_dir(tiny_model_dir) -> Path:
    return tiny_model_dir


def _common(model_dir: Path, corpus: Path, out: Path) -> list[str]:
    return ["--model", str(model_dir), "--corpus", str(corpus), "--experts", "8",
            "--seq-len", "32", "--batch-size", "4", "--max-items", "0", "--out", str(out),
            "--languages-csv", str(CORPUS / "languages.csv")]


def test_profile_writes_the_table_and_heatmap(model_dir, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    assert cli.main(["profile", "--languages", "en,ru,qaa,nl",
                     *_common(model_dir, CORPUS, out)]) == 0
    printed = capsys.readouterr().out.split()
    table = pd.read_parquet(printed[0])
    assert sorted(table.language.unique()) == sorted(LANGS)
    assert Path(printed[1]).suffix == ".png" and Path(printed[1]).stat().st_size > 0


@pytest.mark.expensive
def test_profile_compiled_is_cached_apart_and_agrees_with_eager(model_dir, tmp_path,
                                                                capsys) -> None:
    out = tmp_path / "out"
    args = ["profile", "--languages", "en", *_common(model_dir, CORPUS, out)]
    assert cli.main(args) == 0
    eager = pd.read_parquet(capsys.readouterr().out.split()[0])
    assert cli.main([*args, "--compiled"]) == 0
    comp = pd.read_parquet(capsys.readouterr().out.split()[0])
    keys = {p.parent.name for p in paths.cache_dir().rglob("*.npz")}
    assert any(k.endswith("_compiled") for k in keys) and any(
        not k.endswith("_compiled") for k in keys)
    assert list(comp.columns) == list(eager.columns) and len(comp) == len(eager)
    assert (comp[["language", "layer", "expert", "tokens"]]
            == eager[["language", "layer", "expert", "tokens"]]).all().all()
    # fused arithmetic may flip a near-tie selection: at most two selections differ
    assert (comp["count"] - eager["count"]).abs().sum() <= 2
    assert eager["count"].sum() > 0


def test_families_writes_matrix_clustermap_and_statistics(model_dir, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    assert cli.main(["families", "--languages", "[en, ru, qaa, nl]", "--permutations", "20",
                     *_common(model_dir, CORPUS, out)]) == 0
    captured = capsys.readouterr()
    csv, png, stats = captured.out.split()
    sim = pd.read_csv(csv, index_col=0)
    assert list(sim.index) == LANGS
    assert Path(png).stat().st_size > 0
    assert set(pd.read_csv(stats).labelling) == {"family", "branch", "script"}
    assert "statistics leave out ['nl']" in captured.err  # in no table: no family


def test_prune_writes_a_hugging_face_folder(model_dir, tmp_path, capsys) -> None:
    out = tmp_path / "fr-pruned"
    assert cli.main(["prune", "--language", "ru", "--keep", "0.5",
                     *_common(model_dir, CORPUS, out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    for name in ("config.json", "model.safetensors", "tokenizer.json", "babel_pruned.json"):
        assert (out / name).is_file()
    assert json.loads((out / "babel_pruned.json").read_text())["kept_share"] == pytest.approx(0.5)
    from babel.models.surgery import ffn_sizes, load_pruned

    assert ffn_sizes(load_pruned(out)) and sum(ffn_sizes(load_pruned(out))) == 3 * 64 // 2


def test_prune_with_a_method_and_compensation(model_dir, tmp_path) -> None:
    """--score/--allocation/--compensation: the tiny Llama carries the bias as mlp_bias, so
    the folder's plain load equals babel's; uniform keeps the same count in every layer."""
    out = tmp_path / "en-energy"
    assert cli.main(["prune", "--language", "en", "--keep", "0.5", "--score", "energy",
                     "--allocation", "uniform", "--compensation", "mean",
                     *_common(model_dir, CORPUS, out)]) == 0
    meta = json.loads((out / "babel_pruned.json").read_text())
    assert meta["method"] == "energy · mean · uniform" and meta["compensation_layout"] == "mlp_bias"
    from transformers import AutoModelForCausalLM

    from babel.models.surgery import ffn_sizes, load_pruned

    assert ffn_sizes(load_pruned(out)) == [32, 32, 32]
    plain = AutoModelForCausalLM.from_pretrained(out).eval()
    ids = torch.tensor([[1, 40, 50, 60, 70]])
    with torch.no_grad():
        torch.testing.assert_close(plain(input_ids=ids).logits,
                                   load_pruned(out)(input_ids=ids).logits, rtol=1e-5, atol=1e-5)


def test_unknown_option_suggests_the_closest(capsys) -> None:
    assert cli.main(["profile", "--model", "x", "--langauges", "en"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "did you mean --languages?" in err


@pytest.mark.parametrize("command", ["profile", "families", "prune"])
def test_every_subcommand_has_help(command, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main([command, "--help"])
    assert info.value.code == 0 and "--corpus" in capsys.readouterr().out


def test_bad_text_is_one_line_and_nothing_is_cached(model_dir, tmp_path, capsys) -> None:
    corpus = tmp_path / "texts"
    shutil.copytree(CORPUS, corpus)
    (corpus / "en.txt").write_text("Hi.\n", encoding="utf-8")
    assert cli.main(["profile", "--languages", "en,ru", *_common(model_dir, corpus,
                                                               tmp_path / "o")]) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after the loading progress bar
    assert last.startswith(f"error: {corpus / 'en.txt'}: only 3 tokens (at least 200 needed)")
    assert not [p for p in paths.cache_dir().rglob("*") if p.is_file() and p.suffix != ".lock"]


def test_profile_under_torchrun_equals_one_process(model_dir, tmp_path) -> None:
    """``torchrun --nproc_per_node 2 -m babel profile``: the same table as one process, written
    once (by rank 0)."""
    import os
    import subprocess
    import sys

    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "BABEL_CACHE_DIR": str(tmp_path / "cache-2"), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([str(torchrun), "--nproc_per_node", "2", "-m", "babel", "profile",
                          *_common(model_dir, CORPUS, tmp_path / "two")],
                         capture_output=True, text=True, env=env, timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert cli.main(["profile", *_common(model_dir, CORPUS, tmp_path / "one")]) == 0
    (two,) = (tmp_path / "two").glob("*.parquet")
    (one,) = (tmp_path / "one").glob("*.parquet")
    assert pd.read_parquet(two).equals(pd.read_parquet(one))
    assert out.stdout.count(".parquet") == 1  # printed (and written) by rank 0 only
