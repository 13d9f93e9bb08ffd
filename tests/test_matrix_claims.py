"""What the package claims (pyproject.toml) is what CI's matrix (./dev's LEGS) runs: a
Python added to the classifiers, or a floor moved, without a leg to prove it fails here."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent


def legs() -> dict[str, tuple[str, str, list[str]]]:
    """name -> (Python, pins, tiers), from the LEGS table of ./dev."""
    table = re.search(r"^LEGS=\(\n(.*?)^\)", (ROOT / "dev").read_text(), re.S | re.M)
    assert table, "./dev has a LEGS=( ... ) table"
    rows = [line.strip().strip('"').split() for line in table[1].splitlines()]
    return {name: (python, pins, tiers.split(",")) for name, python, pins, tiers in rows}


def project() -> dict:
    with (ROOT / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)["project"]


def test_every_python_the_classifiers_claim_has_a_leg():
    claimed = {c.rsplit(" :: ", 1)[1] for c in project()["classifiers"]
               if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)}
    assert claimed == {python for python, _, _ in legs().values()}


def test_the_floor_leg_runs_the_lowest_python_and_dependencies_declared():
    floor = project()["requires-python"].removeprefix(">=")
    python, pins, tiers = legs()["floor"]
    assert (python, pins) == (floor, "floor")
    assert {"unit", "redis", "processes"} <= set(tiers)
    for dep in project()["dependencies"]:  # ./dev pins each at its lower bound
        assert re.match(r"[A-Za-z0-9_.-]+(\[[^\]]*\])?\s*>=\s*[0-9]", dep), dep


def test_the_newest_leg_runs_the_newest_python_on_the_newest_dependencies():
    newest = max((python for python, _, _ in legs().values()),
                 key=lambda v: tuple(map(int, v.split("."))))
    python, pins, tiers = legs()["newest"]
    assert (python, pins) == (newest, "newest")
    assert {"unit", "redis", "processes"} <= set(tiers)


def test_every_leg_runs_the_soak_and_the_tiers_exist():
    markers = " ".join(pytest_markers())
    for name, (_, _, tiers) in legs().items():
        assert "soak" in tiers or "processes" in tiers, name  # the soak is in processes
        for tier in tiers:
            assert f"{tier}:" in markers, f"leg {name}: no marker {tier!r} in pyproject.toml"


def pytest_markers() -> list[str]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)["tool"]["pytest"]["ini_options"]["markers"]
