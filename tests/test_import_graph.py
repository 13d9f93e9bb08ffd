"""The package's import graph has no cycle, and the engine imports only itself.

Every import counts: at module level, inside a function, under ``if TYPE_CHECKING:``.
A function-level import that dodges a cycle still makes the modules depend on each
other both ways, so neither can be read, tested or replaced alone.

Two rules, checked on the graph of django_remq's modules (relative imports resolved):

- no cycle of modules;
- no cycle among the parts of any package (its modules and subpackages, each taken
  whole): ``core.policies`` may not import ``core.worker`` while ``core.worker``
  imports ``core.policies``, even through modules that do not form a module cycle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import pytest

import django_remq

pytestmark = pytest.mark.unit

PACKAGE = Path(django_remq.__file__).resolve().parent

Graph = dict[str, set[str]]


def module_names(root: Path) -> dict[str, Path]:
    """Dotted name -> file of every module of the package at ``root``."""
    names = {}
    for path in sorted(root.rglob("*.py")):
        parts = [root.name, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def imports_of(name: str, path: Path, known: Iterable[str]) -> set[str]:
    """The package's modules that ``name`` imports anywhere in its file.

    ``from X import y`` counts as an import of ``X.y`` when that is a module, else of
    ``X``; ``import X.Y.z`` of the deepest module of the dotted name."""
    known = set(known)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = {module for node in ast.walk(ast.parse(path.read_text(), str(path)))
             for candidates in _candidates(node, package)
             for module in [c for c in candidates if c in known][:1]}
    return found - {name}


def _candidates(node: ast.AST, package: str) -> Iterator[list[str]]:
    """Per name an import statement loads: the modules it may be, best first."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            parts = alias.name.split(".")
            yield [".".join(parts[:n]) for n in range(len(parts), 0, -1)]
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
            base = ".".join([*anchor, base] if base else anchor)
        for alias in node.names:
            yield [f"{base}.{alias.name}", base]


def import_graph(root: Path) -> Graph:
    names = module_names(root)
    return {name: imports_of(name, path, names) for name, path in names.items()}


def cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """One cycle through each strongly connected part of ``graph``, as the nodes in
    import order, the first repeated at the end."""
    reach = {node: _reachable(graph, node) for node in graph}
    seen: set[str] = set()
    found = []
    for node in sorted(graph):
        if node in seen or node not in reach[node]:
            continue
        part = {other for other in reach[node] if node in reach[other]}
        seen |= part
        found.append(_cycle_in(graph, part))
    return found


def _reachable(graph: Mapping[str, Iterable[str]], start: str) -> set[str]:
    """Every node a path of one step or more leads to from ``start``."""
    found: set[str] = set()
    todo = list(graph.get(start, ()))
    while todo:
        node = todo.pop()
        if node not in found:
            found.add(node)
            todo.extend(graph.get(node, ()))
    return found


def _cycle_in(graph: Mapping[str, Iterable[str]], part: set[str]) -> list[str]:
    """A shortest cycle through the first node of a strongly connected ``part``."""
    start = min(part)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt_frontier = []
        for node in frontier:
            for nxt in sorted(graph.get(node, ())):
                if nxt == start:
                    return [*paths[node], start]
                if nxt in part and nxt not in paths:
                    paths[nxt] = [*paths[node], nxt]
                    nxt_frontier.append(nxt)
        frontier = nxt_frontier
    raise AssertionError(f"{sorted(part)} is not strongly connected")


def parts_graph(graph: Graph, package: str) -> Graph:
    """The graph of ``package``'s direct parts (a module, or a subpackage taken whole,
    its ``__init__`` a part of its own): A -> B when a module in A imports one in B."""

    def part(module: str) -> str | None:
        if module == package:
            return f"{package}.__init__"
        if not module.startswith(f"{package}."):
            return None
        return f"{package}.{module[len(package) + 1:].split('.')[0]}"

    parts: Graph = {}
    for module, targets in graph.items():
        source = part(module)
        if source is None:
            continue
        parts.setdefault(source, set()).update(
            t for t in map(part, targets) if t is not None and t != source)
    return parts


def shown(found: list[list[str]]) -> list[str]:
    return [" -> ".join(cycle) for cycle in found]


