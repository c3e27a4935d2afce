"""One smoke run of 02 → 03 → 04 with an override, shared by the notebook tests.

The chain runs once per session in its own folders (cache, results, figures). Between the
notebooks it snapshots the profiles 02 wrote, so the chain test can assert that 03 and 04
reused them; the per-notebook tests read the same executed copies.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from babel.core import paths
from babel.core.notebook import load_params, read_records, run_notebook
from babel.experiment import COMMON_PARAMETERS, ExperimentConfig

#: The override every notebook of the chain gets: it must reach all of them.
OVERRIDES = {"seq_len": 64}
CHAIN = ("02_activation_profiling", "03_language_families", "04_pruning")


@dataclasses.dataclass
class Chain:
    """The executed chain: records, parameters and folders of each notebook."""

    root: Path
    exp: ExperimentConfig
    records: dict[str, dict]
    params: dict[str, dict]
    snapshots: dict[str, dict]  # after each notebook: the main profiles' files

    @property
    def profiles(self) -> Path:
        return self.root / "cache" / "profiles" / paths.slug(self.exp.model) / paths.slug(
            f"{self.exp.partition.key}_{self.exp.profile.key}")

    def results_file(self, name: str) -> Path:
        return self.root / "results" / name


def _snapshot(folder: Path) -> dict:
    """The cached files (lock files of the cache layer hold no data: left out)."""
    return {f.name: (f.stat().st_mtime_ns, f.read_bytes()) for f in sorted(folder.iterdir())
            if f.suffix != ".lock"}


@pytest.fixture(scope="session")
def smoke_chain(tmp_path_factory) -> Chain:
    root = tmp_path_factory.mktemp("chain")
    params = {name: {**load_params("smoke", name), **OVERRIDES} for name in CHAIN}
    exp = ExperimentConfig.from_params(
        **{k: v for k, v in params[CHAIN[0]].items() if k in COMMON_PARAMETERS})
    chain = Chain(root, exp, {}, params, {})
    with pytest.MonkeyPatch.context() as mp:
        for var, sub in (("BABEL_CACHE_DIR", "cache"), ("BABEL_RESULTS_DIR", "results"),
                         ("BABEL_FIGURES_DIR", "figures")):
            mp.setenv(var, str(root / sub))
        for name in CHAIN:
            out = run_notebook(name, params="smoke", overrides=OVERRIDES,
                               output=root / f"{name}.ipynb")
            chain.records[name] = read_records(out)
            chain.snapshots[name] = _snapshot(chain.profiles)
    return chain
