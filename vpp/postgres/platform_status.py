"""What `vpp status` prints: sites with their devices' last readings, recent 30-minute energy, dead letters."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

import psycopg

__all__ = [
    "DeadLetter",
    "DeadLetterSummary",
    "EnergySlot",
    "SiteOverview",
    "dead_letter_summary",
    "latest_dead_letters",
    "latest_slots",
    "site_overview",
    "totals",
]


class SiteOverview(NamedTuple):
    site_pk: int
    site_id: str
    name: str
    last_reading_at: datetime | None
    devices: int
    online: bool | None


class EnergySlot(NamedTuple):
    slot_start: datetime
    import_kwh: float
    export_kwh: float
    pv_kwh: float
    battery_charge_kwh: float
    battery_discharge_kwh: float
    ev_kwh: float
    load_kwh: float
    coverage: float


class DeadLetterSummary(NamedTuple):
    reason: str
    messages: int
    latest: datetime


def site_overview(conn: psycopg.Connection, site_id: str | None, limit: int = 50) -> list[SiteOverview]:
    """Sites (one, or the first `limit` by id) with device count, newest reading and retained status."""
    rows = conn.execute(
        """SELECT s.id, s.site_id, s.name, max(d.last_reading_at), count(d.id), st.online
           FROM sites s LEFT JOIN devices d ON d.site_pk = s.id LEFT JOIN site_status st ON st.site_pk = s.id
           WHERE %(site)s::text IS NULL OR s.site_id = %(site)s
           GROUP BY s.id, st.online ORDER BY s.site_id LIMIT %(limit)s""",
        {"site": site_id, "limit": limit},
    ).fetchall()
    return [SiteOverview(*row) for row in rows]


def latest_slots(conn: psycopg.Connection, site_pk: int, slots: int) -> list[EnergySlot]:
    """The site's newest `slots` 30-minute rows, oldest first."""
    rows = conn.execute(
        """SELECT slot_start, import_kwh, export_kwh, pv_kwh, battery_charge_kwh, battery_discharge_kwh,
                  ev_kwh, load_kwh, coverage
           FROM site_energy_30min WHERE site_pk = %s ORDER BY slot_start DESC LIMIT %s""",
        (site_pk, slots),
    ).fetchall()
    return [EnergySlot(*row) for row in reversed(rows)]


def _topic_prefix(site_id: str | None) -> str:
    # Every topic a site may publish on starts with its prefix (the broker's rules); '' matches all.
    return f"vpp/v1/{site_id}/" if site_id else ""


def dead_letter_summary(conn: psycopg.Connection, site_id: str | None = None) -> list[DeadLetterSummary]:
    rows = conn.execute(
        """SELECT reason, count(*), max(received_at) FROM dead_letters WHERE starts_with(topic, %s)
           GROUP BY reason ORDER BY 2 DESC""",
        (_topic_prefix(site_id),),
    ).fetchall()
    return [DeadLetterSummary(*row) for row in rows]


class DeadLetter(NamedTuple):
    received_at: datetime
    reason: str
    topic: str
    detail: str
    payload_bytes: int


def latest_dead_letters(conn: psycopg.Connection, limit: int, site_id: str | None = None) -> list[DeadLetter]:
    """The newest dead letters (of one site's topics), newest first: what an installer needs to see."""
    rows = conn.execute(
        """SELECT received_at, reason, topic, detail, payload_bytes FROM dead_letters
           WHERE starts_with(topic, %s) ORDER BY received_at DESC, id DESC LIMIT %s""",
        (_topic_prefix(site_id), limit),
    ).fetchall()
    return [DeadLetter(*row) for row in rows]


def totals(conn: psycopg.Connection) -> tuple[int, int]:
    """(readings stored, 30-minute rows)."""
    row = conn.execute("SELECT (SELECT count(*) FROM readings), (SELECT count(*) FROM site_energy_30min)").fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)