GRAPH = import_graph(PACKAGE)
PACKAGES = sorted(name for name, path in module_names(PACKAGE).items()
                  if path.name == "__init__.py")


def test_no_module_cycle() -> None:
    assert shown(cycles(GRAPH)) == []


@pytest.mark.parametrize("package", PACKAGES)
def test_no_cycle_among_the_parts_of(package: str) -> None:
    assert shown(cycles(parts_graph(GRAPH, package))) == []


def test_the_engine_imports_only_itself() -> None:
    """core/ is the engine, usable without Django: nothing of the Django layer in it."""
    outside = {f"{name} -> {target}" for name, targets in GRAPH.items()
               if name.startswith("django_remq.core") for target in targets
               if not target.startswith("django_remq.core")}
    assert sorted(outside) == []


def test_the_scan_sees_every_kind_of_import(tmp_path: Path) -> None:
    """Function-level and TYPE_CHECKING imports, relative ones from a module and from a
    package's ``__init__``, and a cycle through them."""
    root = tmp_path / "pkg"
    (root / "sub").mkdir(parents=True)
    (root / "__init__.py").write_text("from .sub import low\n")
    (root / "top.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                 "    from .sub.low import X\n")
    (root / "sub" / "__init__.py").write_text("from . import low\n")
    (root / "sub" / "low.py").write_text("def f():\n    import pkg.top\n")
    graph = import_graph(root)
    assert graph == {"pkg": {"pkg.sub.low"}, "pkg.top": {"pkg.sub.low"},
                     "pkg.sub": {"pkg.sub.low"}, "pkg.sub.low": {"pkg.top"}}
    assert cycles(graph) == [["pkg.sub.low", "pkg.top", "pkg.sub.low"]]
    assert cycles(parts_graph(graph, "pkg")) == [["pkg.sub", "pkg.top", "pkg.sub"]]


def test_the_scan_reads_the_whole_package() -> None:
    assert "django_remq.core.task_manager" in GRAPH["django_remq.core"]
    assert len(GRAPH) > 80


#: What each part of the package may import besides itself (docs/design.md, "The packages"):
#: a name stands for the module or the package of that name, under django_remq.
ENGINE_LEAVES = ("core.errors", "core.jsonutil", "core.options", "core.types", "core.loops")
MAY_IMPORT: dict[str, tuple[str, ...]] = {
    "core.errors": (), "core.jsonutil": (), "core.types": (), "core.loops": (),
    "core.options": ("core.errors",),
    "core.store": ENGINE_LEAVES,
    "core.policies": (*ENGINE_LEAVES, "core.store"),
    "core.sdk": (*ENGINE_LEAVES, "core.store"),
    "core.worker": (*ENGINE_LEAVES, "core.store", "core.policies", "core.handlers",
                    "core.settings"),
}
#: The Django layer's plug-ins: each reads the engine and the Django layer's core modules,
#: never another plug-in (apps.py, routing.py and the management commands put them together).
PLUGINS = ("admin_views", "consumers", "backends")


def _short(module: str) -> str:
    return module.removeprefix("django_remq.")


def _within(module: str, names: Iterable[str]) -> bool:
    return any(module == n or module.startswith(f"{n}.") for n in names)


@pytest.mark.parametrize("part", sorted(MAY_IMPORT))
def test_each_engine_part_imports_only_what_is_below_it(part: str) -> None:
    allowed = (part, *MAY_IMPORT[part])
    found = {f"{_short(m)} -> {_short(t)}" for m, targets in GRAPH.items()
             if _within(_short(m), [part]) for t in targets if not _within(_short(t), allowed)}
    assert sorted(found) == []


def test_plugins_never_import_each_other_and_the_layer_under_them_never_imports_them() -> None:
    wiring = ("apps", "routing", "management")
    found = set()
    for module, targets in GRAPH.items():
        name = _short(module)
        mine = [p for p in PLUGINS if _within(name, [p])]
        if _within(name, wiring) or name == "django_remq":
            continue
        for target in map(_short, targets):
            others = [p for p in PLUGINS if _within(target, [p]) and p not in mine]
            if others:
                found.add(f"{name} -> {target}")
    assert sorted(found) == []
