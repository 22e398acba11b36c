"""Whether what this session committed is on a standby too: the end-to-end confirmation's HA gate.

With synchronous replication a commit returns only once a standby has it, except in the moments when no
synchronous standby exists (pg_auto_failover runs a freshly promoted node, or a primary whose standby
died, alone). A gateway told "stored" in such a moment would forget a reading held by one server only.
Reading `pg_stat_replication` needs superuser or the `pg_monitor` role (`GRANT pg_monitor TO vpp`);
without it the positions read as NULL and nothing counts as replicated.
"""

from __future__ import annotations

import time

import psycopg

__all__ = ["current_wal_lsn", "standby_flushed", "wait_until_replicated"]


def current_wal_lsn(conn: psycopg.Connection) -> str:
    """This server's WAL write position: at or past every commit this session has made."""
    row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
    assert row is not None
    return str(row[0])


def standby_flushed(conn: psycopg.Connection, lsn: str) -> bool:
    """Whether at least one standby has flushed the WAL up to `lsn` to its disk."""
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_stat_replication WHERE flush_lsn >= %s::pg_lsn)", (lsn,)
    ).fetchone()
    return bool(row is not None and row[0])


def wait_until_replicated(conn: psycopg.Connection, timeout_s: float, poll_s: float = 0.02) -> bool:
    """True once a standby has flushed everything this session committed; False after `timeout_s`."""
    lsn = current_wal_lsn(conn)
    deadline = time.monotonic() + timeout_s
    while not standby_flushed(conn, lsn):
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll_s)
    return True
