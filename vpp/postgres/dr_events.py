"""DR events, their sites, the audit trail and acknowledgements. Functions take a connection; callers commit.

Every status change goes through :func:`transition`, which locks the event row, checks the change against
the lifecycle (:func:`vpp.domain.dr_events.check_transition`) and appends the audit row in the same
transaction, so the audit trail cannot disagree with the status.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from vpp.domain.dr_events import DrAck, EventStatus, SignalEvent, SignalInterval, check_transition
from vpp.domain.site_signal import EventPart
from vpp.domain.slots import SLOT

__all__ = [
    "DrEventRow",
    "EventSiteRow",
    "add_audit",
    "audit_trail",
    "bump_revision",
    "clear_pending",
    "committed_kw",
    "create_event",
    "drop_pending_action",
    "event_sites",
    "get_event",
    "list_events",
    "parts_in_effect",
    "pending_requests",
    "record_ack",
    "record_dispatch",
    "set_event_sites",
    "set_requested_kw",
    "transition",
]


@dataclass(frozen=True)
class DrEventRow:
    pk: int
    event_id: str
    kind: str
    status: EventStatus
    region_id: str | None
    start_at: datetime
    end_at: datetime
    requested_kw: float
    allocated_kw: float
    shortfall_kw: float
    incentive_jpy_per_kwh: float
    revision: int
    source: str
    created_at: datetime
    updated_at: datetime
    site_ids: tuple[str, ...] | None
    pending_action: str | None
    direction: str = "reduce"


@dataclass(frozen=True)
class EventSiteRow:
    site_pk: int
    site_id: str
    allocated_kw: float
    import_limit_kw: float | None
    import_floor_kw: list[float] | None  # one per event slot, "increase" events only
    plan: dict[str, Any] | None
    dispatched_revision: int | None
    acked_revision: int | None
    ack_status: str | None
    acked_at: datetime | None
    deliverable_kw: float | None = None
    limit_reachable: bool | None = None


_EVENT_COLUMNS = (
    "id, event_id, kind, status, region_id, start_at, end_at, requested_kw, allocated_kw, shortfall_kw,"
    " incentive_jpy_per_kwh, revision, source, created_at, updated_at, site_ids, pending_action, direction"
)


def _event(row: Sequence[Any]) -> DrEventRow:
    site_ids = tuple(row[15]) if row[15] is not None else None
    return DrEventRow(
        row[0], row[1], row[2], EventStatus(row[3]), row[4], row[5], row[6], row[7], row[8], row[9], row[10],
        row[11], row[12], row[13], row[14], site_ids, row[16], row[17],
    )  # fmt: skip


def add_audit(
    conn: psycopg.Connection, event_pk: int, at: datetime, actor: str, action: str,
    from_status: str | None, to_status: str | None, detail: dict[str, Any] | None,
) -> None:  # fmt: skip
    conn.execute(
        """INSERT INTO dr_event_audit (event_pk, at, actor, action, from_status, to_status, detail)
           VALUES (%s, %s, %s, %s, %s, %s, %s)""",
        (event_pk, at, actor, action, from_status, to_status, Jsonb(detail) if detail is not None else None),
    )


def create_event(
    conn: psycopg.Connection,
    *,
    event_id: str,
    kind: str,
    start_at: datetime,
    end_at: datetime,
    requested_kw: float,
    incentive_jpy_per_kwh: float,
    region_id: str | None,
    source: str,
    actor: str,
    now: datetime,
    site_ids: Sequence[str] | None = None,
    pending_action: str | None = None,
    direction: str = "reduce",
) -> DrEventRow:
    """Insert a planned event and its "created" audit row."""
    row = conn.execute(
        f"""INSERT INTO dr_events (event_id, kind, status, region_id, start_at, end_at, requested_kw,
                                   incentive_jpy_per_kwh, source, created_at, updated_at, site_ids, pending_action,
                                   pending_actor, direction)
            VALUES (%s, %s, 'planned', %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
            RETURNING {_EVENT_COLUMNS}""",
        (
            event_id,
            kind,
            region_id,
            start_at,
            end_at,
            requested_kw,
            incentive_jpy_per_kwh,
            source,
            now,
            now,
            list(site_ids) if site_ids is not None else None,
            pending_action,
            actor if pending_action else None,
            direction,
        ),
    ).fetchone()
    assert row is not None
    event = _event(row)
    add_audit(conn, event.pk, now, actor, "created", None, EventStatus.PLANNED,
              {"requested_kw": requested_kw, "direction": direction, "start_at": start_at.isoformat(),
               "end_at": end_at.isoformat()})  # fmt: skip
    return event


def set_event_sites(
    conn: psycopg.Connection,
    event_pk: int,
    rows: Sequence[tuple[int, float, float | None, dict[str, Any] | None]],
    *,
    allocated_kw: float,
    shortfall_kw: float,
    floors_kw: Sequence[Sequence[float] | None] | None = None,
    deliverable_kw: float | None = None,
    site_deliverables: Sequence[tuple[float | None, bool | None]] | None = None,
) -> None:
    """Replace the event's sites with ``(site_pk, allocated_kw, import_limit_kw, plan)`` rows.

    ``floors_kw`` gives each row's import floor per event slot ("increase" events), in the same order;
    ``site_deliverables`` each row's ``(deliverable_kw, limit_reachable)``; ``deliverable_kw`` the total over
    every candidate site, called or not.
    """
    floors = list(floors_kw) if floors_kw is not None else [None] * len(rows)
    facts = list(site_deliverables) if site_deliverables is not None else [(None, None)] * len(rows)
    conn.execute("DELETE FROM dr_event_sites WHERE event_pk = %s", (event_pk,))
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO dr_event_sites (event_pk, site_pk, allocated_kw, import_limit_kw, import_floor_kw, plan,
                                          deliverable_kw, limit_reachable)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s)""",
            [
                (event_pk, site_pk, kw, limit, list(floor) if floor is not None else None,
                 Jsonb(plan) if plan is not None else None, fact[0], fact[1])
                for (site_pk, kw, limit, plan), floor, fact in zip(rows, floors, facts, strict=True)
            ],
        )  # fmt: skip
    conn.execute(
        "UPDATE dr_events SET allocated_kw = %s, shortfall_kw = %s, deliverable_kw = %s WHERE id = %s",
        (allocated_kw, shortfall_kw, deliverable_kw, event_pk),
    )


