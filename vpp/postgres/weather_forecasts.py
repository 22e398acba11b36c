"""Irradiance forecasts (``weather_forecasts``, ``weather_forecast_slots``): the API stores them (SQLAlchemy,
async), the DR scheduler reads the day-ahead issue for a site's days (psycopg)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np
import numpy.typing as npt
import psycopg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from vpp.domain.slots import JST, SLOTS_PER_DAY
from vpp.domain.weather_forecast import nearest_point
from vpp.postgres.energy_history import jst_midnight

__all__ = ["StoredForecast", "day_ahead_ghi", "forecast_for_day", "latest_issue", "store_forecast"]


@dataclass(frozen=True)
class StoredForecast:
    id: int
    latitude: float
    longitude: float
    source: str
    issued_at: datetime
    slots: list[tuple[datetime, float]]


async def store_forecast(
    conn: AsyncConnection,
    latitude: float,
    longitude: float,
    source: str,
    issued_at: datetime,
    slots: Sequence[tuple[datetime, float]],
) -> int:
    """Store one issue, replacing the slots of the same issue (point, source, issue time); its id. Caller commits."""
    forecast_id = (
        await conn.execute(
            text(
                """INSERT INTO weather_forecasts (latitude, longitude, source, issued_at)
                   VALUES (:lat, :lon, :source, :issued)
                   ON CONFLICT (latitude, longitude, source, issued_at) DO UPDATE SET received_at = now()
                   RETURNING id"""
            ),
            {"lat": latitude, "lon": longitude, "source": source, "issued": issued_at},
        )
    ).scalar_one()
    await conn.execute(text("DELETE FROM weather_forecast_slots WHERE forecast_id = :id"), {"id": forecast_id})
    await conn.execute(
        text("INSERT INTO weather_forecast_slots (forecast_id, slot_start, ghi_w_m2) VALUES (:id, :start, :ghi)"),
        [{"id": forecast_id, "start": start, "ghi": ghi} for start, ghi in slots],
    )
    return int(forecast_id)


async def forecast_for_day(
    conn: AsyncConnection, latitude: float, longitude: float, day: date
) -> StoredForecast | None:
    """The issue a site at (latitude, longitude) plans ``day`` with: the latest issued before the day began, at
    the nearest point within reach that has one."""
    start, end = jst_midnight(day), jst_midnight(day + timedelta(days=1))
    rows = (
        await conn.execute(
            text(
                """SELECT DISTINCT f.latitude, f.longitude FROM weather_forecasts f
                   WHERE f.issued_at < :start AND EXISTS (
                       SELECT 1 FROM weather_forecast_slots s
                       WHERE s.forecast_id = f.id AND s.slot_start >= :start AND s.slot_start < :end)
                   ORDER BY 1, 2"""
            ),
            {"start": start, "end": end},
        )
    ).all()
    point = nearest_point(latitude, longitude, [(float(r[0]), float(r[1])) for r in rows])
    if point is None:
        return None
    head = (
        await conn.execute(
            text(
                """SELECT f.id, f.source, f.issued_at FROM weather_forecasts f
                   WHERE f.latitude = :lat AND f.longitude = :lon AND f.issued_at < :start AND EXISTS (
                       SELECT 1 FROM weather_forecast_slots s
                       WHERE s.forecast_id = f.id AND s.slot_start >= :start AND s.slot_start < :end)
                   ORDER BY f.issued_at DESC, f.id DESC LIMIT 1"""
            ),
            {"lat": point[0], "lon": point[1], "start": start, "end": end},
        )
    ).one()
    slots = (
        await conn.execute(
            text(
                """SELECT slot_start, ghi_w_m2 FROM weather_forecast_slots
                   WHERE forecast_id = :id AND slot_start >= :start AND slot_start < :end ORDER BY slot_start"""
            ),
            {"id": head[0], "start": start, "end": end},
        )
    ).all()
    return StoredForecast(int(head[0]), point[0], point[1], str(head[1]), head[2], [(s, float(g)) for s, g in slots])


def day_ahead_ghi(
    conn: psycopg.Connection, latitude: float, longitude: float, days: Sequence[date]
) -> tuple[tuple[float, float] | None, dict[date, npt.NDArray[np.float64]]]:
    """Per day, 48 slots of forecast GHI (W/m², NaN where the issue has no value) from the latest issue before the
    day began, at the point nearest (latitude, longitude) that has one for the last of ``days`` (the day being
    planned; the others are its record). ``(None, {})`` when no point within reach has one."""
    if not days:
        return None, {}
    target = max(days)
    start, end = jst_midnight(target), jst_midnight(target + timedelta(days=1))
    rows = conn.execute(
        """SELECT DISTINCT f.latitude, f.longitude FROM weather_forecasts f
           WHERE f.issued_at < %s AND EXISTS (
               SELECT 1 FROM weather_forecast_slots s WHERE s.forecast_id = f.id AND s.slot_start >= %s
                                                       AND s.slot_start < %s)""",
        (start, start, end),
    ).fetchall()
    point = nearest_point(latitude, longitude, sorted((float(r[0]), float(r[1])) for r in rows))
    if point is None:
        return None, {}
    first = jst_midnight(min(days))
    # Per day, the one issue the API shows for it (forecast_for_day): the latest made before the day began (JST)
    # that has slots in the day, and that issue's slots only.
    slots = conn.execute(
        """WITH issues AS (
               SELECT f.id, f.issued_at, (s.slot_start AT TIME ZONE 'Asia/Tokyo')::date AS day
               FROM weather_forecasts f JOIN weather_forecast_slots s ON s.forecast_id = f.id
               WHERE f.latitude = %s AND f.longitude = %s AND s.slot_start >= %s AND s.slot_start < %s
               GROUP BY f.id, f.issued_at, day
           ), chosen AS (
               SELECT DISTINCT ON (day) day, id FROM issues
               WHERE issued_at < (day::timestamp AT TIME ZONE 'Asia/Tokyo')
               ORDER BY day, issued_at DESC, id DESC
           )
           SELECT s.slot_start, s.ghi_w_m2 FROM chosen c JOIN weather_forecast_slots s ON s.forecast_id = c.id
           WHERE (s.slot_start AT TIME ZONE 'Asia/Tokyo')::date = c.day""",
        (point[0], point[1], first, end),
    ).fetchall()
    wanted = set(days)
    out: dict[date, npt.NDArray[np.float64]] = {}
    for slot_start, ghi in slots:
        local = slot_start.astimezone(JST)
        if local.date() in wanted:
            out.setdefault(local.date(), np.full(SLOTS_PER_DAY, np.nan))[local.hour * 2 + local.minute // 30] = ghi
    return point, out


def latest_issue(conn: psycopg.Connection) -> datetime | None:
    """When the newest forecast issue stored was issued; None before any was fed."""
    row = conn.execute("SELECT max(issued_at) FROM weather_forecasts").fetchone()
    return None if row is None else row[0]
