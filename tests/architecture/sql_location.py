"""An import-linter contract type: SQL text lives in `vpp.postgres` (and migrations), nowhere else.

Queries spread through routes, the scheduler and the CLI are hard to review, index and change together;
keeping them in one package per aggregate makes every query against a table findable in one place. The
contract parses each module of the root packages outside the allowed ones and reports every string
constant that reads as SQL (an upper-case statement keyword at its start; docstrings are skipped).
"""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

from grimp import ImportGraph
from importlinter.application import output
from importlinter.domain import fields
from importlinter.domain.contract import Contract, ContractCheck

__all__ = ["SqlLocationContract", "sql_strings"]

_SQL = re.compile(
    r"""\s*(
        SELECT\s | INSERT\s+INTO\s | UPDATE\s+\w+\s+SET\s | DELETE\s+FROM\s | WITH\s+\w+\s+AS\s*\( |
        CREATE\s+(TABLE|INDEX|UNIQUE|ROLE|DATABASE|EXTENSION|SCHEMA|FUNCTION|TRIGGER)\s |
        ALTER\s+(TABLE|ROLE|DATABASE|SYSTEM)\s | DROP\s+(TABLE|ROLE|DATABASE|INDEX)\s |
        COPY\s+\w+ | TRUNCATE\s | GRANT\s | REVOKE\s | LISTEN\s | NOTIFY\s | VACUUM\b | CHECKPOINT\b |
        SET\s+(LOCAL\s+|SESSION\s+)?\w+\s*(=|TO\s) | LOCK\s+TABLE\s | PRAGMA\s | BEGIN\b | COMMIT\b
    )""",
    re.VERBOSE,
)


def _docstrings(tree: ast.Module) -> set[int]:
    """ids of the docstring nodes of the module, its classes and functions."""
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def sql_strings(source: str) -> list[tuple[int, str]]:
    """(line, first line of the text) for every string constant in `source` that starts like SQL."""
    tree = ast.parse(source)
    skip = _docstrings(tree)
    hits = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Constant) or not isinstance(node.value, str) or id(node) in skip:
            continue
        if _SQL.match(node.value):
            hits.append((node.lineno, node.value.strip().splitlines()[0][:80]))
    return sorted(hits)


class SqlLocationContract(Contract):
    """Options: `allowed_modules` (packages whose modules may hold SQL, e.g. vpp.postgres)."""

    allowed_modules = fields.ListField(subfield=fields.StringField())

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        allowed = tuple(str(m) for m in self.allowed_modules)  # type: ignore[attr-defined]  # a list once parsed
        roots = tuple(self.session_options["root_packages"])
        violations: list[str] = []
        for module in sorted(graph.modules):
            if not module.startswith(tuple(f"{r}." for r in roots) + roots):
                continue
            if any(module == a or module.startswith(f"{a}.") for a in allowed):
                continue
            spec = importlib.util.find_spec(module)
            if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
                continue
            for line, text in sql_strings(Path(spec.origin).read_text(encoding="utf-8")):
                violations.append(f"{module}:{line}: {text}")
            output.verbose_print(verbose, f"checked {module}")
        return ContractCheck(kept=not violations, metadata={"violations": violations})

    def render_broken_contract(self, check: ContractCheck) -> None:
        output.print("SQL text outside the allowed packages (move the query into vpp/postgres):")
        for violation in check.metadata["violations"]:
            output.indent_cursor()
            output.print_error(violation)
            output.new_line()
