"""The OpenADR 2.0b VTN's queries: onboarded VENs, the events each may see, deliveries, opts and usage.

Onboarding (`add_ven`, `list_vens`) is synchronous, as the CLI runs it; what the VTN runs per
message is asynchronous (it serves VENs from an aiohttp loop). The events come from `openadr_events`,
the rows the scheduler writes for the 3.1 VTN (`vpp.postgres.openadr_dr.publish_dr_event`); a VEN
sees an event when the event's targets meet the VEN's, exactly as a 3.1 VEN does.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from vpp.domain.baseline import BaselineSettings
from vpp.domain.oadr2b import Signal2b, signal_from_json, usage_report_body
from vpp.domain.openadr import site_target

__all__ = [
    "Delivery",
    "Oadr2bVen",
    "VisibleEvent",
    "add_ven",
    "current_opt_states",
    "deliveries",
    "event_opt_states",
    "find_ven",
    "list_vens",
    "record_delivery",
    "record_opt",
    "record_registration",
    "revoke_ven",
    "store_usage",
    "touch_poll",
    "unacknowledged_opts",
    "visible_events",
]

# How far before an event its same-day adjustment window starts (the ERAB default verification uses).
_ADJUSTMENT_LEAD = BaselineSettings().adjust_from_before


@dataclass(frozen=True, slots=True)
class Oadr2bVen:
    pk: int
    ven_id: str
    ven_name: str
    fingerprint: str | None
    targets: tuple[str, ...]
    registration_id: str | None
    last_poll_at: datetime | None
    revoked: bool


@dataclass(frozen=True, slots=True)
class VisibleEvent:
    event_id: str  # openadr_events.id
    program_id: str
    dr_event_pk: int
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Delivery:
    event_id: str
    dr_event_pk: int | None
    modification_number: int
    signal: Signal2b
    cancelled: bool
    opt_type: str | None


_VEN_COLUMNS = "id, ven_id, ven_name, fingerprint, targets, registration_id, last_poll_at, revoked_at IS NOT NULL"


def _ven(row: Sequence[Any]) -> Oadr2bVen:
    return Oadr2bVen(row[0], row[1], row[2], row[3], tuple(row[4] or ()), row[5], row[6], row[7])


def add_ven(
    conn: psycopg.Connection, ven_name: str, *, site_ids: Sequence[str], fingerprint: str, ven_id: str | None = None
) -> Oadr2bVen:
    """Onboard a VEN: its name, its certificate's fingerprint, its sites as targets. Caller commits."""
    known = {r[0] for r in conn.execute("SELECT site_id FROM sites WHERE site_id = ANY(%s)", (list(site_ids),))}
    missing = sorted(set(site_ids) - known)
    if missing:
        raise ValueError(f"unknown sites {missing}")
    try:
        row = conn.execute(
            f"""INSERT INTO oadr2b_vens (ven_id, ven_name, fingerprint, targets) VALUES (%s, %s, %s, %s)
                RETURNING {_VEN_COLUMNS}""",
            (ven_id or f"ven-{uuid.uuid4().hex[:16]}", ven_name, fingerprint.upper(),
             [site_target(s) for s in site_ids]),
        ).fetchone()  # fmt: skip
    except psycopg.errors.UniqueViolation:
        raise ValueError(f"a 2.0b VEN named {ven_name!r} or with that fingerprint already exists") from None
    except psycopg.errors.CheckViolation:
        raise ValueError("the fingerprint must be ten colon-separated hex pairs (AA:BB:...)") from None
    assert row is not None
    return _ven(row)


def revoke_ven(conn: psycopg.Connection, ven_name: str) -> bool:
    """Revoke a VEN: it can no longer register or poll. False when there is no such active VEN. Caller commits."""
    row = conn.execute(
        """UPDATE oadr2b_vens SET revoked_at = now(), registration_id = NULL
           WHERE ven_name = %s AND revoked_at IS NULL RETURNING id""",
        (ven_name,),
    ).fetchone()
    return row is not None


def list_vens(conn: psycopg.Connection) -> list[Oadr2bVen]:
    return [_ven(r) for r in conn.execute(f"SELECT {_VEN_COLUMNS} FROM oadr2b_vens ORDER BY ven_name").fetchall()]


