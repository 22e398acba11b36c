"""Which sites are enrolled in the day's peak programme (``sites.peak_programme``), and what it does at each
(``peak_programme_status``)."""

from __future__ import annotations

from datetime import date, datetime

import psycopg

__all__ = ["enrolled_site_ids", "record_status", "set_enrolled", "withdrawn_events"]


def enrolled_site_ids(conn: psycopg.Connection) -> list[str]:
    rows = conn.execute("SELECT site_id FROM sites WHERE peak_programme ORDER BY site_id").fetchall()
    return [row[0] for row in rows]


def set_enrolled(conn: psycopg.Connection, site_id: str, enrolled: bool) -> bool:
    """Enrol or withdraw a site; False when there is no such site. Caller commits."""
    row = conn.execute(
        "UPDATE sites SET peak_programme = %s WHERE site_id = %s RETURNING id", (enrolled, site_id)
    ).fetchone()
    return row is not None


def withdrawn_events(conn: psycopg.Connection, source: str, now: datetime) -> list[str]:
    """Ids of the programme's events (``source``) still in effect at a site no longer enrolled."""
    rows = conn.execute(
        """SELECT e.event_id FROM dr_events e
           WHERE e.source = %s AND e.status IN ('dispatched', 'acknowledged', 'active') AND e.end_at > %s
             AND NOT EXISTS (SELECT 1 FROM sites s WHERE s.site_id = ANY(e.site_ids) AND s.peak_programme)
           ORDER BY e.event_id""",
        (source, now),
    ).fetchall()
    return [row[0] for row in rows]


def record_status(
    conn: psycopg.Connection,
    site_pk: int,
    day: date,
    slot: int,
    now: datetime,
    state: str,
    *,
    why: str | None = None,
    reason: str | None = None,
    limit_kw: float | None = None,
) -> None:
    """What the programme did at a site in slot ``slot`` of ``day`` (``state``: holding, solving, left_out), with
    the limit in force then. A new day starts the day's limits afresh. Caller commits."""
    row = conn.execute(
        "SELECT day, limits_kw FROM peak_programme_status WHERE site_pk = %s FOR UPDATE", (site_pk,)
    ).fetchone()
    limits: list[float | None] = list(row[1]) if row is not None and row[0] == day else []
    if limit_kw is not None:
        limits.extend([None] * (slot + 1 - len(limits)))
        limits[slot] = limit_kw
    conn.execute(
        """INSERT INTO peak_programme_status (site_pk, day, checked_at, state, why, reason, limits_kw)
           VALUES (%s, %s, %s, %s, %s, %s, %s)
           ON CONFLICT (site_pk) DO UPDATE SET day = EXCLUDED.day, checked_at = EXCLUDED.checked_at,
               state = EXCLUDED.state, why = EXCLUDED.why, reason = EXCLUDED.reason, limits_kw = EXCLUDED.limits_kw""",
        (site_pk, day, now, state, why, reason, limits),
    )