def transition(
    conn: psycopg.Connection,
    event_id: str,
    new_status: EventStatus,
    *,
    actor: str,
    now: datetime,
    action: str | None = None,
    detail: dict[str, Any] | None = None,
    bump_revision: bool = False,
) -> DrEventRow:
    """Change an event's status (checked against the lifecycle) and append the audit row.

    Raises ``LookupError`` for an unknown event and
    :class:`vpp.domain.dr_events.IllegalTransition` for a forbidden change.
    """
    current = conn.execute("SELECT id, status FROM dr_events WHERE event_id = %s FOR UPDATE", (event_id,)).fetchone()
    if current is None:
        raise LookupError(f"no DR event {event_id!r}")
    target = check_transition(current[1], new_status)
    row = conn.execute(
        f"""UPDATE dr_events SET status = %s, updated_at = %s, revision = revision + %s
            WHERE id = %s RETURNING {_EVENT_COLUMNS}""",
        (target, now, 1 if bump_revision else 0, current[0]),
    ).fetchone()
    assert row is not None
    add_audit(conn, current[0], now, actor, action or str(target), current[1], target, detail)
    return _event(row)


def bump_revision(
    conn: psycopg.Connection, event_id: str, *, actor: str, now: datetime, detail: dict[str, Any]
) -> DrEventRow:
    """A new revision of an event in effect, its status unchanged (a re-plan during an active event)."""
    row = conn.execute(
        f"""UPDATE dr_events SET revision = revision + 1, updated_at = %s WHERE event_id = %s
            RETURNING {_EVENT_COLUMNS}""",
        (now, event_id),
    ).fetchone()
    if row is None:
        raise LookupError(f"no DR event {event_id!r}")
    event = _event(row)
    add_audit(conn, event.pk, now, actor, "revision", str(event.status), str(event.status), detail)
    return event


