"""Sufficiency report queries: per-site period totals from the 30-minute, daily and monthly tables.

A period is split into whole JST months (read from `site_energy_monthly`), whole JST days outside
those months (`site_energy_daily`) and slots outside those days (`site_energy_30min`), so a fiscal
year for 1,050 sites reads ~12,600 rows instead of ~18 million. All three carry PV consumed on site
clamped per slot (see :mod:`vpp.domain.sufficiency`), so the split does not change the result.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncConnection

from vpp.domain.periods import Period
from vpp.domain.slots import JST
from vpp.domain.sufficiency import DeclaredFigures, SiteContract, SiteTotals

__all__ = [
    "PeriodSpans",
    "RegionRef",
    "declared_for_period",
    "member_contracts",
    "period_spans",
    "region_ref",
    "site_totals",
    "verified_dr_kwh",
]


@dataclass(frozen=True, slots=True)
class PeriodSpans:
    """Half-open ranges of a period by the table that answers them; an empty range has lo == hi."""

    months: tuple[date, date]
    days: tuple[tuple[date, date], tuple[date, date]]
    slots: tuple[tuple[datetime, datetime], tuple[datetime, datetime]]


def _jst_midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=JST)


def _next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def period_spans(period: Period) -> PeriodSpans:
    """Split `period` into whole JST months, whole JST days and leftover slots."""
    start, end = period.start.astimezone(JST), period.end.astimezone(JST)
    first_day = start.date() if start == _jst_midnight(start.date()) else start.date() + timedelta(days=1)
    last_day = end.date()  # exclusive: the day containing `end` is at most partly inside
    if first_day >= last_day:
        empty_day = (first_day, first_day)
        return PeriodSpans((first_day, first_day), (empty_day, empty_day), ((start, end), (end, end)))
    slot_ranges = ((start, _jst_midnight(first_day)), (_jst_midnight(last_day), end))
    first_month = first_day if first_day.day == 1 else _next_month(first_day)
    last_month = last_day.replace(day=1)
    if first_month >= last_month:
        return PeriodSpans((first_month, first_month), ((first_day, last_day), (last_day, last_day)), slot_ranges)
    return PeriodSpans((first_month, last_month), ((first_day, first_month), (last_month, last_day)), slot_ranges)


@dataclass(frozen=True, slots=True)
class RegionRef:
    region_pk: int
    region_id: str
    version: int


_REGION = text(
    """SELECT r.id, r.region_id, coalesce(v.version, 0)
       FROM regions r LEFT JOIN region_data_version v ON v.region_pk = r.id WHERE r.region_id = :region_id"""
)


async def region_ref(conn: AsyncConnection, region_id: str) -> RegionRef | None:
    """The region's key and data version (bumped by triggers whenever its reports could change)."""
    row = (await conn.execute(_REGION, {"region_id": region_id})).first()
    return None if row is None else RegionRef(int(row[0]), str(row[1]), int(row[2]))


_MEMBERS = text(
    """SELECT s.id, s.site_id, s.renewable_share, s.is_public
       FROM region_sites rs JOIN sites s ON s.id = rs.site_pk WHERE rs.region_pk = :region_pk ORDER BY s.id"""
)


async def member_contracts(conn: AsyncConnection, region_pk: int) -> dict[int, SiteContract]:
    """Member sites' contracts keyed by site primary key."""
    rows = (await conn.execute(_MEMBERS, {"region_pk": region_pk})).all()
    return {int(r[0]): SiteContract(str(r[1]), float(r[2]), bool(r[3])) for r in rows}


_COLUMNS = (
    "import_kwh, export_kwh, pv_kwh, {pv_on_site}, battery_charge_kwh, battery_discharge_kwh, load_kwh, {present}"
)
_ROLLED_UP = _COLUMNS.format(pv_on_site="pv_on_site_kwh", present="slots_present")
_PER_SLOT = _COLUMNS.format(
    pv_on_site="greatest(pv_kwh - export_kwh, 0) AS pv_on_site_kwh",
    present="CASE WHEN coverage > 0 THEN 1 ELSE 0 END AS slots_present",
)
_TOTALS_TEMPLATE = """
    SELECT site_pk, sum(import_kwh), sum(export_kwh), sum(pv_kwh), sum(pv_on_site_kwh),
           sum(battery_charge_kwh), sum(battery_discharge_kwh), sum(load_kwh), sum(slots_present)
    FROM ({parts}) AS parts GROUP BY site_pk
"""
_REGION_FILTER = "site_pk IN (SELECT site_pk FROM region_sites WHERE region_pk = :region_pk)"
_SITES_FILTER = "site_pk = ANY(:site_pks)"
_totals_queries: dict[tuple[bool, ...], TextClause] = {}


