"""A request caught by a database failover gets 503 (retry), not 500 (services/api/errors.py)."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import DBAPIError

from services.api.errors import _lost_database


class _PgError(Exception):
    def __init__(self, sqlstate: str | None) -> None:
        super().__init__("server said no")
        self.sqlstate = sqlstate


class ConnectionDoesNotExistError(Exception):  # named as asyncpg's: matched by name, not imported
    pass


def _wrapped(orig: BaseException, *, invalidated: bool = False) -> DBAPIError:
    return DBAPIError("SELECT 1", None, orig, connection_invalidated=invalidated)


@pytest.mark.parametrize("sqlstate", ["08006", "57P01", "57P03", "25006"])
def test_failover_sqlstates_are_lost_database(sqlstate: str) -> None:
    assert _lost_database(_wrapped(_PgError(sqlstate)), sqlstate)


def test_an_invalidated_connection_or_a_closed_asyncpg_one_is_lost_database() -> None:
    assert _lost_database(_wrapped(_PgError(None), invalidated=True), "")
    assert _lost_database(_wrapped(ConnectionDoesNotExistError()), "")


def test_bad_input_and_other_errors_are_not() -> None:
    assert not _lost_database(_wrapped(_PgError("22P02")), "22P02")
    assert not _lost_database(_wrapped(_PgError("42P01")), "42P01")
