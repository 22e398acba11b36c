"""The ingest write path: binary COPY into a staging table, then one de-duplicating insert.

Why a staging table: COPY cannot skip conflicting rows, and a device resending its backlog after a
reconnect is normal, so rows go to a temporary table with COPY (the fastest way in) and then into
`readings` with ON CONFLICT DO NOTHING. Rows are inserted in key order so two ingest workers that
happen to hold the same redelivered message cannot deadlock on each other's unique-index locks.

Why rows are encoded here rather than by psycopg's `write_row`: the ingest worker encodes a batch
while the previous one commits (`encode_rows` on its validation thread), so the writer thread only
streams bytes. Encoding row by row on the writer thread competed for the GIL with validation and
took three to four times as long as without that competition, on the path every commit waits for.
"""

from __future__ import annotations

import contextlib
import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from itertools import repeat
from operator import floordiv, sub

import psycopg

from vpp.postgres.replication import wait_until_replicated

__all__ = [
    "DEAD_LETTER_PREFIX_BYTES",
    "DeadLetter",
    "EncodedRows",
    "ReadingRow",
    "ReadingWriter",
    "StatusRow",
    "WriteResult",
    "dead_letter_row",
    "encode_rows",
    "stored_instants",
]

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
# One statement, one round trip: de-duplicate into `readings` and mark the (device, slot) pairs
# the rollup must recompute. Only rows actually inserted are marked, since a duplicate changes
# nothing. A reading at ts changes its own slot and, through the intervals to its neighbours
# (integrated only up to the gap bound), the slots of ts - gap and ts + gap. Over one device's new
# readings in one slot (lo..hi) the union of those is exactly the slots of lo - gap, hi - gap, lo,
# lo + gap and hi + gap, so marking works on a row per device and slot instead of three per reading.
_INSERT_AND_MARK = """
WITH inserted AS (
    INSERT INTO readings (device_pk, ts, power_kw, energy_pos_kwh, energy_neg_kwh, soc_pct, vehicles)
    SELECT DISTINCT ON (device_pk, ts) device_pk, ts, power_kw, energy_pos_kwh, energy_neg_kwh, soc_pct, vehicles
    FROM readings_stage ORDER BY device_pk, ts
    ON CONFLICT (device_pk, ts) DO NOTHING
    RETURNING device_pk, ts
), per_slot AS (
    SELECT device_pk, min(ts) AS lo, max(ts) AS hi
    FROM inserted
    GROUP BY device_pk, date_bin('30 minutes', ts, TIMESTAMPTZ '2000-01-01 00:00+00')
), marked AS (
    INSERT INTO energy_dirty (device_pk, slot_start)
    SELECT DISTINCT p.device_pk, date_bin('30 minutes', e.t, TIMESTAMPTZ '2000-01-01 00:00+00')
    FROM per_slot p,
         LATERAL (VALUES (p.lo - %(gap)s * interval '1 second'), (p.hi - %(gap)s * interval '1 second'), (p.lo),
                         (p.lo + %(gap)s * interval '1 second'), (p.hi + %(gap)s * interval '1 second')) AS e(t)
    ORDER BY 1, 2
    -- Not DO NOTHING: an already-dirty pair must be locked (WHERE false locks it without writing a
    -- row version) until this transaction commits. Otherwise the rollup could claim the pair and
    -- recompute the slot without these uncommitted readings, and nothing would mark it dirty again:
    -- the slot would stay stale for good (found by `vpp bench faults`). The rollup's claim skips
    -- locked pairs and takes them once this commit has made the readings visible.
    ON CONFLICT (device_pk, slot_start) DO UPDATE SET dirty_since = energy_dirty.dirty_since WHERE false
)
SELECT count(*) FROM inserted
"""
_DEAD = """
INSERT INTO dead_letters (received_at, topic, payload, reason, detail, client_id, payload_bytes, payload_sha256)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
"""
# What a dead letter keeps of its payload: enough to see what a gateway sent, not a copy of every
# oversized or hostile message (five 10 MB messages from an unregistered site once added 52 MB in
# a second). The size and SHA-256 of the whole payload are kept beside the prefix.
DEAD_LETTER_PREFIX_BYTES = 4096


def dead_letter_row(d: DeadLetter, prefix_bytes: int = DEAD_LETTER_PREFIX_BYTES) -> tuple[object, ...]:
    return (
        d.received_at,
        d.topic,
        d.payload[:prefix_bytes],
        d.reason,
        d.detail,
        d.client_id,
        len(d.payload),
        hashlib.sha256(d.payload).digest(),
    )


_STATUS = """
INSERT INTO site_status (site_pk, online, detail, updated_at) VALUES (%s, %s, %s::jsonb, %s)
ON CONFLICT (site_pk) DO UPDATE SET online = EXCLUDED.online, detail = EXCLUDED.detail,
    updated_at = EXCLUDED.updated_at
WHERE site_status.updated_at <= EXCLUDED.updated_at
"""


@dataclass(frozen=True, slots=True)
class EncodedRows:
    """Reading rows as one complete binary COPY stream for `readings_stage` (see `encode_rows`)."""

    count: int
    payload: bytes


