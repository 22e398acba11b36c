"""Shared by the DR loop tests: the simulated depot, its event day, and its 30-minute import as stored."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import psycopg

from vpp.domain.slots import JST

SITE = "depot-a"
EVENT_DAY = date(2026, 11, 20)  # a Friday: six complete weekdays of history before it
STEP_S = 300


def jst(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), JST)


def slot_imports_kwh(db_url: str, start: datetime, end: datetime) -> list[float]:
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            """SELECT e.import_kwh FROM site_energy_30min e JOIN sites s ON s.id = e.site_pk
               WHERE s.site_id = %s AND e.slot_start >= %s AND e.slot_start < %s ORDER BY e.slot_start""",
            (SITE, start, end),
        ).fetchall()
    return [float(row[0]) for row in rows]


def rolled_up_to(db_url: str, slot: datetime) -> bool:
    return len(slot_imports_kwh(db_url, slot, slot + timedelta(minutes=30))) == 1
