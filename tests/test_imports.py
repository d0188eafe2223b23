"""The packages of cnnhw import each other in one direction only: the package graph (every
import, at module level or inside a function) has no cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import cnnhw

PACKAGE = Path(cnnhw.__file__).resolve().parent


def _unit(module: str) -> str:
    """The package (or top-level module) of ``cnnhw.a.b``: ``a``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every cnnhw module ``path`` imports, by absolute name."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("cnnhw"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("cnnhw"):
                found.add(target)
    return found


def package_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        source = _unit(_module_name(path))
        for target in _imports(path):
            unit = _unit(target)
            if unit != source:
                graph.setdefault(source, set()).add(unit)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of the graph as a list of nodes (first == last), or None."""
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        state[node] = "done"
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_finds_a_cycle_when_there_is_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}}) is None


def test_the_package_graph_has_no_cycle():
    graph = package_graph()
    assert "hardware" in graph and "gateware" in graph["hardware"]  # the graph is really read
    cycle = find_cycle(graph)
    assert cycle is None, "package import cycle: " + " -> ".join(cycle)


def test_the_layers_import_downwards():
    """The layering DESIGN.md describes: gateware knows no plan, no graph and no host; the
    hardware ops know no planner; the host (runtime) knows no gateware beyond the stream order."""
    graph = package_graph()
    assert not graph.get("gateware", set()) & {"plan", "hardware", "runtime", "verify", "golden", "sim", "flow"}
    assert not graph.get("hardware", set()) & {"plan", "runtime", "verify", "sim", "flow"}
    assert not graph.get("protocol", set()) & {"gateware", "runtime", "hardware"}
