"""Session-level advisory locks: who leads among several scheduler processes.

pg_advisory_lock's bigint key space is shared by every user of the database, so each key is fixed here
and distinct from the others the platform takes (the rollup's in vpp.postgres.rollup).
"""

from __future__ import annotations

import psycopg

__all__ = ["SCHEDULER_LOCK_KEY", "session_alive", "try_session_lock"]

SCHEDULER_LOCK_KEY = 0x7670_705F_6472  # "vpp_dr"


def try_session_lock(conn: psycopg.Connection, key: int) -> bool:
    """Take `key` for this session if nobody holds it; held until the session ends (or is unlocked)."""
    row = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
    return bool(row is not None and row[0])


def session_alive(conn: psycopg.Connection) -> None:
    """A round trip on the session; raises psycopg.Error when it is gone (and its locks with it)."""
    conn.execute("SELECT 1")
