"""Notebook 02's summaries: tokens per language, deviations, class findings, the paper text."""
from __future__ import annotations

import numpy as np
import pytest

from babel.construct.partition import build_partition
from babel.core.config import PartitionConfig, ProfileConfig
from babel.profile import summary
from babel.profile.cache import profile_languages
from babel.profile.classes import classify_experts


def _planted():
    f = np.full((4, 2, 5), 0.2)
    f[:, 0, 0] = 0.9  # co-activated
    f[:, 1, 4] = 0.01  # rare
    f[2, 1, 2] = 0.8  # specific to language 2
    return f


def test_language_summary_reads_the_cached_profiles(tiny_llama, byte_tokenizer):
    part = build_partition(tiny_llama, PartitionConfig(n_experts=8))
    cfg = ProfileConfig(max_tokens=64, seq_len=32)
    profile_languages(tiny_llama, byte_tokenizer, part, ["en", "ar"], cfg, progress=False)
    df = summary.language_summary("tiny-llama", part, cfg, ["en", "ar"])
    assert list(df.index) == ["en", "ar"]
    assert df.tokens.tolist() == [64, 64]  # the budget, BOS excluded
    assert df.family.tolist() == ["Indo-European", "Afro-Asiatic"]
    assert df.script.tolist() == ["Latn", "Arab"]
    assert (df.seconds >= 0).all() and (df.tokens_per_second > 0).all()


def test_mean_abs_deviation_on_planted_frequencies():
    f = np.zeros((3, 1, 4))
    f[2, 0, 0] = 0.3  # language c differs on one of four experts
    dev = summary.mean_abs_deviation(f, ["a", "b", "c"])
    assert dev.index[0] == "c" and dev["c"] == pytest.approx(0.2 / 4)
    assert dev["a"] == pytest.approx(0.1 / 4) and dev["b"] == pytest.approx(0.1 / 4)


def test_class_findings_and_specific_per_language():
    c = classify_experts(_planted(), high=0.2, low=0.05, z=3.0)
    found = summary.class_findings(c)
    assert found == {"experts": 10, "co_activated": 9, "co_activated_share": 0.9, "rare": 1,
                     "rare_share": 0.1, "specific_any": 1, "high": 0.2, "low": 0.05,
                     "specific_z": 3.0}
    assert summary.specific_per_language(c, ["a", "b", "c", "d"]) == {
        "a": 0, "b": 0, "c": 1, "d": 0}


@pytest.mark.parametrize(("share", "verdict"), [
    (0.5, "about half, as in the paper"), (0.1, "far fewer than the paper's ~half"),
    (0.8, "more than the paper's ~half")])
def test_paper_comparison_verdicts(share, verdict):
    found = {"experts": 1000, "co_activated": int(share * 1000), "co_activated_share": share,
             "rare": 25, "rare_share": 0.025, "specific_any": 7, "high": 0.2, "low": 0.05,
             "specific_z": 3.0}
    text = summary.paper_comparison(found, model="m", n_languages=4)
    lines = text.splitlines()
    assert len(lines) == 3 and lines[0].endswith(verdict + ".")
    assert f"{int(share * 1000)} of 1000 experts ({share:.1%})" in lines[0]
    assert "25 experts (2.5%) are rare" in lines[1] and "12.2%" in lines[1]  # 1000 / 8192
    assert lines[2].startswith("7 experts are specific")
