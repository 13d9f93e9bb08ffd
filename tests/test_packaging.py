"""The release artefacts: ``python -m build`` makes an sdist and a wheel from a copy of the
source tree; the wheel carries every data file the package needs at run time."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

import django_remq

pytestmark = pytest.mark.packaging

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "django_remq"
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "MANIFEST.in")


def _data_files() -> set[str]:
    """Every file of the package that is not Python source: scripts, templates, markers."""
    return {path.relative_to(ROOT).as_posix() for path in PACKAGE.rglob("*")
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".py"}


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build from a clean copy (no stray build/ or egg-info): sdist, then the wheel from it."""
    src = tmp_path_factory.mktemp("src")
    for name in SOURCES:
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(PACKAGE, src / "django_remq", ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "-o", str(out)],
                          cwd=src, capture_output=True, text=True, check=False, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def test_the_wheel_has_every_data_file(dist: Path) -> None:
    [wheel] = dist.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    data = _data_files()
    assert "django_remq/py.typed" in data
    assert {"django_remq/core/store/lua/_lib.lua", "django_remq/core/store/lua/deliver.lua"} <= data
    assert data - names == set(), "declare these in [tool.setuptools.package-data]"
    assert "django_remq/core/store/lua/_lib.lua" in names


def test_the_wheel_metadata(dist: Path) -> None:
    [wheel] = dist.glob("*.whl")
    assert wheel.name == f"django_remq-{django_remq.__version__}-py3-none-any.whl"
    archive = zipfile.ZipFile(wheel)
    info = f"django_remq-{django_remq.__version__}.dist-info"
    meta = Parser().parsestr(archive.read(f"{info}/METADATA").decode())
    assert meta["Version"] == django_remq.__version__
    assert meta["License-Expression"] == "MIT"
    assert f"{info}/licenses/LICENSE" in archive.namelist()
    assert any(url.startswith("Repository, https://") for url in meta.get_all("Project-URL"))
    assert "Programming Language :: Python :: 3.11" in meta.get_all("Classifier")
    entry_points = archive.read(f"{info}/entry_points.txt").decode()
    assert "[pytest11]\ndjango_remq = django_remq.testing" in entry_points


def test_the_sdist_leaves_the_test_suite_out(dist: Path) -> None:
    """The suite needs the repository (conftest, helpers, a Redis): it is not shipped half."""
    [sdist] = dist.glob("*.tar.gz")
    top = f"django_remq-{django_remq.__version__}/"
    with tarfile.open(sdist) as tar:
        names = {n.removeprefix(top) for n in tar.getnames()}
    assert {"LICENSE", "README.md", "pyproject.toml", "django_remq/core/store/lua/_lib.lua",
            "django_remq/py.typed"} <= names
    assert [n for n in names if n.startswith(("tests", "bench", "example_project"))] == []
