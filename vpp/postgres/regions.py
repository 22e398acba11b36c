"""Region queries: regions and their members, declared figures, declared capacity.

The API reads and writes them through SQLAlchemy (async); the CLI seeds the published figures through
psycopg (the functions at the end).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = [
    "CapacityRow",
    "DeclaredRow",
    "RegionRow",
    "ensure_region",
    "list_capacity",
    "list_declared",
    "list_regions",
    "region_members",
    "registered_pv_kw",
    "set_region",
    "store_declared_capacity",
    "store_declared_figure",
    "upsert_capacity",
    "upsert_declared",
]


@dataclass(frozen=True, slots=True)
class RegionRow:
    region_pk: int
    region_id: str
    name: str
    name_ja: str | None
    member_sites: int


@dataclass(frozen=True, slots=True)
class DeclaredRow:
    id: int
    period_start: datetime
    period_end: datetime
    renewable_supply_kwh: float
    saving_kwh: float
    demand_kwh: float
    source: str
    includes_metered_sites: bool = True


@dataclass(frozen=True, slots=True)
class CapacityRow:
    category: str
    fiscal_year: int
    capacity_kw: float
    source: str


_REGIONS = text(
    """SELECT r.id, r.region_id, r.name, r.name_ja, count(rs.site_pk)
       FROM regions r LEFT JOIN region_sites rs ON rs.region_pk = r.id
       WHERE (CAST(:region_id AS text) IS NULL OR r.region_id = :region_id)
       GROUP BY r.id ORDER BY r.region_id"""
)


async def list_regions(conn: AsyncConnection, region_id: str | None = None) -> list[RegionRow]:
    rows = (await conn.execute(_REGIONS, {"region_id": region_id})).all()
    return [RegionRow(int(r[0]), r[1], r[2], r[3], int(r[4])) for r in rows]


async def region_members(conn: AsyncConnection, region_pk: int) -> list[tuple[str, bool]]:
    """(site_id, is_public) of each member site, by site id."""
    rows = (
        await conn.execute(
            text(
                """SELECT s.site_id, s.is_public FROM region_sites rs JOIN sites s ON s.id = rs.site_pk
                   WHERE rs.region_pk = :region_pk ORDER BY s.site_id"""
            ),
            {"region_pk": region_pk},
        )
    ).all()
    return [(str(r[0]), bool(r[1])) for r in rows]


async def set_region(
    conn: AsyncConnection, region_id: str, name: str, name_ja: str | None, site_ids: Sequence[str]
) -> list[str]:
    """Create or update a region and replace its members; returns the unknown site ids (nothing written then)."""
    known = (
        await conn.execute(text("SELECT site_id, id FROM sites WHERE site_id = ANY(:ids)"), {"ids": list(site_ids)})
    ).all()
    pks = {str(r[0]): int(r[1]) for r in known}
    unknown = [s for s in site_ids if s not in pks]
    if unknown:
        return unknown
    region_pk = (
        await conn.execute(
            text(
                """INSERT INTO regions (region_id, name, name_ja) VALUES (:region_id, :name, :name_ja)
                   ON CONFLICT (region_id) DO UPDATE SET name = EXCLUDED.name, name_ja = EXCLUDED.name_ja
                   RETURNING id"""
            ),
            {"region_id": region_id, "name": name, "name_ja": name_ja},
        )
    ).scalar_one()
    wanted = sorted(set(pks.values()))
    await conn.execute(
        text("DELETE FROM region_sites WHERE region_pk = :r AND NOT (site_pk = ANY(:pks))"),
        {"r": region_pk, "pks": wanted},
    )
    await conn.execute(
        text(
            """INSERT INTO region_sites (region_pk, site_pk) SELECT :r, unnest(CAST(:pks AS int[]))
               ON CONFLICT DO NOTHING"""
        ),
        {"r": region_pk, "pks": wanted},
    )
    return []


_DECLARED_COLUMNS = (
    "id, period_start, period_end, renewable_supply_kwh, saving_kwh, demand_kwh, source, includes_metered_sites"
)


async def list_declared(conn: AsyncConnection, region_pk: int) -> list[DeclaredRow]:
    rows = (
        await conn.execute(
            text(
                f"SELECT {_DECLARED_COLUMNS} FROM declared_figures WHERE region_pk = :r ORDER BY period_start, source"
            ),
            {"r": region_pk},
        )
    ).all()
    return [DeclaredRow(*r) for r in rows]


async def upsert_declared(
    conn: AsyncConnection,
    region_pk: int,
    start: datetime,
    end: datetime,
    renewable_supply_kwh: float,
    saving_kwh: float,
    demand_kwh: float,
    source: str,
    includes_metered_sites: bool = True,
) -> DeclaredRow:
    """Insert a declared figure, replacing the one with the same period and source.

    ``includes_metered_sites``: the figure already contains the region's metered sites (a city statistic
    does), so reports never add the two (:class:`vpp.domain.sufficiency.OverlappingFigures`).
    """
    row = (
        await conn.execute(
            text(
                f"""INSERT INTO declared_figures (region_pk, period_start, period_end, renewable_supply_kwh,
                                                 saving_kwh, demand_kwh, source, includes_metered_sites)
                    VALUES (:r, :start, :end, :supply, :saving, :demand, :source, :includes)
                    ON CONFLICT (region_pk, period_start, period_end, source) DO UPDATE SET
                        renewable_supply_kwh = EXCLUDED.renewable_supply_kwh, saving_kwh = EXCLUDED.saving_kwh,
                        demand_kwh = EXCLUDED.demand_kwh, includes_metered_sites = EXCLUDED.includes_metered_sites
                    RETURNING {_DECLARED_COLUMNS}"""
            ),
            {
                "r": region_pk,
                "start": start,
                "end": end,
                "supply": renewable_supply_kwh,
                "saving": saving_kwh,
                "demand": demand_kwh,
                "source": source,
                "includes": includes_metered_sites,
            },
        )
    ).one()
    return DeclaredRow(*row)


async def list_capacity(conn: AsyncConnection, region_pk: int) -> list[CapacityRow]:
    """The latest declared capacity per category."""
    rows = (
        await conn.execute(
            text(
                """SELECT DISTINCT ON (category) category, fiscal_year, capacity_kw, source
                   FROM declared_capacity WHERE region_pk = :r ORDER BY category, fiscal_year DESC"""
            ),
            {"r": region_pk},
        )
    ).all()
    return [CapacityRow(str(r[0]), int(r[1]), float(r[2]), str(r[3])) for r in rows]


async def upsert_capacity(conn: AsyncConnection, region_pk: int, items: Sequence[CapacityRow]) -> None:
    for item in items:
        await conn.execute(
            text(
                """INSERT INTO declared_capacity (region_pk, category, fiscal_year, capacity_kw, source)
                   VALUES (:r, :category, :fy, :kw, :source)
                   ON CONFLICT (region_pk, category, fiscal_year) DO UPDATE SET
                       capacity_kw = EXCLUDED.capacity_kw, source = EXCLUDED.source"""
            ),
            {
                "r": region_pk,
                "category": item.category,
                "fy": item.fiscal_year,
                "kw": item.capacity_kw,
                "source": item.source,
            },
        )


async def registered_pv_kw(conn: AsyncConnection, region_pk: int) -> tuple[float, int]:
    """The region's registered PV, kW, and how many private sites it sums (the city's k-suppression)."""
    row = (
        await conn.execute(
            text(
                """SELECT coalesce(sum(s.pv_kw), 0),
                          count(*) FILTER (WHERE NOT s.is_public AND coalesce(s.pv_kw, 0) <> 0)
                   FROM region_sites rs JOIN sites s ON s.id = rs.site_pk
                   WHERE rs.region_pk = :r"""
            ),
            {"r": region_pk},
        )
    ).one()
    return float(row[0]), int(row[1])


# The CLI's side (psycopg): idempotent seeding of regions and the city's published figures.


def ensure_region(conn: psycopg.Connection, region_id: str, name: str, name_ja: str | None) -> None:
    conn.execute(
        """INSERT INTO regions (region_id, name, name_ja) VALUES (%s, %s, %s)
           ON CONFLICT (region_id) DO UPDATE SET name = EXCLUDED.name, name_ja = EXCLUDED.name_ja""",
        (region_id, name, name_ja),
    )


def store_declared_figure(
    conn: psycopg.Connection,
    region_id: str,
    period_start: datetime,
    period_end: datetime,
    *,
    renewable_supply_kwh: float | None,
    saving_kwh: float | None,
    demand_kwh: float | None,
    source: str,
) -> None:
    """One period's declared figures for a region, replacing those of the same period and source."""
    conn.execute(
        """INSERT INTO declared_figures (region_pk, period_start, period_end, renewable_supply_kwh,
                                        saving_kwh, demand_kwh, source)
           SELECT id, %s, %s, %s, %s, %s, %s FROM regions WHERE region_id = %s
           ON CONFLICT (region_pk, period_start, period_end, source) DO UPDATE SET
               renewable_supply_kwh = EXCLUDED.renewable_supply_kwh, saving_kwh = EXCLUDED.saving_kwh,
               demand_kwh = EXCLUDED.demand_kwh""",
        (period_start, period_end, renewable_supply_kwh, saving_kwh, demand_kwh, source, region_id),
    )


def store_declared_capacity(
    conn: psycopg.Connection, region_id: str, category: str, fiscal_year: int, capacity_kw: float, source: str
) -> None:
    """A category's declared capacity for a fiscal year, replacing the year's earlier figure."""
    conn.execute(
        """INSERT INTO declared_capacity (region_pk, category, fiscal_year, capacity_kw, source)
           SELECT id, %s, %s, %s, %s FROM regions WHERE region_id = %s
           ON CONFLICT (region_pk, category, fiscal_year) DO UPDATE SET
               capacity_kw = EXCLUDED.capacity_kw, source = EXCLUDED.source""",
        (category, fiscal_year, capacity_kw, source, region_id),
    )
