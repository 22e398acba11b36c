"""The ingest write path: binary COPY into a staging table, then one de-duplicating insert.

Why a staging table: COPY cannot skip conflicting rows, and a device resending its backlog after a
reconnect is normal, so rows go to a temporary table with COPY (the fastest way in) and then into
`readings` with ON CONFLICT DO NOTHING. Rows are inserted in key order so two ingest workers that
happen to hold the same redelivered message cannot deadlock on each other's unique-index locks.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg

__all__ = ["DeadLetter", "ReadingRow", "ReadingWriter", "StatusRow", "WriteResult"]

# (device_pk, ts, power_kw, energy_pos_kwh, energy_neg_kwh, soc_pct, vehicles)
ReadingRow = tuple[int, datetime, float | None, float | None, float | None, float | None, int | None]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    received_at: datetime
    topic: str
    payload: bytes
    reason: str
    detail: str
    client_id: str | None = None


@dataclass(frozen=True, slots=True)
class StatusRow:
    site_pk: int
    online: bool
    detail_json: str | None
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class WriteResult:
    staged: int
    inserted: int
    dead_letters: int

    @property
    def duplicates(self) -> int:
        return self.staged - self.inserted


_STAGE_DDL = """
CREATE TEMP TABLE IF NOT EXISTS readings_stage (
    device_pk int, ts timestamptz, power_kw float8, energy_pos_kwh float8,
    energy_neg_kwh float8, soc_pct float4, vehicles int2
) ON COMMIT DELETE ROWS
"""
_COPY = (
    "COPY readings_stage (device_pk, ts, power_kw, energy_pos_kwh, energy_neg_kwh, soc_pct, vehicles)"
    " FROM STDIN (FORMAT BINARY)"
)
_TYPES = ["int4", "timestamptz", "float8", "float8", "float8", "float4", "int2"]
_INSERT = """
INSERT INTO readings (device_pk, ts, power_kw, energy_pos_kwh, energy_neg_kwh, soc_pct, vehicles)
SELECT DISTINCT ON (device_pk, ts) device_pk, ts, power_kw, energy_pos_kwh, energy_neg_kwh, soc_pct, vehicles
FROM readings_stage ORDER BY device_pk, ts
ON CONFLICT (device_pk, ts) DO NOTHING
"""
# A reading changes the energy of its own slot and, through the interval to its neighbours,
# possibly the adjacent slots: mark all three (the gap bound keeps it to these).
_MARK_DIRTY = """
INSERT INTO energy_dirty (device_pk, slot_start)
SELECT DISTINCT device_pk, date_bin('30 minutes', ts + o.shift, TIMESTAMPTZ '2000-01-01 00:00+00')
FROM readings_stage,
     (VALUES (interval '0'), (-%(gap)s * interval '1 second'), (%(gap)s * interval '1 second')) AS o(shift)
ORDER BY 1, 2
ON CONFLICT DO NOTHING
"""
_DEAD = """
INSERT INTO dead_letters (received_at, topic, payload, reason, detail, client_id)
VALUES (%s, %s, %s, %s, %s, %s)
"""
_STATUS = """
INSERT INTO site_status (site_pk, online, detail, updated_at) VALUES (%s, %s, %s::jsonb, %s)
ON CONFLICT (site_pk) DO UPDATE SET online = EXCLUDED.online, detail = EXCLUDED.detail,
    updated_at = EXCLUDED.updated_at
WHERE site_status.updated_at <= EXCLUDED.updated_at
"""


class ReadingWriter:
    """Writes one batch per transaction on a dedicated connection. Commit is the caller's signal to ack."""

    def __init__(self, conn: psycopg.Connection, *, max_gap_s: int = 900) -> None:
        self.conn = conn
        self.max_gap_s = max_gap_s
        conn.execute(_STAGE_DDL)
        conn.commit()

    def write(
        self,
        rows: Sequence[ReadingRow],
        dead_letters: Sequence[DeadLetter] = (),
        statuses: Sequence[StatusRow] = (),
    ) -> WriteResult:
        inserted = 0
        try:
            with self.conn.cursor() as cur:
                if rows:
                    with cur.copy(_COPY) as copy:
                        copy.set_types(_TYPES)
                        for row in rows:
                            copy.write_row(row)
                    cur.execute(_INSERT)
                    inserted = cur.rowcount
                    cur.execute(_MARK_DIRTY, {"gap": self.max_gap_s})
                if dead_letters:
                    cur.executemany(
                        _DEAD,
                        [(d.received_at, d.topic, d.payload, d.reason, d.detail, d.client_id) for d in dead_letters],
                    )
                if statuses:
                    cur.executemany(_STATUS, [(s.site_pk, s.online, s.detail_json, s.updated_at) for s in statuses])
            self.conn.commit()
        except BaseException:
            if not self.conn.closed:
                with contextlib.suppress(psycopg.Error):
                    self.conn.rollback()
            raise
        return WriteResult(len(rows), inserted, len(dead_letters))
