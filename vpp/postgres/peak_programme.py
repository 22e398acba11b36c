"""Which sites are enrolled in the day's peak programme (``sites.peak_programme``)."""

from __future__ import annotations

import psycopg

__all__ = ["enrolled_site_ids", "set_enrolled"]


def enrolled_site_ids(conn: psycopg.Connection) -> list[str]:
    rows = conn.execute("SELECT site_id FROM sites WHERE peak_programme ORDER BY site_id").fetchall()
    return [row[0] for row in rows]


def set_enrolled(conn: psycopg.Connection, site_id: str, enrolled: bool) -> bool:
    """Enrol or withdraw a site; False when there is no such site. Caller commits."""
    row = conn.execute(
        "UPDATE sites SET peak_programme = %s WHERE site_id = %s RETURNING id", (enrolled, site_id)
    ).fetchone()
    return row is not None
