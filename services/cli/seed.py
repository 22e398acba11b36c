"""Kawasaki defaults: the regions and the model depot a fresh installation starts with."""

from __future__ import annotations

import psycopg

from vpp.domain.devices import DeviceKind
from vpp.postgres.registry import DeviceSpec, SiteRecord, register_site
from vpp.simulation.model import SiteSpec

__all__ = ["REGIONS", "register_simulated_site", "seed_defaults"]

# (region_id, English name, Japanese name)
REGIONS = (
    ("kawasaki", "Kawasaki City", "川崎市"),
    ("leading-area", "Decarbonisation leading area (Mizonokuchi and public facilities)", "脱炭素先行地域"),
)

DEPOT = SiteSpec()  # the Yamato Transport Takatsu Chitose depot (shared/data/yamato_takatsu_depot.md)
DEPOT_NAME = "Yamato Transport Takatsu Chitose depot (ヤマト運輸 高津千歳営業所)"


def register_simulated_site(
    conn: psycopg.Connection,
    spec: SiteSpec,
    name: str | None = None,
    *,
    is_public: bool = False,
    renewable_share: float = 1.0,
    regions: tuple[str, ...] = ("kawasaki", "leading-area"),
) -> int:
    devices = [DeviceSpec("meter-1", DeviceKind.METER)]
    if spec.pv_kw > 0:
        devices.append(DeviceSpec("pv-1", DeviceKind.PV, rated_power_kw=spec.pv_kw))
    if spec.battery_kwh > 0:
        devices.append(DeviceSpec("battery-1", DeviceKind.BATTERY, rated_power_kw=spec.battery_power_kw))
    if spec.ev_count > 0:
        devices.append(DeviceSpec("ev-1", DeviceKind.EV_CHARGER, rated_power_kw=spec.ev_count * spec.ev_charger_kw))
    return register_site(
        conn,
        SiteRecord(
            site_id=spec.site_id,
            name=name or spec.site_id,
            latitude=spec.latitude,
            longitude=spec.longitude,
            pv_kw=spec.pv_kw,
            battery_kwh=spec.battery_kwh,
            battery_kw=spec.battery_power_kw,
            demand_target_kw=spec.demand_target_kw,
            renewable_share=renewable_share,
            is_public=is_public,
            regions=regions,
        ),
        devices,
    )


def seed_defaults(conn: psycopg.Connection) -> None:
    """Idempotent: regions with their Japanese names, and the model depot (100% renewable supply since 2024-10)."""
    for region_id, name, name_ja in REGIONS:
        conn.execute(
            """INSERT INTO regions (region_id, name, name_ja) VALUES (%s, %s, %s)
               ON CONFLICT (region_id) DO UPDATE SET name = EXCLUDED.name, name_ja = EXCLUDED.name_ja""",
            (region_id, name, name_ja),
        )
    register_simulated_site(conn, DEPOT, DEPOT_NAME)
    conn.commit()