async def find_ven(
    conn: psycopg.AsyncConnection, *, ven_id: str | None = None, ven_name: str | None = None
) -> Oadr2bVen | None:
    """An active (not revoked) VEN by its ID or its name."""
    column, value = ("ven_id", ven_id) if ven_id is not None else ("ven_name", ven_name)
    cur = await conn.execute(
        f"SELECT {_VEN_COLUMNS} FROM oadr2b_vens WHERE {column} = %s AND revoked_at IS NULL", (value,)
    )
    row = await cur.fetchone()
    return _ven(row) if row else None


async def record_registration(conn: psycopg.AsyncConnection, ven_pk: int, registration_id: str, now: datetime) -> None:
    await conn.execute(
        "UPDATE oadr2b_vens SET registration_id = %s, registered_at = %s WHERE id = %s", (registration_id, now, ven_pk)
    )


async def touch_poll(conn: psycopg.AsyncConnection, ven_pk: int, now: datetime) -> None:
    await conn.execute("UPDATE oadr2b_vens SET last_poll_at = %s WHERE id = %s", (now, ven_pk))


async def visible_events(conn: psycopg.AsyncConnection, ven: Oadr2bVen, now: datetime) -> list[VisibleEvent]:
    """The scheduler's OpenADR events targeted at the VEN, not yet ended."""
    cur = await conn.execute(
        """SELECT id, program_id, dr_event_pk, body FROM openadr_events
           WHERE dr_event_pk IS NOT NULL AND targets && %s AND (ends_at IS NULL OR ends_at > %s)
           ORDER BY created_at, id""",
        (list(ven.targets), now),
    )
    return [VisibleEvent(r[0], r[1], r[2], r[3]) for r in await cur.fetchall()]


async def deliveries(conn: psycopg.AsyncConnection, ven_pk: int) -> dict[str, Delivery]:
    cur = await conn.execute(
        """SELECT event_id, dr_event_pk, modification_number, signal, cancelled, opt_type
           FROM oadr2b_event_deliveries WHERE ven_pk = %s""",
        (ven_pk,),
    )
    return {r[0]: Delivery(r[0], r[1], r[2], signal_from_json(r[3]), r[4], r[5]) for r in await cur.fetchall()}


async def record_delivery(conn: psycopg.AsyncConnection, ven_pk: int, delivery: Delivery, now: datetime) -> None:
    """What was sent; an earlier opt stays, with the modification number it answered."""
    await conn.execute(
        """INSERT INTO oadr2b_event_deliveries (ven_pk, event_id, dr_event_pk, modification_number, signal,
                                                cancelled, delivered_at)
           VALUES (%s, %s, %s, %s, %s, %s, %s)
           ON CONFLICT (ven_pk, event_id) DO UPDATE SET
               modification_number = EXCLUDED.modification_number, signal = EXCLUDED.signal,
               cancelled = EXCLUDED.cancelled, delivered_at = EXCLUDED.delivered_at""",
        (ven_pk, delivery.event_id, delivery.dr_event_pk, delivery.modification_number,
         Jsonb(delivery.signal.to_json()), delivery.cancelled, now),
    )  # fmt: skip


async def record_opt(conn: psycopg.AsyncConnection, ven_pk: int, event_id: str, opt_type: str, now: datetime) -> bool:
    """Record a VEN's optIn/optOut against the modification it was last sent; False for an unknown event."""
    if opt_type not in ("optIn", "optOut"):
        raise ValueError(f"opt type must be optIn or optOut, not {opt_type!r}")
    cur = await conn.execute(
        """UPDATE oadr2b_event_deliveries SET opt_type = %s, opt_modification_number = modification_number,
                  opted_at = %s
           WHERE ven_pk = %s AND event_id = %s RETURNING 1""",
        (opt_type, now, ven_pk, event_id),
    )
    return await cur.fetchone() is not None


