"""Faults injected into cached partitions, profiles and model caches: each is caught, moved aside
with a warning naming the file and the reason, and rebuilt bit for bit; or a one-line error."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

import babel.core.cache as cache_mod
from babel.construct.partition import Partition, build_partition, get_partition
from babel.core import paths
from babel.core.artifacts import sha256_file, write_json, write_npz
from babel.core.cache import CacheError, CacheWarning, read_meta, save_arrays
from babel.core.config import PartitionConfig, ProfileConfig
from babel.models import loading
from babel.profile.cache import load_meta, profile_file_for, profile_language
from babel.profile.profiler import PROFILE_ARRAYS

PCFG = PartitionConfig(n_experts=8, method="random", seed=1)
CFG = ProfileConfig(max_tokens=64, seq_len=32)


class _Killed(BaseException):
    """Stands for SIGKILL between the data write and the metadata write."""


def _truncate(f: Path) -> None:
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])


def _noise(f: Path) -> None:
    f.write_bytes(np.random.default_rng(0).bytes(f.stat().st_size))


def _garbage_text(f: Path) -> None:
    f.write_bytes(b"\xff\xfe\x00garbage\x81")


def _kill_between_writes(monkeypatch, call) -> None:
    """Run ``call`` with the metadata write killed: the data is in place, its metadata is not."""
    def killed(*a, **k):
        raise _Killed

    with monkeypatch.context() as m:
        m.setattr(cache_mod, "write_json", killed)
        with pytest.raises(_Killed):
            call()


def _moved_aside(folder: Path, name: str) -> list[Path]:
    return sorted(folder.glob(f"{name}.bad-*"))


# ---------------------------------------------------------------- partitions


def _part_folder() -> Path:
    return paths.partition_dir("tiny-llama", PCFG.key)


def _retamper_partition(labels: np.ndarray, meta_changes: dict) -> None:
    """Write a wrong partition whose sha256 and shapes are consistent (a tampered cache)."""
    folder = _part_folder()
    meta = read_meta(folder / "config.json")
    for k in ("files", "arrays"):
        meta.pop(k)
    save_arrays(folder / "partition.npz", folder / "config.json", meta | meta_changes,
                labels=labels)


def _unbalance(folder: Path) -> None:
    with np.load(folder / "partition.npz") as z:
        labels = z["labels"].copy()
    labels[1, labels[1] == 3] = 4  # expert 3 of layer 1 emptied into expert 4
    _retamper_partition(labels, {})


def _drop_layer(folder: Path) -> None:
    with np.load(folder / "partition.npz") as z:
        labels = z["labels"][:2].copy()
    _retamper_partition(labels, {"n_layers": 2})


def _old_format(folder: Path) -> None:  # written before hashes were recorded
    meta = read_meta(folder / "config.json")
    with np.load(folder / "partition.npz") as z:
        labels = z["labels"].copy()
    write_npz(folder / "partition.npz", labels=labels)
    write_json(folder / "config.json", {k: v for k, v in meta.items()
                                        if k not in ("files", "arrays")})


PARTITION_FAULTS = {
    "truncate data": (lambda d: _truncate(d / "partition.npz"),
                      r"partition\.npz does not match the sha256"),
    "noise data": (lambda d: _noise(d / "partition.npz"),
                   r"partition\.npz does not match the sha256"),
    "garbage metadata": (lambda d: _garbage_text(d / "config.json"),
                         r"config\.json is unreadable \(UnicodeDecodeError\)"),
    "truncated metadata": (lambda d: _truncate(d / "config.json"),
                           r"config\.json is unreadable \(JSONDecodeError\)"),
    "missing metadata": (lambda d: (d / "config.json").unlink(),
                         r"partition\.npz has no metadata config\.json"),
    "missing data": (lambda d: (d / "partition.npz").unlink(),
                     r"partition\.npz is missing"),
    "unbalanced labels": (_unbalance, r"partition\.npz: layer 1 is unbalanced"),
    "wrong layer count": (_drop_layer, r"partition\.npz has 2 layers, the model has 3"),
    "no hashes (older cache)": (_old_format, r"config\.json records no sha256"),
}


@pytest.mark.parametrize("fault", list(PARTITION_FAULTS))
def test_partition_fault_is_moved_aside_and_rebuilt(tiny_llama, fault):
    inject, reason = PARTITION_FAULTS[fault]
    clean = get_partition(tiny_llama, PCFG)
    folder = _part_folder()
    inject(folder)
    with pytest.warns(CacheWarning, match=reason + r".*moved aside as .*\.bad-"):
        again = get_partition(tiny_llama, PCFG)
    assert np.array_equal(again.labels, clean.labels)
    assert again.labels.dtype == clean.labels.dtype
    assert _moved_aside(folder, "partition.npz") or _moved_aside(folder, "config.json")
    reread = Partition.load(folder, expect_sha256=clean.weights_sha256, n_layers=3, n_neurons=64)
    assert np.array_equal(reread.labels, clean.labels)  # the rebuilt files are sound


def test_partition_killed_between_writes_is_rebuilt(tiny_llama, monkeypatch, capsys):
    clean = build_partition(tiny_llama, PCFG, model_name="tiny-llama")
    _kill_between_writes(monkeypatch, lambda: get_partition(tiny_llama, PCFG))
    folder = _part_folder()
    assert (folder / "partition.npz").exists() and not (folder / "config.json").exists()
    (folder / ".config.json.killed.tmp").write_text("{")  # what a SIGKILL leaves
    with pytest.warns(CacheWarning, match=r"partition\.npz has no metadata config\.json"):
        again = get_partition(tiny_llama, PCFG)
    assert np.array_equal(again.labels, clean.labels)
    assert not list(folder.glob(".*.tmp"))
    assert "note: removing" in capsys.readouterr().err


def test_partition_load_errors_are_one_line(tmp_path, tiny_llama):
    build_partition(tiny_llama, PCFG).save(tmp_path / "p")
    _truncate(tmp_path / "p" / "partition.npz")
    with pytest.raises(CacheError, match="partition.npz does not match") as err:
        Partition.load(tmp_path / "p")
    assert "\n" not in str(err.value)


# ---------------------------------------------------------------- profiles


def _profile_paths(part) -> tuple[Path, Path]:
    en = profile_file_for("tiny-llama", part, CFG, "en")
    return en, en.with_name("fr.npz")


def _swap_both(en: Path, fr: Path) -> None:
    shutil.copyfile(fr, en)
    shutil.copyfile(fr.with_suffix(".json"), en.with_suffix(".json"))


def _wrong_layers(en: Path, fr: Path) -> None:
    meta = read_meta(en.with_suffix(".json"))
    with np.load(en) as z:
        arrays = {k: z[k][:, :2] if k == "chunk_counts" else z[k][:2] for k in PROFILE_ARRAYS
                  if k != "chunk_tokens"} | {"chunk_tokens": z["chunk_tokens"]}
    save_arrays(en, en.with_suffix(".json"),
                {k: v for k, v in meta.items() if k not in ("files", "arrays")}, **arrays)


PROFILE_FAULTS = {
    "truncate data": (lambda en, fr: _truncate(en), r"en\.npz does not match the sha256"),
    "noise data": (lambda en, fr: _noise(en), r"en\.npz does not match the sha256"),
    "garbage metadata": (lambda en, fr: _garbage_text(en.with_suffix(".json")),
                         r"en\.json is unreadable \(UnicodeDecodeError\)"),
    "truncated metadata": (lambda en, fr: _truncate(en.with_suffix(".json")),
                           r"en\.json is unreadable \(JSONDecodeError\)"),
    "missing metadata": (lambda en, fr: en.with_suffix(".json").unlink(),
                         r"en\.npz has no metadata en\.json"),
    "fr data over en": (lambda en, fr: shutil.copyfile(fr, en),
                        r"en\.npz does not match the sha256"),
    "fr data and metadata over en": (_swap_both, r"en\.json belongs to fr\.npz, not en\.npz"),
    "wrong layer count": (_wrong_layers, r"en\.npz has 2 layers, the partition has 3"),
}


@pytest.fixture
def clean_profiles(tiny_llama, byte_tokenizer):
    part = get_partition(tiny_llama, PCFG)
    profs = {lang: profile_language(tiny_llama, byte_tokenizer, part, lang, CFG, progress=False)
             for lang in ("en", "fr")}
    return part, profs


def _same(a, b) -> bool:
    return all(np.array_equal(getattr(a, k), getattr(b, k)) and
               getattr(a, k).dtype == getattr(b, k).dtype for k in PROFILE_ARRAYS) \
        and (a.lang, a.items_sha256) == (b.lang, b.items_sha256)


@pytest.mark.parametrize("fault", list(PROFILE_FAULTS))
def test_profile_fault_is_moved_aside_and_rebuilt(tiny_llama, byte_tokenizer, clean_profiles,
                                                  fault):
    inject, reason = PROFILE_FAULTS[fault]
    part, clean = clean_profiles
    en, fr = _profile_paths(part)
    inject(en, fr)
    with pytest.warns(CacheWarning, match=reason + r".*moved aside as .*\.bad-"):
        again = profile_language(tiny_llama, byte_tokenizer, part, "en", CFG, progress=False)
    assert _same(again, clean["en"])
    assert _moved_aside(en.parent, "en.npz") or _moved_aside(en.parent, "en.json")
    assert load_meta(en)["lang"] == "en"
    fr_again = profile_language(tiny_llama, byte_tokenizer, part, "fr", CFG, progress=False)
    assert _same(fr_again, clean["fr"])  # the other language was not touched


def test_profile_killed_between_writes_is_rebuilt(tiny_llama, byte_tokenizer, clean_profiles,
                                                  monkeypatch):
    part, clean = clean_profiles
    en, _ = _profile_paths(part)
    run = lambda: profile_language(tiny_llama, byte_tokenizer, part, "en", CFG,
                                   progress=False, refresh=True)
    _kill_between_writes(monkeypatch, run)  # a refresh killed: the same bytes, old metadata
    again = profile_language(tiny_llama, byte_tokenizer, part, "en", CFG, progress=False)
    assert _same(again, clean["en"])
    _noise(en)  # a refresh killed after writing other data: its sha256 is not the recorded one
    with pytest.warns(CacheWarning, match=r"en\.npz does not match the sha256 in en\.json"):
        again = profile_language(tiny_llama, byte_tokenizer, part, "en", CFG, progress=False)
    assert _same(again, clean["en"])
    en.unlink(), en.with_suffix(".json").unlink()
    _kill_between_writes(monkeypatch, run)  # first write: data without metadata
    with pytest.warns(CacheWarning, match=r"en\.npz has no metadata en\.json"):
        again = profile_language(tiny_llama, byte_tokenizer, part, "en", CFG, progress=False)
    assert _same(again, clean["en"])


def test_profile_is_reused_without_warnings(tiny_llama, byte_tokenizer, clean_profiles,
                                            monkeypatch, recwarn):
    import babel.profile.cache as prof

    part, clean = clean_profiles
    monkeypatch.setattr(prof, "profile_chunks", lambda *a, **k: pytest.fail("recomputed"))
    again = profile_language(tiny_llama, byte_tokenizer, part, "en", CFG, progress=False)
    assert _same(again, clean["en"])
    assert not [w for w in recwarn if issubclass(w.category, CacheWarning)]


def test_load_meta_error_is_one_line(tiny_llama, clean_profiles):
    part, _ = clean_profiles
    en, _ = _profile_paths(part)
    _truncate(en.with_suffix(".json"))
    with pytest.raises(CacheError, match=r"en\.json is unreadable"):
        load_meta(en)


# ---------------------------------------------------------------- model cache and messages


def _fake_build(name: str, cache: Path) -> None:
    tmp = cache.parent / f".{cache.name}.building-{os.getpid()}"
    tmp.mkdir()
    (tmp / "model.safetensors").write_bytes(b"weights")
    (tmp / loading.META_FILE).write_text(json.dumps({
        "format": loading.CACHE_FORMAT,
        "files": {"model.safetensors": sha256_file(tmp / "model.safetensors")}}))
    if cache.exists():
        shutil.rmtree(cache)
    tmp.rename(cache)


def test_truncated_model_meta_is_rebuilt_with_a_warning(tmp_path, monkeypatch):
    monkeypatch.setenv("BABEL_MODELS_DIR", str(tmp_path))
    monkeypatch.setattr(loading, "_build_cache", _fake_build)
    cache = loading.embedded_model_path("gemma-3-270m")
    _truncate(cache / loading.META_FILE)
    with pytest.warns(UserWarning, match=r"babel_meta\.json is unreadable \(JSONDecodeError\)"):
        assert loading.embedded_model_path("gemma-3-270m") == cache
    assert loading._cache_is_valid(cache) == (True, "ok")


def test_killed_model_build_is_removed_at_start_with_a_note(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BABEL_MODELS_DIR", str(tmp_path))
    monkeypatch.setattr(loading, "_build_cache", _fake_build)
    loading.embedded_model_path("gemma-3-270m")
    stale = tmp_path / ".gemma-3-270m.building-killed"
    (stale / "gguf").mkdir(parents=True)
    loading.embedded_model_path("gemma-3-270m")  # the cache is valid: no build, still swept
    assert not stale.exists()
    err = capsys.readouterr().err
    assert ".gemma-3-270m.building-killed" in err and err.count("\n") == 1


def test_local_folder_without_weights_names_the_file(tmp_path, tiny_llama):
    tiny_llama.config.save_pretrained(tmp_path / "m")
    with pytest.raises(loading.ModelError, match=r"has no weights file .*model\.safetensors"):
        loading.load_model(str(tmp_path / "m"))
    tiny_llama.save_pretrained(tmp_path / "m")
    with pytest.raises(loading.ModelError, match=r"has no tokenizer file .*tokenizer\.json"):
        loading.load_model(str(tmp_path / "m"))


@pytest.mark.parametrize("err, offline, expected", [
    (ImportError("requires the protobuf library; run `pip install protobuf`"), "1",
     "a package is missing .*`pip install protobuf`"),
    (ModuleNotFoundError("No module named 'accelerate'", name="accelerate"), "1",
     "`pip install accelerate`"),
    (OSError("We couldn't connect to 'https://huggingface.co' to load the files"), "1",
     "not in the local hub cache and HF_HUB_OFFLINE is set"),
    (OSError("We couldn't connect to 'https://huggingface.co' to load the files"), "",
     "the Hugging Face hub is not reachable"),
    (OSError("someorg/x is not a local folder and is not a valid model identifier"), "",
     "is not a model on the Hugging Face hub"),
])
def test_hub_and_package_errors_name_the_cause(monkeypatch, err, offline, expected):
    from transformers import AutoModelForCausalLM

    def fail(*a, **k):
        raise err

    monkeypatch.setenv("HF_HUB_OFFLINE", offline)
    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", fail)
    with pytest.raises(loading.ModelError, match=expected) as info:
        loading.load_model("someorg/x")
    assert "\n" not in str(info.value)
    assert re.search("not reachable", str(info.value)) is None or offline == ""
