"""Known answers for :func:`babel.construct.partition.get_partition`: what it hands to
``build_partition``, that a second call reads the cache instead of building again, and that a
cached partition of another width (same weights hash, a tampered file) is moved aside."""

from __future__ import annotations

import numpy as np
import pytest

from babel.construct import partition
from babel.core import paths
from babel.core.config import PartitionConfig
from babel.models.ffn import ffn_layers


def _spy(monkeypatch):
    calls, real = [], partition.build_partition

    def spy(model, cfg, **kw):
        calls.append(kw)
        return real(model, cfg, model_name=kw["model_name"])

    monkeypatch.setattr(partition, "build_partition", spy)
    return calls


def test_builds_once_with_the_callers_settings(tiny_llama, monkeypatch):
    """The first call builds with the caller's name, calibration and workers (recorded as
    given); the second reads the cache: still one build, same labels, the name recorded."""
    calls = _spy(monkeypatch)
    cfg = PartitionConfig(n_experts=8, method="random", seed=3)
    calibration = object()  # passed through untouched (random partitions ignore it)
    p1 = partition.get_partition(tiny_llama, cfg, model_name="custom", calibration=calibration,
                                 workers=1)
    assert calls == [{"model_name": "custom", "calibration": calibration, "workers": 1}]
    assert p1.model == "custom"
    p2 = partition.get_partition(tiny_llama, cfg, model_name="custom")
    assert len(calls) == 1
    assert p2.model == "custom" and np.array_equal(p2.labels, p1.labels)


def test_cached_partition_of_another_width_is_moved_aside(tiny_llama):
    """A cached file with this model's weights hash but half its neurons per layer (balanced
    labels, 8 experts) is refused by its width: moved aside with a warning and built again."""
    cfg = PartitionConfig(n_experts=8, method="random", seed=3)
    n_layers, n = len(ffn_layers(tiny_llama)), ffn_layers(tiny_llama)[0].n_neurons
    built = partition.build_partition(tiny_llama, cfg, model_name="custom")
    narrow = np.tile(np.repeat(np.arange(8), n // 16), (n_layers, 1))
    fake = partition.Partition(cfg, "custom", narrow, built.weights_sha256)
    folder = paths.partition_dir("custom", cfg.key)
    fake.save(folder)
    with pytest.warns(UserWarning):
        got = partition.get_partition(tiny_llama, cfg, model_name="custom")
    assert got.labels.shape == (n_layers, n)
    np.testing.assert_array_equal(got.labels, built.labels)


def test_build_time_is_recorded_to_the_hundredth(tiny_llama, monkeypatch):
    """A fake clock reads 10.0 s at the start and 11.23456 s afterwards: the partition records
    1.23 s (rounded to two decimals, not 1, 1.235 or 0)."""
    ticks = iter([10.0])
    monkeypatch.setattr(partition.time, "perf_counter", lambda: next(ticks, 11.23456))
    part = partition.build_partition(tiny_llama, PartitionConfig(n_experts=8, method="random"))
    assert part.seconds == 1.23


def test_coactivation_without_calibration_text_is_refused(tiny_llama):
    """method='coactivation' clusters co-firing counts, which need calibration text: without
    it the build stops with the fix, before any clustering."""
    with pytest.raises(ValueError, match=r"method='coactivation' needs calibration="):
        partition.build_partition(tiny_llama, PartitionConfig(n_experts=8,
                                                              method="coactivation"))
