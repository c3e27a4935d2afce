"""Every notebook is thin and declares the experiment's common parameters, so overrides flow."""

from __future__ import annotations

import ast

import pytest
import yaml

from babel.core import paths
from babel.core.notebook import notebook_names
from babel.experiment import COMMON_PARAMETERS

#: code lines per notebook, per code cell, and in the parameters cell (literals only: the
#: 19 common parameters plus a notebook's own)
MAX_CODE_LINES, MAX_CELL_LINES, MAX_PARAMETER_LINES = 150, 25, 30


def _cells(name: str) -> list[tuple[str, list[str]]]:
    """``(header, lines)`` per jupytext cell of ``notebooks/<name>.py``."""
    cells: list[tuple[str, list[str]]] = []
    for line in (paths.NOTEBOOKS_DIR / f"{name}.py").read_text().splitlines():
        if line.startswith("# %%"):
            cells.append((line, []))
        elif cells:
            cells[-1][1].append(line)
    return cells


def _code_lines(lines: list[str]) -> int:
    return sum(1 for ln in lines if ln.strip() and not ln.lstrip().startswith("#"))


@pytest.mark.parametrize("name", notebook_names())
def test_notebook_is_thin(name: str) -> None:
    code = [(h, c) for h, c in _cells(name) if "markdown" not in h]
    sizes = [_code_lines(c) for _, c in code]
    assert sum(sizes) <= MAX_CODE_LINES, f"{name}: {sum(sizes)} code lines"
    params = [_code_lines(c) for h, c in code if "parameters" in h]
    logic = [_code_lines(c) for h, c in code if "parameters" not in h]
    assert len(params) == 1 and params[0] <= MAX_PARAMETER_LINES, f"{name}: parameters {params}"
    assert max(logic) <= MAX_CELL_LINES, f"{name}: a code cell of {max(logic)} lines"


@pytest.mark.parametrize("name", notebook_names())
def test_parameters_cell_declares_the_experiment(name: str) -> None:
    cell = next(c for h, c in _cells(name) if 'tags=["parameters"]' in h)
    values = {}
    for node in ast.parse("\n".join(cell)).body:
        assert isinstance(node, ast.Assign), f"{name}: the parameters cell holds only literals"
        values[node.targets[0].id] = ast.literal_eval(node.value)
    missing = sorted(set(COMMON_PARAMETERS) - set(values))
    assert not missing, f"{name} does not declare {missing}"
    assert {k: values[k] for k in COMMON_PARAMETERS} == COMMON_PARAMETERS
    setup = "\n".join(ln for h, c in _cells(name) if "markdown" not in h for ln in c)
    assert "ExperimentConfig.from_namespace(globals())" in setup


def test_parameter_sets_give_every_common_parameter() -> None:
    default = yaml.safe_load((paths.PARAMS_DIR / "default.yaml").read_text())
    assert default["common"] == COMMON_PARAMETERS
    for f in paths.PARAMS_DIR.glob("*.yaml"):
        common = yaml.safe_load(f.read_text())["common"]
        assert set(common) == set(COMMON_PARAMETERS), f.name
