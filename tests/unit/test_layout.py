"""The package is laid out by stage: imports go downward only, never from inside a function."""

from __future__ import annotations

import ast
from pathlib import Path

from babel.core import paths

PACKAGE = paths.PROJ_ROOT / "babel"
# Stage order: a module may import modules of its own layer or of a lower one.
LAYERS = {"core": 0, "data": 1, "models": 2, "construct": 3, "profile": 4, "families": 5,
          "prune": 5, "figures": 6, "experiment": 7, "results": 7, "report": 8, "cli": 9,
          "__main__": 10, "__init__": 0}


def _modules() -> dict[str, Path]:
    out = {}
    for f in PACKAGE.rglob("*.py"):
        rel = f.relative_to(PACKAGE.parent).with_suffix("")
        name = ".".join(rel.parts).removesuffix(".__init__")
        out[name] = f
    return out


def _babel_imports(tree: ast.AST) -> list[tuple[str, ast.AST]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "babel":
            for alias in node.names:
                found.append((f"{node.module}.{alias.name}", node))
        elif isinstance(node, ast.Import):
            found += [(a.name, node) for a in node.names if a.name.split(".")[0] == "babel"]
    return found


def _layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS[parts[1]] if len(parts) > 1 else 0


def _resolve(target: str, modules: dict[str, Path]) -> str:
    """``babel.core.paths`` (a module) or ``babel.core.config.PartitionConfig`` (a name)."""
    while target not in modules and "." in target:
        target = target.rsplit(".", 1)[0]
    return target


def test_no_babel_import_inside_a_function() -> None:
    offenders = []
    for name, f in _modules().items():
        tree = ast.parse(f.read_text())
        for fn in ast.walk(tree):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                offenders += [f"{name}:{node.lineno} {t}" for t, node in _babel_imports(fn)]
    assert not offenders, offenders


def test_imports_go_downward_and_have_no_cycle() -> None:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    upward = []
    for name, f in modules.items():
        deps = {_resolve(t, modules) for t, _ in _babel_imports(ast.parse(f.read_text()))}
        deps.discard(name)
        graph[name] = deps
        upward += [f"{name} -> {d}" for d in deps if d != "babel" and _layer(d) > _layer(name)]
    assert not upward, f"imports from a higher stage: {upward}"
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for dep in graph.get(node, ()):
            if state.get(dep) == 1:
                raise AssertionError(f"import cycle: {' -> '.join([*stack, node, dep])}")
            if dep not in state:
                visit(dep, [*stack, node])
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, [])


def test_every_stage_folder_is_known() -> None:
    stages = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert stages <= set(LAYERS), stages - set(LAYERS)
