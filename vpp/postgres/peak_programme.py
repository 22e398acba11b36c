"""Which sites are enrolled in the day's peak programme (``sites.peak_programme``)."""

from __future__ import annotations

from datetime import datetime

import psycopg

__all__ = ["enrolled_site_ids", "set_enrolled", "withdrawn_events"]


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