def get_event(conn: psycopg.Connection, event_id: str) -> DrEventRow | None:
    row = conn.execute(f"SELECT {_EVENT_COLUMNS} FROM dr_events WHERE event_id = %s", (event_id,)).fetchone()
    return _event(row) if row else None


def list_events(
    conn: psycopg.Connection,
    *,
    statuses: Sequence[str] | None = None,
    ending_after: datetime | None = None,
    limit: int = 200,
) -> list[DrEventRow]:
    """Events newest first, optionally only some statuses or those ending after an instant."""
    rows = conn.execute(
        f"""SELECT {_EVENT_COLUMNS} FROM dr_events
            WHERE (%(statuses)s::text[] IS NULL OR status = ANY(%(statuses)s::text[]))
              AND (%(after)s::timestamptz IS NULL OR end_at > %(after)s::timestamptz)
            ORDER BY start_at DESC, id DESC LIMIT %(limit)s""",
        {"statuses": list(statuses) if statuses is not None else None, "after": ending_after, "limit": limit},
    ).fetchall()
    return [_event(row) for row in rows]


def committed_kw(
    conn: psycopg.Connection, event_pk: int, start: datetime, end: datetime, direction: str,
    own_control_sources: Sequence[str],
) -> dict[str, float]:  # fmt: skip
    """What other DR events in the same direction whose windows overlap [start, end) already ask of each site, kW
    (their shares summed: a site's flexibility is there once, however many events call on it). Cancelled and
    completed events, and the sites' own demand control, ask nothing."""
    rows = conn.execute(
        """SELECT s.site_id, sum(es.allocated_kw) FROM dr_events e JOIN dr_event_sites es ON es.event_pk = e.id
           JOIN sites s ON s.id = es.site_pk
           WHERE e.id <> %s AND e.status NOT IN ('cancelled', 'completed') AND e.direction = %s
             AND e.source <> ALL(%s) AND e.start_at < %s AND e.end_at > %s AND es.allocated_kw > 0
           GROUP BY s.site_id""",
        (event_pk, direction, list(own_control_sources), end, start),
    ).fetchall()
    return {str(row[0]): float(row[1]) for row in rows}


def event_sites(conn: psycopg.Connection, event_pk: int) -> list[EventSiteRow]:
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            """SELECT es.site_pk, s.site_id, es.allocated_kw, es.import_limit_kw, es.import_floor_kw, es.plan,
                      es.dispatched_revision,
                      es.acked_revision, es.ack_status, es.acked_at, es.deliverable_kw, es.limit_reachable
               FROM dr_event_sites es JOIN sites s ON s.id = es.site_pk
               WHERE es.event_pk = %s ORDER BY s.site_id""",
            (event_pk,),
        ).fetchall()
    return [EventSiteRow(**row) for row in rows]


def audit_trail(conn: psycopg.Connection, event_pk: int) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """SELECT at, actor, action, from_status, to_status, detail FROM dr_event_audit
               WHERE event_pk = %s ORDER BY at, id""",
            (event_pk,),
        ).fetchall()


def record_dispatch(
    conn: psycopg.Connection, event_pk: int, site_pks: Sequence[int], revision: int, at: datetime
) -> None:
    conn.execute(
        """UPDATE dr_event_sites SET dispatched_revision = %s, dispatched_at = %s
           WHERE event_pk = %s AND site_pk = ANY(%s)""",
        (revision, at, event_pk, list(site_pks)),
    )


