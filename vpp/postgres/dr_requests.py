"""The API's side of DR events (async SQLAlchemy): record requests, read events, audit and verification.

The API never plans or publishes: it records what the operator asked (``pending_action``) with an
audit row, and the scheduler process carries it out on its next tick (``vpp.postgres.dr_events``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from vpp.domain.dr_events import Settlement, settle

__all__ = [
    "event_detail",
    "list_event_rows",
    "record_request",
    "request_action",
    "settlement_rows",
    "unknown_site_ids",
    "verified_savings_kwh",
]

_EVENT = """e.event_id, e.kind, e.direction, e.status, e.region_id, e.start_at, e.end_at, e.requested_kw,
    e.allocated_kw, e.shortfall_kw, e.incentive_jpy_per_kwh, e.revision, e.source, e.created_at, e.updated_at,
    e.site_ids, e.pending_action, e.deliverable_kw"""


async def _audit(conn: AsyncConnection, event_pk: int, at: datetime, actor: str, action: str, status: str) -> None:
    await conn.execute(
        text(
            """INSERT INTO dr_event_audit (event_pk, at, actor, action, from_status, to_status)
               VALUES (:pk, :at, :actor, :action, :status, :status)"""
        ),
        {"pk": event_pk, "at": at, "actor": actor, "action": action, "status": status},
    )


async def unknown_site_ids(conn: AsyncConnection, site_ids: Sequence[str]) -> list[str]:
    """The ids in `site_ids` that name no registered site, in the order given."""
    rows = await conn.execute(
        text("SELECT site_id FROM sites WHERE site_id = ANY(CAST(:ids AS text[]))"), {"ids": list(site_ids)}
    )
    known = {str(row[0]) for row in rows}
    return [site_id for site_id in dict.fromkeys(site_ids) if site_id not in known]


async def region_member_ids(conn: AsyncConnection, region_pk: int) -> list[str]:
    """The site ids of a region's members (an event for the region calls these)."""
    rows = await conn.execute(
        text(
            """SELECT s.site_id FROM region_sites rs JOIN sites s ON s.id = rs.site_pk
               WHERE rs.region_pk = :region_pk ORDER BY s.site_id"""
        ),
        {"region_pk": region_pk},
    )
    return [str(row[0]) for row in rows]


async def record_request(
    conn: AsyncConnection,
    *,
    event_id: str,
    kind: str,
    start_at: datetime,
    end_at: datetime,
    requested_kw: float,
    incentive_jpy_per_kwh: float,
    region_id: str | None,
    site_ids: Sequence[str] | None,
    source: str,
    actor: str,
    now: datetime,
    direction: str = "reduce",
) -> None:
    """Insert a planned event awaiting allocation (pending "plan") and its "created" audit row."""
    row = (
        await conn.execute(
            text(
                """INSERT INTO dr_events (event_id, kind, direction, status, region_id, start_at, end_at, requested_kw,
                       incentive_jpy_per_kwh, source, created_at, updated_at, site_ids, pending_action, pending_actor)
                   VALUES (:event_id, :kind, :direction, 'planned', :region_id, :start_at, :end_at, :requested_kw,
                       :incentive, :source, :now, :now, :site_ids, 'plan', :actor) RETURNING id"""
            ),
            {
                "event_id": event_id,
                "kind": kind,
                "direction": direction,
                "region_id": region_id,
                "start_at": start_at,
                "end_at": end_at,
                "requested_kw": requested_kw,
                "incentive": incentive_jpy_per_kwh,
                "source": source,
                "now": now,
                "site_ids": list(site_ids) if site_ids is not None else None,
                "actor": actor,
            },
        )
    ).one()
    await _audit(conn, int(row[0]), now, actor, "created", "planned")


async def request_action(
    conn: AsyncConnection, event_id: str, action: str, *, actor: str, now: datetime, requested_kw: float | None = None
) -> str | None:
    """Record an adjust ("replan") or "cancel" request; returns the event's status, None if unknown."""
    row = (
        await conn.execute(
            text(
                """UPDATE dr_events SET pending_action = :action, pending_actor = :actor,
                       requested_kw = coalesce(:kw, requested_kw), updated_at = :now
                   WHERE event_id = :event_id RETURNING id, status"""
            ),
            {"action": action, "actor": actor, "kw": requested_kw, "now": now, "event_id": event_id},
        )
    ).one_or_none()
    if row is None:
        return None
    detail = f"{action} requested" + (f" ({requested_kw:g} kW)" if requested_kw is not None else "")
    await _audit(conn, int(row[0]), now, actor, detail, str(row[1]))
    return str(row[1])


