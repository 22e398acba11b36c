"""Sites and devices: registration (idempotent) and the lookup table ingest validates against."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import psycopg

from vpp.domain.devices import DeviceKind, DeviceRef

__all__ = [
    "DeviceSpec",
    "RegisteredSite",
    "SiteRecord",
    "add_devices",
    "device_kinds",
    "list_registered_sites",
    "load_devices",
    "register_site",
    "registered_any",
    "registry_fingerprint",
    "site_pk",
    "site_pk_by_id",
]


@dataclass(frozen=True)
class DeviceSpec:
    device_id: str
    kind: DeviceKind
    rated_power_kw: float | None = None


@dataclass(frozen=True)
class SiteRecord:
    site_id: str
    name: str
    latitude: float | None = None
    longitude: float | None = None
    pv_kw: float = 0.0
    battery_kwh: float = 0.0
    battery_kw: float = 0.0
    contract_demand_kw: float | None = None
    demand_target_kw: float | None = None
    renewable_share: float = 0.0
    is_public: bool = False
    regions: tuple[str, ...] = ()


def register_site(conn: psycopg.Connection, site: SiteRecord, devices: Iterable[DeviceSpec]) -> int:
    """Insert or update a site and its devices; returns the site's primary key. Caller commits."""
    row = conn.execute(
        """
        INSERT INTO sites (site_id, name, latitude, longitude, pv_kw, battery_kwh, battery_kw,
                           contract_demand_kw, demand_target_kw, renewable_share, is_public)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (site_id) DO UPDATE SET
            name = EXCLUDED.name, latitude = EXCLUDED.latitude, longitude = EXCLUDED.longitude,
            pv_kw = EXCLUDED.pv_kw, battery_kwh = EXCLUDED.battery_kwh, battery_kw = EXCLUDED.battery_kw,
            contract_demand_kw = EXCLUDED.contract_demand_kw, demand_target_kw = EXCLUDED.demand_target_kw,
            renewable_share = EXCLUDED.renewable_share, is_public = EXCLUDED.is_public
        RETURNING id
        """,
        (
            site.site_id,
            site.name,
            site.latitude,
            site.longitude,
            site.pv_kw,
            site.battery_kwh,
            site.battery_kw,
            site.contract_demand_kw,
            site.demand_target_kw,
            site.renewable_share,
            site.is_public,
        ),
    ).fetchone()
    assert row is not None
    site_pk = int(row[0])
    add_devices(conn, site_pk, devices)
    with conn.cursor() as cur:
        for region in site.regions:
            cur.execute(
                "INSERT INTO regions (region_id, name) VALUES (%s, %s) ON CONFLICT (region_id) DO NOTHING",
                (region, region),
            )
            cur.execute(
                """INSERT INTO region_sites (region_pk, site_pk)
                   SELECT id, %s FROM regions WHERE region_id = %s ON CONFLICT DO NOTHING""",
                (site_pk, region),
            )
    return site_pk


def add_devices(conn: psycopg.Connection, site_pk: int, devices: Iterable[DeviceSpec]) -> None:
    """Insert or update devices of a registered site (kind and rating of an existing id are replaced). Caller commits."""
    with conn.cursor() as cur:
        cur.executemany(
            """
            INSERT INTO devices (site_pk, device_id, kind, rated_power_kw) VALUES (%s, %s, %s, %s)
            ON CONFLICT (site_pk, device_id) DO UPDATE SET kind = EXCLUDED.kind,
                rated_power_kw = EXCLUDED.rated_power_kw
            """,
            [(site_pk, d.device_id, str(d.kind), d.rated_power_kw) for d in devices],
        )


def device_kinds(conn: psycopg.Connection, site_pk: int) -> dict[str, DeviceKind]:
    """The registered devices of one site and their kinds."""
    rows = conn.execute("SELECT device_id, kind FROM devices WHERE site_pk = %s", (site_pk,)).fetchall()
    return {r[0]: DeviceKind(r[1]) for r in rows}


@dataclass(frozen=True)
class RegisteredSite:
    """A site as `vpp sites list` shows it: what a commissioning operator checks."""

    site_id: str
    name: str
    is_public: bool
    regions: tuple[str, ...]
    devices: tuple[DeviceSpec, ...]
    broker_secret: str  # "issued", "revoked" or "none" (run `vpp broker-config`)