def record_ack(
    conn: psycopg.Connection, site_id: str, payload: bytes, at: datetime, ack: DrAck | None, error: str | None
) -> tuple[DrEventRow, bool] | None:
    """Store an acknowledgement; return (event, every called site accepted its latest revision) or None.

    Acks of an older revision are stored but do not count: the site has not yet seen the change.
    """
    site = conn.execute("SELECT id FROM sites WHERE site_id = %s", (site_id,)).fetchone()
    site_pk = site[0] if site else None
    conn.execute(
        """INSERT INTO dr_acks (received_at, site_pk, event_id, revision, accepted, payload, error)
           VALUES (%s, %s, %s, %s, %s, %s, %s)""",
        (at, site_pk, ack.event_id if ack else None, ack.revision if ack else None,
         ack.accepted if ack else None, payload, error),
    )  # fmt: skip
    if ack is None or site_pk is None:
        return None
    event = get_event(conn, ack.event_id)
    if event is None:
        return None
    conn.execute(
        """UPDATE dr_event_sites SET acked_revision = %s, acked_at = %s, ack_status = %s
           WHERE event_pk = %s AND site_pk = %s AND dispatched_revision = %s""",
        (ack.revision, at, "accepted" if ack.accepted else "rejected", event.pk, site_pk, ack.revision),
    )
    pending = conn.execute(
        """SELECT count(*) FROM dr_event_sites WHERE event_pk = %s AND allocated_kw > 0
             AND (acked_revision IS DISTINCT FROM %s OR ack_status <> 'accepted')""",
        (event.pk, event.revision),
    ).fetchone()
    return event, bool(pending and pending[0] == 0)


def pending_requests(conn: psycopg.Connection) -> list[tuple[str, str, str]]:
    """(event_id, action, actor) the API asked of the scheduler, oldest first."""
    rows = conn.execute(
        """SELECT event_id, pending_action, coalesce(pending_actor, 'api') FROM dr_events
           WHERE pending_action IS NOT NULL ORDER BY id"""
    ).fetchall()
    return [(row[0], row[1], row[2]) for row in rows]


def set_requested_kw(conn: psycopg.Connection, event_pk: int, requested_kw: float) -> None:
    conn.execute("UPDATE dr_events SET requested_kw = %s WHERE id = %s", (requested_kw, event_pk))


def drop_pending_action(conn: psycopg.Connection, event_pk: int) -> None:
    """Forget an API request without an audit row (the caller's transition already records what happened)."""
    conn.execute("UPDATE dr_events SET pending_action = NULL WHERE id = %s", (event_pk,))


def clear_pending(conn: psycopg.Connection, event_pk: int, *, now: datetime, actor: str, action: str) -> None:
    row = conn.execute(
        "UPDATE dr_events SET pending_action = NULL, pending_actor = NULL WHERE id = %s RETURNING status", (event_pk,)
    ).fetchone()
    status = row[0] if row else None
    add_audit(conn, event_pk, now, actor, action, status, status, None)


# Events whose signals are out and whose window has not ended: what a site's retained signal must carry.
_IN_EFFECT = ("dispatched", "acknowledged", "active")


def parts_in_effect(conn: psycopg.Connection, site_pk: int, now: datetime) -> list[EventPart]:
    """Every event in effect at a site now, as its own intervals there (for :func:`site_signal`).

    A "reduce" event is one interval with the site's import limit; an "increase" event is one interval per
    event slot with that slot's import floor.
    """
    rows = conn.execute(
        """SELECT e.event_id, e.revision, e.direction, e.start_at, e.end_at, es.import_limit_kw, es.import_floor_kw
           FROM dr_events e JOIN dr_event_sites es ON es.event_pk = e.id
           WHERE es.site_pk = %s AND e.status = ANY(%s) AND e.end_at > %s AND es.allocated_kw > 0
           ORDER BY e.start_at, e.event_id""",
        (site_pk, list(_IN_EFFECT), now),
    ).fetchall()
    parts: list[EventPart] = []
    for event_id, revision, direction, start, end, limit_kw, floors_kw in rows:
        if floors_kw:
            intervals = tuple(
                SignalInterval(start + k * SLOT, start + (k + 1) * SLOT, limit_kw, floor_kw)
                for k, floor_kw in enumerate(floors_kw)
            )
        else:
            intervals = (SignalInterval(start, end, limit_kw),)
        parts.append(EventPart(SignalEvent(event_id, revision, direction, start, end), intervals))
    return parts
