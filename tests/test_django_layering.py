"""The layering rules: the engine imports no Django; importing the package does nothing."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

CORE = Path(__file__).resolve().parent.parent / "django_remq" / "core"


def test_engine_imports_no_django() -> None:
    offenders = []
    modules = list(CORE.rglob("*.py"))
    assert len(modules) > 20  # the walk reaches the subpackages
    for path in modules:
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level
                     else [])
            offenders += [f"{path.relative_to(CORE)}: {n}" for n in names
                          if n.split(".")[0] in ("django", "channels")]
    assert offenders == []


def test_importing_the_package_reads_no_settings() -> None:
    """Nor do its public modules: ``django_remq.testing`` loads in every pytest run (it is
    a plugin), settings or not."""
    code = ("import sys, django_remq; "
            "assert 'django.conf' not in sys.modules, 'settings machinery imported'; "
            "assert callable(django_remq.TaskManager.init); "
            "import django_remq.types, django_remq.testing; "
            "from django.conf import settings; "
            "assert not settings.configured, 'settings were read'; print('ok')")
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=False)
    assert proc.stdout.strip() == "ok", proc.stderr