async def list_event_rows(
    conn: AsyncConnection, *, status: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    result = await conn.execute(
        text(
            f"""SELECT {_EVENT} FROM dr_events e WHERE (CAST(:status AS text) IS NULL OR e.status = :status)
                ORDER BY e.start_at DESC, e.id DESC LIMIT :limit"""
        ),
        {"status": status, "limit": limit},
    )
    return [dict(row) for row in result.mappings()]


async def event_detail(conn: AsyncConnection, event_id: str) -> dict[str, Any] | None:
    """The event with its sites (allocation, limit, ack), audit trail and verified reductions."""
    head = (
        await conn.execute(text(f"SELECT e.id, {_EVENT} FROM dr_events e WHERE e.event_id = :id"), {"id": event_id})
    ).mappings().one_or_none()  # fmt: skip
    if head is None:
        return None
    event = dict(head)
    pk = event.pop("id")
    sites = await conn.execute(
        text(
            """SELECT s.site_id, es.allocated_kw, es.import_limit_kw, es.import_floor_kw, es.dispatched_revision,
                      es.dispatched_at,
                      es.acked_revision, es.acked_at, es.ack_status, es.deliverable_kw, es.limit_reachable
               FROM dr_event_sites es JOIN sites s ON s.id = es.site_pk WHERE es.event_pk = :pk ORDER BY s.site_id"""
        ),
        {"pk": pk},
    )
    audit = await conn.execute(
        text(
            """SELECT at, actor, action, from_status, to_status, detail FROM dr_event_audit
               WHERE event_pk = :pk ORDER BY at, id"""
        ),
        {"pk": pk},
    )
    verified = await conn.execute(
        text(
            """SELECT s.site_id, v.slot_start, v.baseline_kwh, v.actual_kwh, v.reduction_kwh, v.method
               FROM dr_verified_reductions v JOIN sites s ON s.id = v.site_pk
               WHERE v.event_pk = :pk ORDER BY s.site_id, v.slot_start"""
        ),
        {"pk": pk},
    )
    event["sites"] = [dict(row) for row in sites.mappings()]
    event["audit"] = [dict(row) for row in audit.mappings()]
    event["verified"] = [dict(row) for row in verified.mappings()]
    return event


async def settlement_rows(
    conn: AsyncConnection, *, since: datetime | None, until: datetime | None, event_id: str | None
) -> list[tuple[dict[str, Any], Settlement]]:
    """One row per event and site with verified reductions, settled at the event's incentive."""
    result = await conn.execute(
        text(
            """SELECT e.event_id, s.site_id, e.start_at, e.end_at, e.incentive_jpy_per_kwh, min(v.method) AS method,
                      array_agg(coalesce(v.reduction_kwh, 'NaN'::float8) ORDER BY v.slot_start) AS reductions
               FROM dr_verified_reductions v JOIN dr_events e ON e.id = v.event_pk JOIN sites s ON s.id = v.site_pk
               WHERE (CAST(:since AS timestamptz) IS NULL OR e.start_at >= :since)
                 AND (CAST(:until AS timestamptz) IS NULL OR e.start_at < :until)
                 AND (CAST(:event_id AS text) IS NULL OR e.event_id = :event_id)
               GROUP BY e.event_id, s.site_id, e.start_at, e.end_at, e.incentive_jpy_per_kwh
               ORDER BY e.start_at, e.event_id, s.site_id"""
        ),
        {"since": since, "until": until, "event_id": event_id},
    )
    out = []
    for row in result.mappings():
        line = dict(row)
        reductions = [float(value) for value in line.pop("reductions")]
        out.append((line, settle(reductions, float(line["incentive_jpy_per_kwh"]))))
    return out


async def verified_savings_kwh(
    conn: AsyncConnection, start: datetime, end: datetime, site_ids: Sequence[str] | None = None
) -> float:
    """Saved electricity for the sufficiency ratio: verified DR reductions in [start, end), kWh.

    Summed per event and site and floored at zero there (as settled), so one site's overshoot does not
    cancel another's delivery; cancelled events never count, nor do "increase" events (extra consumption).
    """
    row = (
        await conn.execute(
            text(
                """SELECT coalesce(sum(greatest(delivered, 0)), 0) FROM (
                       SELECT sum(v.reduction_kwh) AS delivered
                       FROM dr_verified_reductions v JOIN dr_events e ON e.id = v.event_pk
                       JOIN sites s ON s.id = v.site_pk
                       WHERE e.status <> 'cancelled' AND e.direction = 'reduce'
                         AND v.slot_start >= :start AND v.slot_start < :end
                         AND (CAST(:site_ids AS text[]) IS NULL OR s.site_id = ANY(CAST(:site_ids AS text[])))
                       GROUP BY v.event_pk, v.site_pk) per_site"""
            ),
            {"start": start, "end": end, "site_ids": list(site_ids) if site_ids is not None else None},
        )
    ).one()
    return float(row[0])
