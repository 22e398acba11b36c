"""Per-site queries for the API: site records, raw and bucketed telemetry, 30-minute energy, slot imports."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = [
    "SiteRow",
    "bucketed_readings",
    "energy_slots",
    "get_site",
    "list_devices",
    "list_sites",
    "raw_readings",
    "set_peak_programme",
    "slot_imports",
]


@dataclass(frozen=True, slots=True)
class SiteRow:
    site_pk: int
    site_id: str
    name: str
    is_public: bool
    latitude: float | None
    longitude: float | None
    pv_kw: float
    battery_kwh: float
    battery_kw: float
    contract_demand_kw: float | None
    demand_target_kw: float | None
    renewable_share: float
    regions: list[str]
    online: bool | None
    last_reading_at: datetime | None
    peak_programme: bool = False


_SITES = """
SELECT s.id, s.site_id, s.name, s.is_public, s.latitude, s.longitude, s.pv_kw, s.battery_kwh, s.battery_kw,
       s.contract_demand_kw, s.demand_target_kw, s.renewable_share,
       coalesce((SELECT array_agg(r.region_id ORDER BY r.region_id) FROM region_sites rs
                 JOIN regions r ON r.id = rs.region_pk WHERE rs.site_pk = s.id), '{}'),
       st.online,
       (SELECT max(d.last_reading_at) FROM devices d WHERE d.site_pk = s.id),
       s.peak_programme
FROM sites s LEFT JOIN site_status st ON st.site_pk = s.id
"""


def _site(row: Any) -> SiteRow:
    return SiteRow(
        site_pk=int(row[0]),
        site_id=str(row[1]),
        name=str(row[2]),
        is_public=bool(row[3]),
        latitude=row[4],
        longitude=row[5],
        pv_kw=float(row[6]),
        battery_kwh=float(row[7]),
        battery_kw=float(row[8]),
        contract_demand_kw=row[9],
        demand_target_kw=row[10],
        renewable_share=float(row[11]),
        regions=list(row[12]),
        online=row[13],
        last_reading_at=row[14],
        peak_programme=bool(row[15]),
    )


async def list_sites(
    conn: AsyncConnection,
    *,
    region_id: str | None,
    public_only: bool,
    only_site_id: str | None,
    limit: int,
    offset: int,
) -> list[SiteRow]:
    rows = (
        await conn.execute(
            text(
                _SITES
                + """WHERE (CAST(:public_only AS boolean) = false OR s.is_public)
                     AND (CAST(:only AS text) IS NULL OR s.site_id = :only)
                     AND (CAST(:region AS text) IS NULL OR EXISTS (
                         SELECT 1 FROM region_sites rs JOIN regions r ON r.id = rs.region_pk
                         WHERE rs.site_pk = s.id AND r.region_id = :region))
                     ORDER BY s.site_id LIMIT :limit OFFSET :offset"""
            ),
            {"public_only": public_only, "only": only_site_id, "region": region_id, "limit": limit, "offset": offset},
        )
    ).all()
    return [_site(r) for r in rows]


async def set_peak_programme(conn: AsyncConnection, site_id: str, enrolled: bool) -> bool:
    """Enrol a site in the day's peak programme or withdraw it; False when there is no such site. Commits."""
    row = (
        await conn.execute(
            text("UPDATE sites SET peak_programme = :enrolled WHERE site_id = :site_id RETURNING id"),
            {"enrolled": enrolled, "site_id": site_id},
        )
    ).first()
    await conn.commit()
    return row is not None


async def get_site(conn: AsyncConnection, site_id: str) -> SiteRow | None:
    row = (await conn.execute(text(_SITES + "WHERE s.site_id = :site_id"), {"site_id": site_id})).first()
    return None if row is None else _site(row)


async def list_devices(conn: AsyncConnection, site_pk: int) -> list[tuple[str, str, float | None, datetime | None]]:
    rows = (
        await conn.execute(
            text(
                """SELECT device_id, kind, rated_power_kw, last_reading_at FROM devices
                   WHERE site_pk = :site_pk ORDER BY device_id"""
            ),
            {"site_pk": site_pk},
        )
    ).all()
    return [(str(r[0]), str(r[1]), r[2], r[3]) for r in rows]


