"""One line for a person from an exception: what failed and which setting to change."""

from __future__ import annotations

import re
import sys

__all__ = ["one_line"]

_PASSWORD = re.compile(r"(://[^:/@]+:)[^@]+@")


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else ""


def redact(url: str) -> str:
    return _PASSWORD.sub(r"\1***@", url)


def _settings_error(error: Exception) -> str | None:
    pydantic_core = sys.modules.get("pydantic_core")
    if pydantic_core is None or not isinstance(error, pydantic_core.ValidationError):
        return None
    problems = []
    for item in error.errors():
        field = ".".join(str(part) for part in item.get("loc", ()))
        name = f"VPP_{field.upper()}" if field else "settings"
        message = str(item.get("msg", "invalid")).removeprefix("Value error, ")
        problems.append(f"{name}: {message}")
    return "configuration: " + "; ".join(problems)


def _database_error(error: Exception) -> str | None:
    sqlalchemy_exc = sys.modules.get("sqlalchemy.exc")
    if sqlalchemy_exc is not None and isinstance(error, sqlalchemy_exc.DBAPIError) and error.orig is not None:
        error = error.orig  # migrations run through SQLAlchemy: report the driver's own message
    psycopg = sys.modules.get("psycopg")
    if psycopg is None or not isinstance(error, psycopg.OperationalError):
        return None
    return f"cannot use the database ({_first_line(str(error))}); check VPP_DATABASE_URL or start the platform"


def one_line(error: BaseException) -> str:
    """The message `vpp` prints instead of a traceback."""
    if isinstance(error, Exception):
        for describe in (_settings_error, _database_error):
            text = describe(error)
            if text:
                return redact(text)
    message = _first_line(str(error))
    if type(error).__name__ in {"StartupError", "CliError", "UnreachableServer"}:
        return redact(message)
    return redact(f"{type(error).__name__}: {message}" if message else type(error).__name__)