def list_registered_sites(conn: psycopg.Connection) -> list[RegisteredSite]:
    rows = conn.execute(
        """SELECT s.site_id, s.name, s.is_public,
                  coalesce((SELECT array_agg(r.region_id ORDER BY r.region_id) FROM region_sites rs
                            JOIN regions r ON r.id = rs.region_pk WHERE rs.site_pk = s.id), '{}'),
                  coalesce((SELECT array_agg(ARRAY[d.device_id, d.kind, coalesce(d.rated_power_kw::text, '')]
                                             ORDER BY d.device_id)
                            FROM devices d WHERE d.site_pk = s.id), '{}'),
                  CASE WHEN bc.site_pk IS NULL THEN 'none'
                       WHEN bc.password_hash IS NULL THEN 'revoked' ELSE 'issued' END
           FROM sites s LEFT JOIN broker_credentials bc ON bc.site_pk = s.id
           ORDER BY s.site_id"""
    ).fetchall()
    return [
        RegisteredSite(
            r[0],
            r[1],
            bool(r[2]),
            tuple(r[3]),
            tuple(DeviceSpec(d[0], DeviceKind(d[1]), float(d[2]) if d[2] else None) for d in r[4]),
            str(r[5]),
        )
        for r in rows
    ]


def load_devices(conn: psycopg.Connection) -> dict[tuple[str, str], DeviceRef]:
    """Every registered device keyed by (site_id, device_id), as ingest looks them up per message."""
    rows = conn.execute(
        """SELECT s.site_id, d.device_id, d.id, s.id, d.kind, d.rated_power_kw
           FROM devices d JOIN sites s ON s.id = d.site_pk"""
    ).fetchall()
    return {(r[0], r[1]): DeviceRef(r[2], r[3], DeviceKind(r[4]), r[5]) for r in rows}


def registry_fingerprint(conn: psycopg.Connection) -> str:
    """A digest of everything `load_devices` and `site_pk_by_id` return, computed in the database.

    Ingest checks it every minute and reloads only when it changed: loading 80,000 devices into
    Python holds the interpreter for about a second, and doing that every minute showed up as a
    lag spike every minute in the soak test.
    """
    row = conn.execute(
        """SELECT md5(coalesce((SELECT string_agg(concat_ws(',', s.site_id, d.device_id, d.id, s.id, d.kind,
                                                           d.rated_power_kw), ';' ORDER BY d.id)
                                FROM devices d JOIN sites s ON s.id = d.site_pk), '')
                      || '|' || coalesce((SELECT string_agg(site_id || ',' || id, ';' ORDER BY id) FROM sites), ''))"""
    ).fetchone()
    return str(row[0]) if row else ""


def registered_any(conn: psycopg.Connection, site_ids: Iterable[str], devices: Iterable[tuple[str, str]]) -> bool:
    """Is any of these sites, or any of these (site, device) pairs, registered now?

    Ingest asks this for the ids a batch did not know before it dead-letters them: one indexed
    query however many ids, so unknown ids cost the database little (the caller also rate-limits it),
    and the whole registry is reloaded only when the answer is yes.
    """
    pairs = list(devices)
    row = conn.execute(
        """SELECT EXISTS (SELECT 1 FROM sites WHERE site_id = ANY(%s))
               OR EXISTS (SELECT 1 FROM devices d JOIN sites s ON s.id = d.site_pk
                          JOIN unnest(%s::text[], %s::text[]) AS u(site_id, device_id)
                            ON u.site_id = s.site_id AND u.device_id = d.device_id)""",
        (list(site_ids), [p[0] for p in pairs], [p[1] for p in pairs]),
    ).fetchone()
    return bool(row and row[0])


def site_pk_by_id(conn: psycopg.Connection) -> dict[str, int]:
    return {r[0]: r[1] for r in conn.execute("SELECT site_id, id FROM sites").fetchall()}


def site_pk(conn: psycopg.Connection, site_id: str) -> int | None:
    """The site's primary key, None when no site has that id."""
    row = conn.execute("SELECT id FROM sites WHERE site_id = %s", (site_id,)).fetchone()
    return None if row is None else int(row[0])
