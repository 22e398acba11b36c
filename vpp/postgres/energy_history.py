"""Reads of the 30-minute site energy table and the latest meter reading, shaped for the DR scheduler.

Days are JST days (slot 0 = 00:00–00:30 JST); a slot without a row, or with less than the coverage
asked for, is None, so forecasts and baselines can tell "not metered" from "zero".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import NamedTuple

import psycopg

from vpp.domain.slots import JST, SLOT, SLOTS_PER_DAY

__all__ = [
    "LiveMeter",
    "SiteDr",
    "SlotEnergy",
    "daily_slots",
    "jst_midnight",
    "known_site_ids",
    "live_meter",
    "load_dr_sites",
    "monthly_max_demand_kw",
    "recent_slots",
    "region_exists",
    "region_site_ids",
]

# Column names cannot be query parameters; only these may be asked for.
_FLOWS = frozenset({"import_kwh", "export_kwh", "pv_kwh", "load_kwh", "ev_kwh", "battery_charge_kwh",
                    "battery_discharge_kwh"})  # fmt: skip


def jst_midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), JST).astimezone(UTC)


def daily_slots(
    conn: psycopg.Connection, site_pk: int, first_day: date, last_day: date, flow: str = "import_kwh",
    min_coverage: float = 0.0,
) -> dict[date, list[float | None]]:  # fmt: skip
    """``{day: 48 values}`` of one flow (kWh per slot) for JST days first_day..last_day inclusive."""
    if flow not in _FLOWS:
        raise ValueError(f"unknown flow {flow!r}; one of {sorted(_FLOWS)}")
    start, end = jst_midnight(first_day), jst_midnight(last_day + timedelta(days=1))
    rows = conn.execute(
        f"""SELECT slot_start, {flow} FROM site_energy_30min
            WHERE site_pk = %s AND slot_start >= %s AND slot_start < %s AND coverage >= %s""",
        (site_pk, start, end, min_coverage),
    ).fetchall()
    out: dict[date, list[float | None]] = {}
    for slot_start, value in rows:
        local = slot_start.astimezone(JST)
        day_values = out.setdefault(local.date(), [None] * SLOTS_PER_DAY)
        day_values[local.hour * 2 + local.minute // 30] = float(value)
    return out


def monthly_max_demand_kw(conn: psycopg.Connection, site_pk: int, day: date) -> float | None:
    """The site's maximum demand (slot import kWh × 2, kW) in ``day``'s JST month before ``day``; None if unmetered.

    Under the 12-month ratchet this is the figure a plan must not raise: one higher half-hour sets the
    month's maximum demand (and possibly the next year's contract demand).
    """
    month_start = jst_midnight(day.replace(day=1))
    row = conn.execute(
        """SELECT max(import_kwh) * 2 FROM site_energy_30min
           WHERE site_pk = %s AND slot_start >= %s AND slot_start < %s""",
        (site_pk, month_start, jst_midnight(day)),
    ).fetchone()
    return None if row is None or row[0] is None else float(row[0])


@dataclass(frozen=True)
class LiveMeter:
    slot_import_kwh: float  # imported so far in the running slot
    power_kw: float | None  # the latest grid power reading (+ import)
    reading_at: datetime | None


def live_meter(conn: psycopg.Connection, site_pk: int, slot_start: datetime) -> LiveMeter:
    """Energy so far in the slot (from the rolled-up table) and the meter's latest power."""
    energy = conn.execute(
        "SELECT import_kwh FROM site_energy_30min WHERE site_pk = %s AND slot_start = %s", (site_pk, slot_start)
    ).fetchone()
    latest = conn.execute(
        """SELECT r.ts, r.power_kw FROM readings r JOIN devices d ON d.id = r.device_pk
           WHERE d.site_pk = %s AND d.kind = 'meter' AND r.ts >= %s AND r.ts < %s
           ORDER BY r.ts DESC LIMIT 1""",
        (site_pk, slot_start, slot_start + SLOT),
    ).fetchone()
    return LiveMeter(
        float(energy[0]) if energy else 0.0,
        float(latest[1]) if latest and latest[1] is not None else None,
        latest[0] if latest else None,
    )


@dataclass(frozen=True)
class SiteDr:
    """What the scheduler needs of a site: place, equipment, target and the battery's latest SoC."""

    site_pk: int
    site_id: str
    latitude: float | None
    longitude: float | None
    pv_kw: float
    battery_kwh: float
    battery_kw: float
    demand_target_kw: float | None
    soc_pct: float | None
    soc_at: datetime | None = None  # when the battery reported that SoC


def load_dr_sites(conn: psycopg.Connection, site_ids: Sequence[str] | None = None) -> list[SiteDr]:
    rows = conn.execute(
        """SELECT s.id, s.site_id, s.latitude, s.longitude, s.pv_kw, s.battery_kwh, s.battery_kw, s.demand_target_kw,
                  soc.soc_pct, soc.ts
           FROM sites s
           LEFT JOIN LATERAL (SELECT r.soc_pct, r.ts FROM readings r JOIN devices d ON d.id = r.device_pk
                              WHERE d.site_pk = s.id AND d.kind = 'battery' AND r.soc_pct IS NOT NULL
                              ORDER BY r.ts DESC LIMIT 1) soc ON true
           WHERE %(ids)s::text[] IS NULL OR s.site_id = ANY(%(ids)s::text[])
           ORDER BY s.site_id""",
        {"ids": list(site_ids) if site_ids is not None else None},
    ).fetchall()
    return [
        SiteDr(
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            row[5],
            row[6],
            row[7],
            None if row[8] is None else float(row[8]),
            row[9],
        )
        for row in rows
    ]


def known_site_ids(conn: psycopg.Connection, site_ids: Sequence[str]) -> set[str]:
    """The ids in ``site_ids`` that name a registered site."""
    rows = conn.execute("SELECT site_id FROM sites WHERE site_id = ANY(%s)", (list(site_ids),)).fetchall()
    return {row[0] for row in rows}


def region_exists(conn: psycopg.Connection, region_id: str) -> bool:
    return conn.execute("SELECT 1 FROM regions WHERE region_id = %s", (region_id,)).fetchone() is not None


def region_site_ids(conn: psycopg.Connection, region_id: str) -> list[str]:
    rows = conn.execute(
        """SELECT s.site_id FROM sites s JOIN region_sites rs ON rs.site_pk = s.id
           JOIN regions r ON r.id = rs.region_pk WHERE r.region_id = %s ORDER BY s.site_id""",
        (region_id,),
    ).fetchall()
    return [row[0] for row in rows]


class SlotEnergy(NamedTuple):
    """One rolled-up 30-minute slot of a site, as the live console shows it."""

    slot_start: datetime
    import_kwh: float
    pv_kwh: float
    battery_net_kwh: float  # discharge − charge
    ev_kwh: float
    load_kwh: float
    coverage: float


def recent_slots(conn: psycopg.Connection, site_id: str, limit: int = 6) -> list[SlotEnergy]:
    """The site's latest `limit` slots, oldest first."""
    rows = conn.execute(
        """SELECT slot_start, import_kwh, pv_kwh, battery_discharge_kwh - battery_charge_kwh, ev_kwh, load_kwh, coverage
           FROM site_energy_30min e JOIN sites s ON s.id = e.site_pk WHERE s.site_id = %s
           ORDER BY slot_start DESC LIMIT %s""",
        (site_id, limit),
    ).fetchall()
    return [SlotEnergy(*row) for row in reversed(rows)]
