"""Your own text and your own model through notebooks 02 → 03 → 04 (smoke parameters).

A tiny random Llama saved with ``save_pretrained`` (``-p model DIR``), the four-language test
folder (``-p corpus_path DIR``: English, Russian, Dutch — in no table — and the made-up ``qaa``
of the user's ``languages.csv``, ``-p languages_csv FILE``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from babel.core.notebook import read_records, run_notebook

CORPUS = Path(__file__).parents[1] / "data" / "user_corpus"
CHAIN = ("02_activation_profiling", "03_language_families", "04_pruning")


@pytest.fixture(scope="module")
def user_chain(tiny_model_dir, tmp_path_factory) -> dict[str, tuple[dict, str]]:
    """``{notebook: (records, executed notebook text)}``."""
    root = tmp_path_factory.mktemp("user-chain")
    common = {"model": str(tiny_model_dir), "languages": "all", "corpus": "files",
              "corpus_path": str(CORPUS), "languages_csv": str(CORPUS / "languages.csv"),
              "n_experts": 8, "seq_len": 32, "batch_size": 4, "max_items": None}
    own = {"03_language_families": {"compare_models": [], "robustness_experts": [4],
                                    "robustness_languages": "all", "ablation_max_tokens": 100},
           "04_pruning": {"speed": {"models": [str(tiny_model_dir)], "shares": [0.6],
                                    "batch": 1, "seq_len": 16, "repeats": 1, "max_repeats": 2}}}
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        for var, sub in (("BABEL_CACHE_DIR", "cache"), ("BABEL_RESULTS_DIR", "results"),
                         ("BABEL_FIGURES_DIR", "figures")):
            mp.setenv(var, str(root / sub))
        for name in CHAIN:
            nb = run_notebook(name, params="smoke", overrides={**common, **own.get(name, {})},
                              output=root / f"{name}.ipynb")
            out[name] = (read_records(nb), nb.read_text())
    return out


def test_profiles_cover_every_file_of_the_folder(user_chain) -> None:
    rec, _ = user_chain["02_activation_profiling"]
    assert sorted(rec["tokens_per_language"]) == ["en", "nl", "qaa", "ru"]
    assert all(n >= 200 for n in rec["tokens_per_language"].values())
    assert rec["expert_classes"]["experts"] == 3 * 8  # the tiny model's 3 layers x E = 8
    assert len(rec["items_sha256"]) == 1


def test_families_leave_out_the_language_without_genealogy(user_chain) -> None:
    rec, text = user_chain["03_language_families"]
    assert "the family statistics leave out ['nl']" in text  # Dutch: detected, no family
    (clusters,) = [v for k, v in rec.items() if k.endswith("/clusters")]
    assert len(clusters["family"]) == 3  # en, qaa (the user's table), ru
    assert rec["mantel_dropped"] == ["qaa"]  # no URIEL entry for a made-up language


def test_pruning_runs_on_the_users_model_and_text(user_chain) -> None:
    rec, _ = user_chain["04_pruning"]
    assert list(rec["profiled_tokens"]) == ["en"]
    assert {row["k"] for row in rec["sweep"]} == {1.0, 0.6}
    check = rec["prune_equals_mask"]
    assert check["abs_diff"] == 0.0 and check["reload_max_logit_diff"] == 0.0
    assert check["params_pruned"] < check["params_dense"]
    assert rec["speed"] and rec["speed"][0]["dense_body_tok_s"] > 0
