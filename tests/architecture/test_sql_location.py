"""The SQL-location contract finds SQL where it must not be, and only SQL."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import grimp
import pytest

from tests.architecture.sql_location import SqlLocationContract, sql_strings


def test_statements_are_found_and_prose_is_not() -> None:
    source = textwrap.dedent(
        '''
        """SELECT in a module docstring is prose."""
        QUERY = """SELECT id FROM sites WHERE site_id = %s"""
        UPSERT = "INSERT INTO regions (region_id) VALUES (%s)"
        MESSAGE = "select a site first"
        LABEL = "Update the firmware"

        def f() -> None:
            """DELETE FROM nowhere: a docstring again."""
            run("UPDATE dr_events SET status = 'x'")
        '''
    )
    assert [line for line, _ in sql_strings(source)] == [3, 4, 10]


@pytest.fixture
def package(tmp_path: Path) -> Iterator[str]:
    root = tmp_path / "sqlcheckpkg"
    (root / "store").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "store" / "__init__.py").write_text('Q = "SELECT 1 FROM readings"\n')
    (root / "routes.py").write_text("from sqlcheckpkg import store\n")
    sys.path.insert(0, str(tmp_path))
    try:
        yield "sqlcheckpkg"
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m.startswith("sqlcheckpkg")]:
            del sys.modules[name]


def _check(package: str, routes_source: str, package_dir: Path, **options: list[str]) -> list[str]:
    (package_dir / "routes.py").write_text(routes_source)
    graph = grimp.build_graph(package, cache_dir=None)
    contract = SqlLocationContract(
        name="sql",
        session_options={"root_packages": [package]},
        contract_options={"allowed_modules": [f"{package}.store"], **options},
    )
    result = contract.check(graph, verbose=False)
    violations: list[str] = result.metadata["violations"]
    assert result.kept == (not violations)
    return violations


def test_contract_breaks_when_a_query_is_added_outside_the_store(package: str) -> None:
    package_dir = Path(sys.path[0]) / package
    assert _check(package, "from sqlcheckpkg import store\n", package_dir) == []
    added = 'from sqlcheckpkg import store\nROWS = "DELETE FROM readings WHERE ts < %s"\n'
    assert _check(package, added, package_dir) == ["sqlcheckpkg.routes:2: DELETE FROM readings WHERE ts < %s"]


def test_source_packages_limit_the_check_to_the_product(package: str) -> None:
    """bench/ is a root package for the import contracts but not the product: its SQL is not checked."""
    package_dir = Path(sys.path[0]) / package
    (package_dir / "harness").mkdir()
    (package_dir / "harness" / "__init__.py").write_text('SETUP = "CREATE TABLE scratch (id int)"\n')
    added = 'from sqlcheckpkg import store, harness\nROWS = "DELETE FROM readings WHERE ts < %s"\n'
    assert _check(package, added, package_dir) == [
        "sqlcheckpkg.harness:1: CREATE TABLE scratch (id int)",
        "sqlcheckpkg.routes:2: DELETE FROM readings WHERE ts < %s",
    ]
    only_routes = _check(package, added, package_dir, source_packages=[f"{package}.routes"])
    assert only_routes == ["sqlcheckpkg.routes:2: DELETE FROM readings WHERE ts < %s"]


def test_the_project_declares_the_contract() -> None:
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert 'type = "sql_location"' in pyproject
    assert "tests.architecture.sql_location.SqlLocationContract" in pyproject
