"""srlrfr's imports form layers (srlrfr.layers): no cycle, nothing imported from a higher layer.

Read from the source with ast, so every import counts, function-local ones
included, and nothing is imported to check it.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from srlrfr.layers import LAYERS

PACKAGE = Path(__file__).resolve().parents[1] / "srlrfr"


def _modules() -> dict[str, tuple[Path, bool]]:
    """Dotted name -> (file, is a package)."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = ("srlrfr", *path.relative_to(PACKAGE).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return out


MODULES = _modules()


def _target(name: str) -> str:
    """The srlrfr module ``name`` (a module, or an attribute of one) loads."""
    while name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def _imports(module: str, path: Path, is_package: bool) -> set[tuple[str, int]]:
    """(srlrfr module imported, line) for every import in ``path``, relative ones resolved; importing
    a.b.c runs a and a.b first, so their ``__init__`` counts too (unless ``module`` lies inside)."""
    package = module if is_package else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(filter(None, [*package.split(".")[:len(package.split(".")) - node.level + 1], base]))
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        else:
            continue
        for name in names:
            if name.split(".")[0] != "srlrfr":
                continue
            target = _target(name)
            parts = target.split(".")
            for i in range(1, len(parts) + 1):
                step = ".".join(parts[:i])
                if step != module and not (module + ".").startswith(step + "."):
                    found.add((step, node.lineno))
    return found


GRAPH = {m: _imports(m, path, is_package) for m, (path, is_package) in MODULES.items()}


def _layer(module: str) -> int | None:
    """Index of the layer whose longest entry covers ``module`` (the root ``srlrfr`` covers only itself)."""
    covering = [(len(entry), i) for i, (_, entries) in enumerate(LAYERS) for entry in entries
                if module == entry or (entry != "srlrfr" and module.startswith(entry + "."))]
    return max(covering)[1] if covering else None


def test_every_module_has_a_layer():
    missing = sorted(m for m in MODULES if _layer(m) is None)
    assert not missing, f"modules in no layer of srlrfr/layers.py: {', '.join(missing)}; add each to its layer"


def test_no_import_from_a_higher_layer():
    upward = [f"{MODULES[m][0].relative_to(PACKAGE.parent)}:{line} imports {target} "
              f"({LAYERS[_layer(m)][0]} -> {LAYERS[_layer(target)][0]})"
              for m, imports in GRAPH.items() for target, line in sorted(imports)
              if _layer(m) is not None and _layer(target) is not None and _layer(target) > _layer(m)]
    assert not upward, "imports from a lower layer up to a higher one:\n  " + "\n  ".join(upward)


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as [a, b, ..., a], or None (depth-first, colouring nodes)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_no_import_cycle():
    cycle = _cycle({m: {t for t, _ in imports} for m, imports in GRAPH.items()})
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


@pytest.mark.parametrize("graph, expected", [
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
    ({"a": {"b"}, "b": {"c"}, "c": set()}, None),
    ({"a": {"a"}}, ["a", "a"]),
])
def test_cycle_finder_finds_cycles(graph, expected):
    assert _cycle(graph) == expected


def test_graph_sees_relative_local_and_package_imports():
    """The walk itself: function-local relative imports, ``from . import x``, and the package
    ``__init__`` an import runs."""
    assert "srlrfr.config" in {t for t, _ in GRAPH["srlrfr.paths"]}  # from .config import load_schema
    config = {t for t, _ in GRAPH["srlrfr.config"]}
    assert {"srlrfr.training", "srlrfr.training.pyramid"} <= config  # from .training.pyramid import ...
    assert "srlrfr.data.celeba" in {t for t, _ in GRAPH["srlrfr.data.catalog"]}  # from . import celeba, ...
    assert "srlrfr.training" not in {t for t, _ in GRAPH["srlrfr.training.loop"]}  # its own package


def test_layer_of_a_module():
    assert LAYERS[_layer("srlrfr.models.fnets.sphereface")][0] == "libraries"
    assert LAYERS[_layer("srlrfr")][0] == "base"
    assert _layer("srlrfr.not_placed_yet") is None
