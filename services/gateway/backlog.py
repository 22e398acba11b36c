"""A bounded on-disk backlog of telemetry messages a site gateway has not had confirmed yet.

SQLite in WAL mode (stdlib, crash-safe, one file): every message is written here before it is
published, and removed only when :meth:`Backlog.confirm` is called for it. Each message may carry
its reading's key (device id, instant in µs since the epoch), so the platform's end-to-end
confirmation on `vpp/v1/{site}/stored`, which names readings rather than messages, can be mapped
back to sequence numbers (:meth:`Backlog.seqs_for`). A gateway restart, a
broker outage or a lost connection therefore resends everything unconfirmed; ingest ignores the
duplicates (same device and timestamp). The bound keeps a gateway that is offline for weeks from
filling its disk: past ``max_messages`` the oldest are dropped and counted (`dropped()`, kept in the
file) and a warning is logged, never silently.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from vpp.log import kv

__all__ = ["Backlog", "Key", "Pending"]

log = logging.getLogger("vpp.gateway.backlog")
_WARN_EVERY = 1000  # a gateway offline for weeks drops one message per device per poll: warn, not flood


Key = tuple[str, int]  # device id, reading instant in µs since the epoch (an instant, not its text)


@dataclass(frozen=True)
class Pending:
    seq: int
    topic: str
    payload: bytes


class Backlog:
    def __init__(self, path: Path, max_messages: int = 100_000) -> None:
        if max_messages < 1:
            raise ValueError("max_messages must be at least 1")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.max_messages = max_messages
        self._lock = threading.Lock()  # paho's thread confirms while the poll loop appends
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL survives a process crash
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS backlog (seq INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL,"
            " payload BLOB NOT NULL)"
        )
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(backlog)")}
        if "device_id" not in columns:  # a backlog file written before readings were keyed
            self._db.execute("ALTER TABLE backlog ADD COLUMN device_id TEXT")
            self._db.execute("ALTER TABLE backlog ADD COLUMN ts_us INTEGER")
        self._db.execute("CREATE INDEX IF NOT EXISTS backlog_key ON backlog (device_id, ts_us)")
        self._db.execute("CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)")
        self._db.execute("INSERT OR IGNORE INTO counters VALUES ('dropped', 0)")

    def append(self, topic: str, payload: bytes, key: Key | None = None) -> int:
        """Store a message (with its reading's key, if any); returns its sequence number. Drops the
        oldest beyond the bound."""
        device_id, ts_us = key if key is not None else (None, None)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            seq = self._db.execute(
                "INSERT INTO backlog (topic, payload, device_id, ts_us) VALUES (?, ?, ?, ?)",
                (topic, payload, device_id, ts_us),
            ).lastrowid
            (count,) = self._db.execute("SELECT count(*) FROM backlog").fetchone()
            if count > self.max_messages:
                excess = count - self.max_messages
                self._db.execute(
                    "DELETE FROM backlog WHERE seq IN (SELECT seq FROM backlog ORDER BY seq LIMIT ?)", (excess,)
                )
                (dropped,) = self._db.execute(
                    "UPDATE counters SET value = value + ? WHERE name = 'dropped' RETURNING value", (excess,)
                ).fetchone()
                if dropped // _WARN_EVERY != (dropped - excess) // _WARN_EVERY or dropped == excess:
                    log.warning("gateway backlog full: oldest readings dropped", extra=kv(dropped=dropped))
            self._db.execute("COMMIT")
            assert seq is not None
            return seq

    def pending(self, after_seq: int = 0, limit: int = 500) -> list[Pending]:
        """Unconfirmed messages with a sequence number above ``after_seq``, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, topic, payload FROM backlog WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, limit)
            ).fetchall()
        return [Pending(seq, topic, bytes(payload)) for seq, topic, payload in rows]

    def seqs_for(self, keys: list[Key]) -> list[int]:
        """Sequence numbers of the unconfirmed messages holding these readings (a resent reading may
        be in the backlog once only, but a key is looked up as often as it is held)."""
        if not keys:
            return []
        with self._lock:
            found: list[int] = []
            for device_id, ts_us in keys:
                found += [
                    int(seq)
                    for (seq,) in self._db.execute(
                        "SELECT seq FROM backlog WHERE device_id = ? AND ts_us = ?", (device_id, ts_us)
                    )
                ]
        return found

    def pending_seqs(self, upto_seq: int) -> list[int]:
        """Sequence numbers still unconfirmed up to ``upto_seq``, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT seq FROM backlog WHERE seq <= ? ORDER BY seq", (upto_seq,)).fetchall()
        return [int(seq) for (seq,) in rows]

    def get(self, seqs: list[int]) -> list[Pending]:
        """The messages still held among ``seqs``, oldest first."""
        with self._lock:
            rows = [
                row
                for seq in seqs
                for row in self._db.execute("SELECT seq, topic, payload FROM backlog WHERE seq = ?", (seq,))
            ]
        return [Pending(seq, topic, bytes(payload)) for seq, topic, payload in sorted(rows)]

    def confirm(self, seqs: list[int]) -> None:
        """Forget messages the platform has confirmed (see `GatewayPublisher.confirmed`)."""
        if not seqs:
            return
        with self._lock:
            self._db.executemany("DELETE FROM backlog WHERE seq = ?", [(s,) for s in seqs])

    def size(self) -> int:
        with self._lock:
            (count,) = self._db.execute("SELECT count(*) FROM backlog").fetchone()
        return int(count)

    def dropped(self) -> int:
        with self._lock:
            (value,) = self._db.execute("SELECT value FROM counters WHERE name = 'dropped'").fetchone()
        return int(value)

    def close(self) -> None:
        with self._lock:
            self._db.close()