async def store_usage(
    conn: psycopg.AsyncConnection, ven: Oadr2bVen, resource_id: str, slots_kwh: Mapping[datetime, float], now: datetime
) -> list[str]:
    """Store reported kWh per slot as 3.1 USAGE reports, one per event of the VEN covering any of the slots.

    Verification reads 3.1 reports (`vpp.postgres.openadr_dr.reported_usage_kwh`); storing the 2.0b
    usage in the same form makes it count the same way. An event "covers" its own slots and those of its
    same-day adjustment window before it (4 h to 1 h before the start): a VEN that sends no telemetry is
    verified from its reports alone, adjustment included. Returns the report IDs.
    """
    if not slots_kwh:
        return []
    cur = await conn.execute(
        """SELECT e.id, e.program_id, d.start_at, d.end_at FROM openadr_events e
           JOIN dr_events d ON d.id = e.dr_event_pk
           WHERE e.targets && %s AND d.start_at - %s <= %s AND d.end_at > %s""",
        (list(ven.targets), _ADJUSTMENT_LEAD, max(slots_kwh), min(slots_kwh)),
    )
    stored: list[str] = []
    for event_id, program_id, start_at, end_at in await cur.fetchall():
        covered = {start: kwh for start, kwh in slots_kwh.items() if start_at - _ADJUSTMENT_LEAD <= start < end_at}
        if not covered:
            continue
        report_id = f"oadr2b-{uuid.uuid4().hex}"
        body = usage_report_body(event_id, program_id, ven.ven_name, resource_id, covered)
        await conn.execute(
            """INSERT INTO openadr_reports (id, event_id, program_id, client_name, client_id, targets, body,
                                            created_at, modified_at)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)""",
            (report_id, event_id, program_id, ven.ven_name, f"oadr2b:{ven.ven_id}", list(ven.targets), Jsonb(body),
             now, now),
        )  # fmt: skip
        stored.append(report_id)
    return stored


def event_opt_states(conn: psycopg.Connection, dr_event_pk: int) -> list[tuple[str, str, int, str | None]]:
    """Per 2.0b VEN sent this DR event: (ven_name, event_id, modification_number, opt_type or None)."""
    rows = conn.execute(
        """SELECT v.ven_name, d.event_id, d.modification_number, d.opt_type FROM oadr2b_event_deliveries d
           JOIN oadr2b_vens v ON v.id = d.ven_pk WHERE d.dr_event_pk = %s ORDER BY v.ven_name, d.event_id""",
        (dr_event_pk,),
    ).fetchall()
    return [(r[0], r[1], r[2], r[3]) for r in rows]


def current_opt_states(conn: psycopg.Connection, now: datetime) -> dict[str, list[tuple[str, int, str | None]]]:
    """Per VEN name, the events it was sent that have not ended: (event_id, modification_number, opt or None)."""
    rows = conn.execute(
        """SELECT v.ven_name, d.event_id, d.modification_number, d.opt_type FROM oadr2b_event_deliveries d
           JOIN oadr2b_vens v ON v.id = d.ven_pk JOIN dr_events e ON e.id = d.dr_event_pk
           WHERE NOT d.cancelled AND e.end_at > %s ORDER BY v.ven_name, e.start_at, d.event_id""",
        (now,),
    ).fetchall()
    out: dict[str, list[tuple[str, int, str | None]]] = {}
    for ven_name, event_id, number, opt in rows:
        out.setdefault(ven_name, []).append((event_id, number, opt))
    return out


@dataclass(frozen=True, slots=True)
class Opt:
    site_id: str
    event_id: str  # the DR event's
    revision: int
    opt_type: str
    opted_at: datetime
    ven_id: str


def unacknowledged_opts(conn: psycopg.Connection) -> list[Opt]:
    """2.0b opts that answer a called site's latest dispatched revision and are not yet its acknowledgement.

    A VEN opts in (or out) per 2.0b event; the scheduler takes that as the site's acknowledgement of the
    DR event, as it takes an MQTT ack. The revision a delivery carried is in its signal's eventName
    (``... r<revision>``, `vpp.domain.openadr.dr_event_body`); an opt on an older modification does not count.
    """
    rows = conn.execute(
        r"""SELECT s.site_id, e.event_id, e.revision, d.opt_type, d.opted_at, v.ven_id
            FROM oadr2b_event_deliveries d
            JOIN oadr2b_vens v ON v.id = d.ven_pk
            JOIN openadr_events oe ON oe.id = d.event_id
            JOIN dr_events e ON e.id = d.dr_event_pk
            JOIN dr_event_sites es ON es.event_pk = e.id AND es.site_pk = oe.site_pk
            JOIN sites s ON s.id = oe.site_pk
            WHERE e.status IN ('dispatched', 'acknowledged', 'active') AND d.opt_type IS NOT NULL
              AND NOT d.cancelled AND d.opt_modification_number = d.modification_number
              AND (regexp_match(d.signal->>'event_name', ' r(\d+)$'))[1]::int = e.revision
              AND es.dispatched_revision = e.revision AND es.acked_revision IS DISTINCT FROM e.revision
            ORDER BY d.opted_at, s.site_id"""
    ).fetchall()
    return [Opt(*row) for row in rows]