# PostgreSQL's binary COPY format (docs: "COPY", "Binary Format"): signature, flags, header extension
# length; per row a field count, then per field a byte length (-1 for NULL) and the big-endian value.
_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_TRAILER = struct.pack(">h", -1)
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)  # timestamptz is int8 microseconds since this instant
_ONE_US = timedelta(microseconds=1)
# The nullable columns after (device_pk int4, ts timestamptz): power_kw, energy_pos_kwh, energy_neg_kwh
# float8; soc_pct float4; vehicles int2 -- as struct codes with their byte lengths.
_VALUE_FORMATS = (("d", 8), ("d", 8), ("d", 8), ("f", 4), ("h", 2))


@cache
def _row_struct(present: tuple[bool, ...]) -> struct.Struct:
    """The row layout for one pattern of present (True) and NULL (False) value columns."""
    layout = ">h" + "ii" + "iq"
    for (code, _size), has in zip(_VALUE_FORMATS, present, strict=True):
        layout += "i" + code if has else "i"
    return struct.Struct(layout)


def encode_rows(rows: Sequence[ReadingRow]) -> EncodedRows:
    """Encode rows in the binary COPY format of `readings_stage`.

    Rows that share a pattern of NULL columns share a fixed layout, so a whole group is packed by
    `map` over its columns with one `struct.Struct` and no Python code per row. A batch of one
    device type usually has a single pattern; mixed batches are grouped first.
    """
    if not rows:
        return EncodedRows(0, _SIGNATURE + _TRAILER)
    columns = list(zip(*rows, strict=True))
    present = tuple(None not in column for column in columns[2:])
    if all(has or column.count(None) == len(column) for has, column in zip(present, columns[2:], strict=True)):
        body = _pack(columns, present)
    else:
        groups: dict[tuple[bool, ...], list[ReadingRow]] = {}
        for row in rows:
            pattern = (
                row[2] is not None,
                row[3] is not None,
                row[4] is not None,
                row[5] is not None,
                row[6] is not None,
            )
            groups.setdefault(pattern, []).append(row)
        body = b"".join(_pack(list(zip(*group, strict=True)), pattern) for pattern, group in groups.items())
    return EncodedRows(len(rows), b"".join((_SIGNATURE, body, _TRAILER)))


def _pack(columns: list[tuple[object, ...]], present: tuple[bool, ...]) -> bytes:
    """Pack rows given column-wise; every row has NULLs exactly where `present` says."""
    count = len(columns[0])
    micros = map(floordiv, map(sub, columns[1], repeat(_PG_EPOCH)), repeat(_ONE_US))
    fields: list[object] = [repeat(7, count), repeat(4), columns[0], repeat(8), micros]
    for (_code, size), has, column in zip(_VALUE_FORMATS, present, columns[2:], strict=True):
        fields.extend((repeat(size), column) if has else (repeat(-1),))
    return b"".join(map(_row_struct(present).pack, *fields))  # type: ignore[call-overload]


class ReadingWriter:
    """Writes one batch per transaction on a dedicated connection. Commit is the caller's signal to ack."""

    def __init__(self, conn: psycopg.Connection, *, max_gap_s: int = 900) -> None:
        self.conn = conn
        self.max_gap_s = max_gap_s
        conn.execute(_STAGE_DDL)
        conn.commit()

    @property
    def closed(self) -> bool:
        return bool(self.conn.closed)

    def close(self) -> None:
        with contextlib.suppress(psycopg.Error):
            self.conn.close()

    def write(
        self,
        rows: Sequence[ReadingRow] | EncodedRows,
        dead_letters: Sequence[DeadLetter] = (),
        statuses: Sequence[StatusRow] = (),
    ) -> WriteResult:
        encoded = rows if isinstance(rows, EncodedRows) else encode_rows(rows)
        inserted = 0
        try:
            with self.conn.cursor() as cur:
                if encoded.count:
                    with cur.copy(_COPY) as copy:
                        copy.write(encoded.payload)
                    cur.execute(_INSERT_AND_MARK, {"gap": self.max_gap_s})
                    counted = cur.fetchone()
                    inserted = counted[0] if counted else 0
                if dead_letters:
                    cur.executemany(_DEAD, [dead_letter_row(d) for d in dead_letters])
                if statuses:
                    cur.executemany(_STATUS, [(s.site_pk, s.online, s.detail_json, s.updated_at) for s in statuses])
            self.conn.commit()
        except BaseException:
            if not self.conn.closed:
                with contextlib.suppress(psycopg.Error):
                    self.conn.rollback()
            raise
        return WriteResult(encoded.count, inserted, len(dead_letters))

    def wait_until_replicated(self, timeout_s: float) -> bool:
        """Whether a standby has flushed this connection's commits (vpp.postgres.replication)."""
        return wait_until_replicated(self.conn, timeout_s)


def stored_instants(conn: psycopg.Connection, site_ids: Sequence[str], since: datetime) -> list[tuple[str, datetime]]:
    """(site id, ts) of every stored reading of these sites from `since` on, one per row (fault benches
    compare it with what their gateways published: a repeat here would be a stored duplicate)."""
    rows = conn.execute(
        """SELECT s.site_id, r.ts FROM readings r JOIN devices d ON d.id = r.device_pk
             JOIN sites s ON s.id = d.site_pk WHERE s.site_id = ANY(%s) AND r.ts >= %s""",
        (list(site_ids), since),
    ).fetchall()
    return [(str(site), ts) for site, ts in rows]
