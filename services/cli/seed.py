"""Kawasaki defaults: the regions and the model depot a fresh installation starts with."""

from __future__ import annotations

import psycopg

from services.api.csv_import import parse_capacity_csv, parse_fiscal_year_csv
from vpp.domain.devices import DeviceKind
from vpp.domain.periods import parse_period
from vpp.postgres.regions import ensure_region, store_declared_capacity, store_declared_figure
from vpp.postgres.registry import DeviceSpec, SiteRecord, register_site
from vpp.published import CAPACITY_CSV, LEADING_AREA_FY_CSV, published_csv
from vpp.simulation.model import SiteSpec

__all__ = [
    "DEMO_SITES",
    "REGIONS",
    "demo_site_is_public",
    "register_simulated_site",
    "seed_defaults",
    "seed_published_figures",
]

# (region_id, English name, Japanese name)
REGIONS = (
    ("kawasaki", "Kawasaki City", "川崎市"),
    ("leading-area", "Decarbonisation leading area (Mizonokuchi and public facilities)", "脱炭素先行地域"),
)

FY_SOURCE = "Kawasaki City, 2024-11-21, 脱炭素先行地域づくりの推進"
CAPACITY_SOURCE = "Kawasaki City, renewable capacity, table 1.4"

DEPOT = SiteSpec()  # the Yamato Transport Takatsu Chitose depot (shared/data/yamato_takatsu_depot.md)

# Sites the default demo simulates: the depot and five generated ones (site-00001 ... site-00005).
# Odd-numbered generated sites are private companies, even-numbered ones city facilities, so the demo
# has 4 private sites (the depot, 1, 3, 5) and 2 public ones (2, 4). The city role is refused any
# aggregate over fewer than 3 private sites (VPP_API_CITY_MIN_PRIVATE_SITES): with 4, every role can be
# tried on the default demo, even with one private site offline.
DEMO_SITES = 6


def demo_site_is_public(site_id: str) -> bool:
    """Whether a generated demo site (``site-NNNNN``) is a city facility; the depot is private."""
    return site_id[-1:].isdigit() and int(site_id[-1]) % 2 == 0


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
        ensure_region(conn, region_id, name, name_ja)
    register_simulated_site(conn, DEPOT, DEPOT_NAME)
    conn.commit()


def seed_published_figures(conn: psycopg.Connection) -> None:
    """Idempotent: the city's published figures (vpp/published), so sufficiency and capacity have their
    declared side from the first start. An operator's later import with another source sits beside them."""
    for figure in parse_fiscal_year_csv(published_csv(LEADING_AREA_FY_CSV)):
        period = parse_period("fiscal_year", str(figure.fiscal_year))
        store_declared_figure(
            conn,
            "leading-area",
            period.start,
            period.end,
            renewable_supply_kwh=figure.renewable_supply_kwh,
            saving_kwh=figure.saving_kwh,
            demand_kwh=figure.demand_kwh,
            source=f"{FY_SOURCE}, FY{figure.fiscal_year}",
        )
    for capacity in parse_capacity_csv(published_csv(CAPACITY_CSV)):
        store_declared_capacity(
            conn,
            "kawasaki",
            capacity.category,
            capacity.fiscal_year,
            capacity.capacity_kw,
            f"{CAPACITY_SOURCE} (FY{capacity.fiscal_year})",
        )
    conn.commit()