_DEVICE_FILTER = "d.site_pk = :site_pk AND (CAST(:device_id AS text) IS NULL OR d.device_id = :device_id)"


async def raw_readings(
    conn: AsyncConnection,
    site_pk: int,
    device_id: str | None,
    start: datetime,
    end: datetime,
    limit: int,
    offset: int,
) -> list[tuple[Any, ...]]:
    """(device_id, kind, ts, power_kw, energy_pos_kwh, energy_neg_kwh, soc_pct, vehicles) in time order."""
    rows = (
        await conn.execute(
            text(
                f"""SELECT d.device_id, d.kind, r.ts, r.power_kw, r.energy_pos_kwh, r.energy_neg_kwh, r.soc_pct,
                           r.vehicles
                    FROM devices d JOIN readings r ON r.device_pk = d.id
                    WHERE {_DEVICE_FILTER} AND r.ts >= :start AND r.ts < :end
                    ORDER BY r.ts, d.device_id LIMIT :limit OFFSET :offset"""
            ),
            {"site_pk": site_pk, "device_id": device_id, "start": start, "end": end, "limit": limit, "offset": offset},
        )
    ).all()
    return [tuple(r) for r in rows]


async def bucketed_readings(
    conn: AsyncConnection,
    site_pk: int,
    device_id: str | None,
    start: datetime,
    end: datetime,
    bucket: timedelta,
    limit: int,
    offset: int,
) -> list[tuple[Any, ...]]:
    """(device_id, kind, bucket_start, readings, avg, min, max power_kw, avg soc_pct) per device and bucket.

    Buckets are aligned to JST midnight (2000-01-01 00:00+09), so daily buckets are JST days.
    """
    rows = (
        await conn.execute(
            text(
                f"""SELECT d.device_id, d.kind,
                           date_bin(:bucket, r.ts, TIMESTAMPTZ '2000-01-01 00:00+09') AS bucket_start,
                           count(*), avg(r.power_kw), min(r.power_kw), max(r.power_kw), avg(r.soc_pct)
                    FROM devices d JOIN readings r ON r.device_pk = d.id
                    WHERE {_DEVICE_FILTER} AND r.ts >= :start AND r.ts < :end
                    GROUP BY d.device_id, d.kind, bucket_start
                    ORDER BY bucket_start, d.device_id LIMIT :limit OFFSET :offset"""
            ),
            {
                "site_pk": site_pk,
                "device_id": device_id,
                "start": start,
                "end": end,
                "bucket": bucket,
                "limit": limit,
                "offset": offset,
            },
        )
    ).all()
    return [tuple(r) for r in rows]


async def energy_slots(
    conn: AsyncConnection, site_pk: int, start: datetime, end: datetime, limit: int, offset: int
) -> list[tuple[Any, ...]]:
    """(slot_start, import, export, pv, charge, discharge, ev, load kWh, coverage) in slot order."""
    rows = (
        await conn.execute(
            text(
                """SELECT slot_start, import_kwh, export_kwh, pv_kwh, battery_charge_kwh, battery_discharge_kwh,
                          ev_kwh, load_kwh, coverage
                   FROM site_energy_30min WHERE site_pk = :site_pk AND slot_start >= :start AND slot_start < :end
                   ORDER BY slot_start LIMIT :limit OFFSET :offset"""
            ),
            {"site_pk": site_pk, "start": start, "end": end, "limit": limit, "offset": offset},
        )
    ).all()
    return [tuple(r) for r in rows]


async def slot_imports(conn: AsyncConnection, site_pk: int, start: datetime, end: datetime) -> dict[datetime, float]:
    """Grid import per slot, kWh, for demand calculations."""
    rows = (
        await conn.execute(
            text(
                """SELECT slot_start, import_kwh FROM site_energy_30min
                   WHERE site_pk = :site_pk AND slot_start >= :start AND slot_start < :end"""
            ),
            {"site_pk": site_pk, "start": start, "end": end},
        )
    ).all()
    return {r[0]: max(float(r[1]), 0.0) for r in rows}
