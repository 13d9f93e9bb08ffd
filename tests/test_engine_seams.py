"""The engine's import graph has no cycle: the worker gets what it needs from the
TaskManager (a handler registry, an emitter), it never reaches back for it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import django_remq.core

pytestmark = pytest.mark.unit

CORE = Path(django_remq.core.__file__).resolve().parent


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, TYPE_CHECKING blocks included (relative names kept)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or ""))
            names.update("." * node.level + a.name for a in node.names if not node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_nothing_below_the_task_manager_imports_it():
    below = [*sorted((CORE / "worker").glob("*.py")), CORE / "handlers.py"]
    offenders = {p.name: sorted(m for m in imported_modules(p) if m.endswith("task_manager"))
                 for p in below}
    assert {name: mods for name, mods in offenders.items() if mods} == {}
    assert len(below) > 5  # the scan saw the worker package


def test_the_scan_sees_type_checking_imports(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                      "    from ..task_manager import TaskManager\n")
    assert "..task_manager" in imported_modules(sample)
