"""One scheduler dispatches at a time: a PostgreSQL session-level advisory lock on a connection of its own.

Several scheduler processes may run (one per server); each holds a lease connection and asks for the
lock every `poll_s`. The one that gets it leads; the others wait as hot standbys. The lock lives as
long as the leader's session: a leader killed, or cut off with its database server, loses its
connection, PostgreSQL releases the lock, and a standby takes it at its next poll. A leader checks its
lease before every tick and steps down when the lease connection is gone, so a leader that lost the
database cannot carry on next to a new one (its work connection went with the same server anyway,
and nothing it does is recorded without a commit).

Why a dedicated connection: the work connection commits and rolls back all the time and is replaced
after errors; tying the lock to it would make every reconnect a leadership election.
"""

from __future__ import annotations

import contextlib
import logging
import threading

import psycopg

from vpp.log import kv
from vpp.postgres.advisory_locks import SCHEDULER_LOCK_KEY, session_alive, try_session_lock
from vpp.postgres.connect import connect

__all__ = ["SCHEDULER_LOCK_KEY", "LeaderLease"]

log = logging.getLogger("vpp.dr_scheduler.leader")


class LeaderLease:
    def __init__(self, database_url: str, *, instance: str, poll_s: float = 1.0) -> None:
        self.database_url = database_url
        self.instance = instance
        self.poll_s = poll_s
        self._conn: psycopg.Connection | None = None

    def acquire(self, stopping: threading.Event) -> bool:
        """Block until this process holds the lock (True) or `stopping` is set (False).

        Raises psycopg.OperationalError when the database is unreachable: the caller backs off and retries.
        """
        announced = False
        while not stopping.is_set():
            if self._conn is None or self._conn.closed:
                self._conn = connect(
                    self.database_url, autocommit=True, application_name=f"dr-scheduler-lease:{self.instance}"
                )
            if try_session_lock(self._conn, SCHEDULER_LOCK_KEY):
                log.info("scheduler leads", extra=kv(instance=self.instance))
                return True
            if not announced:
                log.info("another scheduler leads; standing by", extra=kv(instance=self.instance))
                announced = True
            stopping.wait(self.poll_s)
        return False

    def held(self) -> bool:
        """Whether the lease session is still alive (and so still holds the lock)."""
        conn = self._conn
        if conn is None or conn.closed:
            return False
        try:
            session_alive(conn)
        except psycopg.Error:
            log.warning("scheduler lease lost", extra=kv(instance=self.instance))
            self.release()
            return False
        return True

    def release(self) -> None:
        """Closing the session releases the lock (also for a lock the server already forgot)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                conn.close()
