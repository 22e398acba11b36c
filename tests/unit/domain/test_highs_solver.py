"""The private highspy class the planner relies on is still there, in a version pyproject.toml admits."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet

from vpp.domain.planning import highs_solver

ROOT = Path(__file__).resolve().parents[3]


def _declared_range() -> SpecifierSet:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for requirement in project["dependencies"]:
        match = re.fullmatch(r"highspy\s*([^;]+)", requirement.strip())
        if match:
            return SpecifierSet(match.group(1).strip())
    raise AssertionError("highspy is not a declared dependency")


def test_installed_highspy_is_in_the_declared_range() -> None:
    installed = importlib.metadata.version("highspy")
    assert installed in _declared_range(), installed


def test_core_class_has_every_method_the_planner_calls() -> None:
    missing = [name for name in highs_solver.PLANNER_METHODS if not hasattr(highs_solver.QuietHighs, name)]
    assert missing == []


def test_planner_methods_list_matches_the_planner_source() -> None:
    source = (ROOT / "vpp/domain/planning/lp.py").read_text()
    called = set(re.findall(r"highs\.(\w+)\(", source))
    assert called <= set(highs_solver.PLANNER_METHODS), called - set(highs_solver.PLANNER_METHODS)


def test_quiet_solver_prints_nothing(capfd: pytest.CaptureFixture[str]) -> None:
    solver = highs_solver.new_quiet_solver()
    solver.run()  # an empty model: solving it would print the banner if output were on
    out, err = capfd.readouterr()
    assert out == ""
    assert err == ""
