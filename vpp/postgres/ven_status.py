"""Which VENs the platform serves, over which OpenADR version, when each last polled, and its opt state.

The dashboard's view (SQLAlchemy async, as the API runs it). 2.0b VENs poll the 2.0b VTN, which records
each poll and each oadrCreatedEvent; 3.1 VENs pull over REST, and the 3.1 VTN records neither, so their
last poll and opt state are unknown (None) rather than guessed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["EventOpt", "VenStatus", "ven_statuses"]


@dataclass(frozen=True, slots=True)
class EventOpt:
    event_id: str  # the OpenADR event's ID
    dr_event_id: str  # the scheduler's DR event
    modification_number: int
    opt: str | None  # optIn, optOut, or None while unanswered


@dataclass(frozen=True, slots=True)
class VenStatus:
    protocol: str  # "2.0b" or "3.1"
    ven_name: str
    ven_id: str
    targets: tuple[str, ...]
    registered: bool
    revoked: bool
    last_poll_at: datetime | None
    events: list[EventOpt] = field(default_factory=list)


async def ven_statuses(conn: AsyncConnection, now: datetime) -> list[VenStatus]:
    """Every VEN of both VTNs, by name; 2.0b VENs with their opt state on events not yet ended."""
    opts: dict[str, list[EventOpt]] = {}
    rows = await conn.execute(
        text(
            """SELECT v.ven_id, d.event_id, e.event_id, d.modification_number, d.opt_type
               FROM oadr2b_event_deliveries d JOIN oadr2b_vens v ON v.id = d.ven_pk
               JOIN dr_events e ON e.id = d.dr_event_pk
               WHERE NOT d.cancelled AND e.end_at > :now ORDER BY e.start_at, d.event_id"""
        ),
        {"now": now},
    )
    for ven_id, event_id, dr_event_id, number, opt in rows:
        opts.setdefault(ven_id, []).append(EventOpt(event_id, dr_event_id, number, opt))
    out = [
        VenStatus("2.0b", r[1], r[0], tuple(r[2] or ()), r[3] is not None, r[4], r[5], opts.get(r[0], []))
        for r in await conn.execute(
            text(
                """SELECT ven_id, ven_name, targets, registration_id, revoked_at IS NOT NULL, last_poll_at
                   FROM oadr2b_vens"""
            )
        )
    ]
    out += [
        VenStatus("3.1", r[1], r[0], tuple(r[2] or ()), True, False, None)
        for r in await conn.execute(text("SELECT id, ven_name, targets FROM openadr_vens"))
    ]
    return sorted(out, key=lambda v: (v.ven_name, v.protocol))