def _totals_query(spans: PeriodSpans, by_region: bool) -> tuple[TextClause, dict[str, object]]:
    """The totals query for the non-empty spans only: an empty range still costs an index probe per site."""
    where = _REGION_FILTER if by_region else _SITES_FILTER
    ranges = [
        ("site_energy_monthly", "month", _ROLLED_UP, spans.months),
        ("site_energy_daily", "day", _ROLLED_UP, spans.days[0]),
        ("site_energy_daily", "day", _ROLLED_UP, spans.days[1]),
        ("site_energy_30min", "slot_start", _PER_SLOT, spans.slots[0]),
        ("site_energy_30min", "slot_start", _PER_SLOT, spans.slots[1]),
    ]
    shape = (by_region, *(lo < hi for *_, (lo, hi) in ranges))  # type: ignore[operator]
    params: dict[str, object] = {}
    parts = []
    for i, (table, column, columns, (lo, hi)) in enumerate(ranges):
        if lo < hi:  # type: ignore[operator]
            parts.append(
                f"SELECT site_pk, {columns} FROM {table} WHERE {where} AND {column} >= :lo{i} AND {column} < :hi{i}"
            )
            params[f"lo{i}"], params[f"hi{i}"] = lo, hi
    query = _totals_queries.get(shape)
    if query is None:
        query = _totals_queries[shape] = text(_TOTALS_TEMPLATE.format(parts=" UNION ALL ".join(parts)))
    return query, params


def _nonneg(value: object) -> float:
    # Float sums in a different order can leave -1e-15 where 0 was meant; SiteTotals rejects negatives.
    return max(float(value), 0.0)  # type: ignore[arg-type]


async def site_totals(
    conn: AsyncConnection, contracts: Mapping[int, SiteContract], period: Period, *, region_pk: int | None = None
) -> tuple[list[SiteTotals], int]:
    """Per-site totals over `period` for the sites with any data in it, and the slots present.

    With `region_pk` the sites are selected by region membership in SQL (a semi-join is far cheaper
    than matching against an array of 1,050 ids); sites not in `contracts` are skipped.
    """
    if not contracts:
        return [], 0
    query, params = _totals_query(period_spans(period), region_pk is not None)
    if region_pk is not None:
        params["region_pk"] = region_pk
    else:
        params["site_pks"] = list(contracts)
    rows = (await conn.execute(query, params)).all()
    totals: list[SiteTotals] = []
    present = 0
    for r in rows:
        contract = contracts.get(int(r[0]))
        if contract is None:  # joined the region after `contracts` was read
            continue
        pv_kwh = _nonneg(r[3])
        totals.append(
            SiteTotals(
                contract=contract,
                import_kwh=_nonneg(r[1]),
                export_kwh=_nonneg(r[2]),
                pv_kwh=pv_kwh,
                battery_charge_kwh=_nonneg(r[5]),
                battery_discharge_kwh=_nonneg(r[6]),
                load_kwh=_nonneg(r[7]),
                pv_on_site_kwh=min(_nonneg(r[4]), pv_kwh),
            )
        )
        present += int(r[8])
    return totals, present


_DECLARED = text(
    """SELECT coalesce(sum(renewable_supply_kwh), 0), coalesce(sum(saving_kwh), 0), coalesce(sum(demand_kwh), 0),
              count(*), coalesce(string_agg(source, '; ' ORDER BY period_start, source), ''),
              coalesce(bool_or(includes_metered_sites), true)
       FROM declared_figures
       WHERE region_pk = :region_pk AND period_start >= :start AND period_end <= :end"""
)


async def declared_for_period(conn: AsyncConnection, region_pk: int, period: Period) -> DeclaredFigures | None:
    """Declared figures lying wholly inside `period`, summed; None when there are none.

    Figures only partly inside are left out rather than pro-rated: a yearly statistic says nothing
    about how its energy fell across the months.
    """
    row = (await conn.execute(_DECLARED, {"region_pk": region_pk, "start": period.start, "end": period.end})).one()
    if int(row[3]) == 0:
        return None
    return DeclaredFigures(float(row[0]), float(row[1]), float(row[2]), str(row[4]), bool(row[5]))


_DECLARED_ELSEWHERE = text(
    """SELECT DISTINCT r.region_id FROM declared_figures d JOIN regions r ON r.id = d.region_pk
       WHERE d.region_pk <> :region_pk AND d.period_start >= :start AND d.period_end <= :end
       ORDER BY r.region_id"""
)


async def regions_declared_elsewhere(conn: AsyncConnection, region_pk: int, period: Period) -> list[str]:
    """Other regions holding declared figures wholly inside `period` (to point a caller at them)."""
    params = {"region_pk": region_pk, "start": period.start, "end": period.end}
    return [str(r[0]) for r in (await conn.execute(_DECLARED_ELSEWHERE, params)).all()]


# Written by DR verification (migration 0003). Negative reductions (a site used more than its
# baseline) count against the savings; the total is floored at 0 as the sufficiency formula expects.
# "Increase" events (migration 0006) deliver extra consumption, which is no saving.
_VERIFIED_DR = text(
    """SELECT coalesce(sum(v.reduction_kwh), 0) FROM dr_verified_reductions v JOIN dr_events e ON e.id = v.event_pk
       WHERE v.site_pk = ANY(:site_pks) AND v.slot_start >= :start AND v.slot_start < :end
         AND e.direction = 'reduce'"""
)


async def verified_dr_kwh(conn: AsyncConnection, site_pks: list[int], period: Period) -> float:
    """Verified DR reductions of the sites over `period`, kWh."""
    if not site_pks:
        return 0.0
    value = (
        await conn.execute(_VERIFIED_DR, {"site_pks": site_pks, "start": period.start, "end": period.end})
    ).scalar()
    return max(float(value or 0.0), 0.0)
