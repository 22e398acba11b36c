"""Verified DR reductions per event, site and slot, and the settlement report built from them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time

import psycopg

from vpp.domain.dr_events import OWN_CONTROL_SOURCES, EventCover, settle
from vpp.domain.slots import JST

__all__ = [
    "ReductionRow",
    "SettlementLine",
    "dispatched_dr_days",
    "events_awaiting_verification",
    "other_events_at_site",
    "save_reductions",
    "settlement_lines",
    "verified_reductions",
]


def dispatched_dr_days(conn: psycopg.Connection, site_pk: int, before: date, event_pk: int) -> set[date]:
    """JST days before ``before`` on which the site was sent a DR event (the ERAB baseline skips them).

    Only events actually dispatched to the site count, and never the site's own live demand control:
    an event that was planned and never sent, or cancelled, did not change the site's use that day.
    """
    rows = conn.execute(
        """SELECT e.start_at FROM dr_events e JOIN dr_event_sites es ON es.event_pk = e.id
           WHERE es.site_pk = %s AND e.id <> %s AND e.status <> 'cancelled' AND es.dispatched_at IS NOT NULL
             AND e.source <> ALL(%s) AND e.start_at < %s""",
        (site_pk, event_pk, list(OWN_CONTROL_SOURCES), datetime.combine(before, time(0), JST)),
    ).fetchall()
    return {row[0].astimezone(JST).date() for row in rows}


def other_events_at_site(
    conn: psycopg.Connection, site_pk: int, event_pk: int, start: datetime, end: datetime
) -> list[EventCover]:
    """Other events sent to the site whose windows overlap [start, end): they share its measured delivery
    (:func:`vpp.domain.dr_events.attribution_shares`). Events never sent, or cancelled, changed nothing."""
    rows = conn.execute(
        """SELECT e.start_at, e.end_at, es.allocated_kw, e.source = ANY(%s), e.direction
           FROM dr_events e JOIN dr_event_sites es ON es.event_pk = e.id
           WHERE es.site_pk = %s AND e.id <> %s AND e.status <> 'cancelled' AND es.dispatched_at IS NOT NULL
             AND e.start_at < %s AND e.end_at > %s""",
        (list(OWN_CONTROL_SOURCES), site_pk, event_pk, end, start),
    ).fetchall()
    return [EventCover(row[0], row[1], float(row[2]), bool(row[3]), str(row[4])) for row in rows]


@dataclass(frozen=True)
class ReductionRow:
    slot_start: datetime
    baseline_kwh: float
    actual_kwh: float | None
    reduction_kwh: float | None


def save_reductions(
    conn: psycopg.Connection, event_pk: int, site_pk: int, rows: Sequence[ReductionRow], method: str, at: datetime
) -> None:
    """Replace a site's verified rows for an event (verification is re-run as late data arrives)."""
    conn.execute("DELETE FROM dr_verified_reductions WHERE event_pk = %s AND site_pk = %s", (event_pk, site_pk))
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO dr_verified_reductions (event_pk, site_pk, slot_start, baseline_kwh, actual_kwh,
                                                   reduction_kwh, method, verified_at)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s)""",
            [
                (event_pk, site_pk, r.slot_start, r.baseline_kwh, r.actual_kwh, r.reduction_kwh, method, at)
                for r in rows
            ],
        )


def verified_reductions(conn: psycopg.Connection, event_pk: int) -> dict[str, list[ReductionRow]]:
    rows = conn.execute(
        """SELECT s.site_id, v.slot_start, v.baseline_kwh, v.actual_kwh, v.reduction_kwh
           FROM dr_verified_reductions v JOIN sites s ON s.id = v.site_pk
           WHERE v.event_pk = %s ORDER BY s.site_id, v.slot_start""",
        (event_pk,),
    ).fetchall()
    out: dict[str, list[ReductionRow]] = {}
    for site_id, *values in rows:
        out.setdefault(site_id, []).append(ReductionRow(*values))
    return out


@dataclass(frozen=True)
class SettlementLine:
    event_id: str
    site_id: str
    start_at: datetime
    end_at: datetime
    incentive_jpy_per_kwh: float
    delivered_kwh: float
    settled_kwh: float
    amount_jpy: float
    missing_slots: int
    method: str


def settlement_lines(
    conn: psycopg.Connection, *, since: datetime | None = None, until: datetime | None = None,
    event_id: str | None = None,
) -> list[SettlementLine]:  # fmt: skip
    """One line per event and site with verified reductions, settled at the event's incentive."""
    rows = conn.execute(
        """SELECT e.event_id, s.site_id, e.start_at, e.end_at, e.incentive_jpy_per_kwh,
                  array_agg(coalesce(v.reduction_kwh, 'NaN'::float8) ORDER BY v.slot_start), min(v.method)
           FROM dr_verified_reductions v JOIN dr_events e ON e.id = v.event_pk JOIN sites s ON s.id = v.site_pk
           WHERE (%(since)s::timestamptz IS NULL OR e.start_at >= %(since)s::timestamptz)
             AND (%(until)s::timestamptz IS NULL OR e.start_at < %(until)s::timestamptz)
             AND (%(event)s::text IS NULL OR e.event_id = %(event)s::text)
           GROUP BY e.event_id, s.site_id, e.start_at, e.end_at, e.incentive_jpy_per_kwh
           ORDER BY e.start_at, e.event_id, s.site_id""",
        {"since": since, "until": until, "event": event_id},
    ).fetchall()
    lines = []
    for event, site, start, end, incentive, reductions, method in rows:
        result = settle([float(r) for r in reductions], float(incentive))
        lines.append(SettlementLine(event, site, start, end, float(incentive), result.delivered_kwh,
                                    result.settled_kwh, result.amount_jpy, result.missing_slots, method))  # fmt: skip
    return lines


def events_awaiting_verification(conn: psycopg.Connection, ended_after: datetime, ended_by: datetime) -> list[str]:
    """Ids of completed events that ended in (ended_after, ended_by] and have no site's measured energy yet."""
    rows = conn.execute(
        """SELECT e.event_id FROM dr_events e WHERE e.status = 'completed' AND e.end_at > %s
             AND e.end_at <= %s
             AND NOT EXISTS (SELECT 1 FROM dr_verified_reductions v
                             WHERE v.event_pk = e.id AND v.actual_kwh IS NOT NULL)""",
        (ended_after, ended_by),
    ).fetchall()
    return [row[0] for row in rows]
