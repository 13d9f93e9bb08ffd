"""The documentation site (mkdocs.yml, docs/): it builds with ``mkdocs build --strict``,
its settings reference lists every setting the code has with the code's default, a
setting without a description fails the build, every page is in the navigation, and the
README stays a short way in."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from django_remq.conf import SPEC

pytestmark = pytest.mark.packaging

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README_MAX_LINES = 300


def build(root: Path, site: Path) -> subprocess.CompletedProcess[str]:
    """``mkdocs build --strict`` of the site whose mkdocs.yml is in ``root``."""
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f",
                           str(root / "mkdocs.yml"), "-d", str(site)],
                          cwd=root, capture_output=True, text=True, check=False, timeout=300)


class Tables(HTMLParser):
    """The rows of every table of a page, each a list of its cells' text."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    proc = build(ROOT, out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


def test_the_site_builds_strict_and_lists_every_setting_with_its_default(site: Path) -> None:
    parser = Tables()
    parser.feed((site / "settings" / "index.html").read_text())
    rows = {row[0]: row for row in parser.rows if len(row) == 4}
    for key, (_, default) in SPEC.items():
        assert key in rows, f"the settings page has no row for REMQ[{key!r}]"
        _, _, shown, description = rows[key]
        value = shown.strip('"')
        if isinstance(default, int) and not isinstance(default, bool):
            value = value.replace("_", "")
        assert value == str(default), f"REMQ[{key!r}]: the page says {shown}, the code {default!r}"
        assert description, f"REMQ[{key!r}] has no description"
    for nested in ("retry.max_retries", "dlq.maxlen", "retention.failed_max_count",
                   "max_client_delay_ms", "allowed_origins"):
        assert nested in rows  # the processor's and the gateway's tables are there too


def copy_of_the_site(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    root.mkdir()
    shutil.copy(ROOT / "mkdocs.yml", root / "mkdocs.yml")
    shutil.copytree(DOCS, root / "docs", ignore=shutil.ignore_patterns("__pycache__"))
    return root


def test_a_setting_without_its_description_or_a_stale_one_fails_the_build(
        tmp_path: Path) -> None:
    root = copy_of_the_site(tmp_path)
    descriptions = root / "docs" / "hooks" / "settings_descriptions.py"
    text = descriptions.read_text()
    text, found = re.subn(r'\n    "PREFIX": [^\n]*\n', '\n    "PREFIXES": "Gone.",\n', text)
    assert found == 1
    descriptions.write_text(text)
    proc = build(root, tmp_path / "site")
    assert proc.returncode != 0
    log = proc.stdout + proc.stderr
    assert "REMQ key 'PREFIX' is in the code but has no description" in log
    assert "describes REMQ key 'PREFIXES', which the code no longer has" in log


def hook() -> ModuleType:
    spec = importlib.util.spec_from_file_location("settings_reference",
                                                  DOCS / "hooks" / "settings_reference.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_key_of_every_table_is_described() -> None:
    """The check the build makes, without a build: the code and the descriptions agree."""
    reference = hook()
    described = reference.descriptions()
    for name, rows_of in reference.TABLES.items():
        assert reference.drift(name, rows_of(), described[name]) == []


def nav_pages(nav: Any) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, dict):
        return [p for value in nav.values() for p in nav_pages(value)]
    return [p for item in nav for p in nav_pages(item)]


def test_every_page_is_in_the_nav_and_every_nav_entry_is_a_page() -> None:
    import yaml  # PyYAML comes with mkdocs (the docs extra)

    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    nav = nav_pages(config["nav"])
    pages = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))
    assert sorted(nav) == pages


def test_the_readme_is_a_short_way_in_and_links_every_page() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= README_MAX_LINES
    linked = set(re.findall(r"\]\((docs/[\w/-]+\.md)\)", readme))
    pages = {f"docs/{p.relative_to(DOCS).as_posix()}" for p in DOCS.rglob("*.md")}
    assert pages - {"docs/index.md"} <= linked, "pages the README's map does not link"
    assert linked <= pages, "README links to pages that do not exist"
