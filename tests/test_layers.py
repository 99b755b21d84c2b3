"""srlrfr's imports form layers (srlrfr.layers): no cycle, nothing imported from a higher layer,
and a function imports a module itself only to defer a slow one (srlrfr.layers.DEFERRED).

Read from the source with ast, so every import counts, function-local ones
included, and nothing is imported to check it.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from srlrfr.layers import DEFERRED, LAYERS

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


def _local_nodes(tree: ast.AST) -> set[int]:
    """ids of the import statements inside a function."""
    return {id(sub) for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            for sub in ast.walk(node) if isinstance(sub, (ast.Import, ast.ImportFrom))}


def _statements(module: str, path: Path, is_package: bool) -> list[tuple[int, int, bool, set[str]]]:
    """(first line, last line, inside a function?, modules) of every import statement in ``path``: srlrfr modules with
    relative imports resolved, other packages by their top name."""
    package = module if is_package else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    local = _local_nodes(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(filter(None, [*package.split(".")[:len(package.split(".")) - node.level + 1], base]))
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        else:
            continue
        found.append((node.lineno, node.end_lineno, id(node) in local,
                      {_target(n) if n.split(".")[0] == "srlrfr" else n.split(".")[0] for n in names}))
    return found


def _loads(module: str, target: str) -> set[str]:
    """What importing srlrfr module ``target`` from ``module`` runs: a.b.c runs a and a.b first (their
    ``__init__``), unless ``module`` lies inside them."""
    parts = target.split(".")
    steps = {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
    return {s for s in steps if s != module and not (module + ".").startswith(s + ".")}


STATEMENTS = {m: _statements(m, path, is_package) for m, (path, is_package) in MODULES.items()}
GRAPH = {m: {(loaded, line) for line, _, _, targets in statements for t in targets if t in MODULES
             for loaded in _loads(m, t)} for m, statements in STATEMENTS.items()}


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
    assert "srlrfr.models.srnet" in {t for t, _ in GRAPH["srlrfr.methods"]}  # inside restore()


def test_slow_follows_tops_and_package_inits():
    assert _slow("srlrfr.registry") == set()
    assert "torch" in _slow("srlrfr.training.pyramid")  # numpy only, but srlrfr/training/__init__ loads the loop
    assert "torch" not in _slow("srlrfr.methods")  # torch only inside restore()
    assert _slow("cv2") == {"cv2"} and _slow("json") == set()


def test_layer_of_a_module():
    assert LAYERS[_layer("srlrfr.models.fnets.sphereface")][0] == "libraries"
    assert LAYERS[_layer("srlrfr")][0] == "base"
    assert _layer("srlrfr.not_placed_yet") is None


def _slow(module: str, seen: frozenset = frozenset()) -> set[str]:
    """Which of DEFERRED importing ``module`` loads: itself, or for a srlrfr module what its file's
    top (not its functions) and its packages' ``__init__`` import, transitively."""
    if module not in MODULES:
        return {module} & DEFERRED
    tops = set().union(*[targets for _, _, local, targets in STATEMENTS[module] if not local])
    loaded = {x for t in tops & MODULES.keys() for x in _loads(module, t)} | _loads("", module) - {module}
    return (tops & DEFERRED).union(*[_slow(t, seen | {module}) for t in loaded if t not in seen])


def _commented(module: str, line: int) -> bool:
    """A comment on the import's lines, or on the line above the run of imports it belongs to."""
    spans = {first: last for first, last, _, _ in STATEMENTS[module]}
    ends = {last: first for first, last in spans.items()}
    lines = MODULES[module][0].read_text(encoding="utf-8").splitlines()
    if any("#" in text for text in lines[line - 1:spans[line]]):
        return True
    while line - 1 in ends:
        line = ends[line - 1]
    return lines[line - 2].strip().startswith("#")


def test_function_local_imports_only_defer_heavy_ones():
    """A function imports a module itself only to defer a slow or optional one (DEFERRED) that its
    file's top does not load already, saying so in a comment on that line or above the run of imports
    it belongs to; every other import goes to the file's top."""
    problems = []
    for m, statements in STATEMENTS.items():
        where = str(MODULES[m][0].relative_to(PACKAGE.parent))
        already = _slow(m)  # what the file's own top loads
        for line, _, local, targets in sorted(statements):
            if not local:
                continue
            deferred = set().union(*[_slow(t) for t in targets]) - already
            if not deferred:
                problems.append(f"{where}:{line} imports {', '.join(sorted(targets))} inside a function, which "
                                f"defers nothing slow (srlrfr.layers.DEFERRED) this file's top does not load: "
                                f"import at the top")
            elif not _commented(m, line):
                problems.append(f"{where}:{line} defers {', '.join(sorted(deferred))}: say so in a comment on the "
                                f"line or above the imports")
    assert not problems, "\n  ".join(["function-local imports:", *problems])
