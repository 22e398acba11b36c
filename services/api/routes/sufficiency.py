"""Regional renewable sufficiency over a period, and the live view of the running slot."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query
from fastapi.responses import Response

from services.api.cache import CachedReport
from services.api.deps import AggregateReaderDep, ConnDep, NowDep, StateDep
from services.api.errors import ProblemError
from services.api.regions_common import RegionIdPath, require_region
from services.api.schemas import SufficiencyOut
from services.api.series_format import CSV_RESPONSE, FormatQuery, TzQuery, csv_response, in_zone, zone
from services.api.sufficiency_report import check_city_may_see, parse_period_query, region_report
from vpp.domain.periods import current_slot

router = APIRouter(tags=["sufficiency"])

PeriodKindQuery = Annotated[
    Literal["slot", "day", "month", "fiscal_year", "range"],
    Query(description="slot, day, month, fiscal_year (April-March) or range; all in Asia/Tokyo"),
]
PeriodValueQuery = Annotated[
    str,
    Query(
        min_length=1,
        max_length=100,
        description="slot: 2026-11-23T14:00+09:00; day: 2026-11-23; month: 2026-11; fiscal_year: 2023; "
        "range: <start>/<end> with offsets",
    ),
]


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten(f"{prefix}_{key}" if prefix else key, inner, out)
    else:
        out[prefix] = value


def sufficiency_answer(body: bytes, format: str, tz: str, filename: str) -> Response:
    """The cached report (rendered in Japan time) as asked: JSON or a one-row CSV, JST or UTC."""
    if format == "json" and tz != "UTC":
        return Response(content=body, media_type="application/json")
    report = json.loads(body)
    where = zone(tz)
    for holder, key in ((report["period"], "start"), (report["period"], "end"), (report, "computed_at")):
        holder[key] = in_zone(datetime.fromisoformat(holder[key]), where)
    if format == "csv":
        row: dict[str, Any] = {}
        _flatten("", report, row)  # period_start, supply_pv_on_site_kwh, exact_ratio, ...
        safe_name = re.sub(r"[^0-9A-Za-z._-]+", "_", filename)  # a range label holds '/', ':' and '+'
        return csv_response(list(row), [list(row.values())], safe_name, {}, where=where)
    return Response(content=json.dumps(report, default=datetime.isoformat), media_type="application/json")


@router.get(
    "/api/v1/regions/{region_id}/sufficiency",
    response_model=SufficiencyOut,
    responses=CSV_RESPONSE,
    summary="Renewable sufficiency of a region over a period",
)
async def sufficiency(
    state: StateDep,
    principal: AggregateReaderDep,
    region_id: RegionIdPath,
    period: PeriodKindQuery,
    value: PeriodValueQuery,
    format: FormatQuery = "json",
    tz: TzQuery = "Asia/Tokyo",
    cache_control: Annotated[
        str | None, Header(max_length=200, description="'no-cache' recomputes instead of answering from the cache")
    ] = None,
) -> Response:
    now = state.clock()
    parsed = parse_period_query(period, value)
    region = await state.region_versions.get(state.engine, region_id)
    if region is None:
        raise ProblemError(404, f"no region {region_id!r}")
    # The period label alone is not a key: completeness of a running period depends on `now`'s slot.
    key = ("sufficiency", region.region_id, parsed.kind, parsed.start, parsed.end, now.timestamp() // 1800)

    # No request-scoped connection on this path: a cache hit needs none, and a miss takes one
    # only for as long as it computes.
    async def compute() -> CachedReport:
        async with state.engine.connect() as conn:
            return await region_report(conn, state.settings, region, parsed, now)

    if cache_control is not None and "no-cache" in cache_control.lower():
        report = await compute()
        state.cache.put(key, region.version, report)
        computed = True
    else:
        report, computed = await state.cache.get_or_compute(key, region.version, compute)
    (state.metrics.cache_misses if computed else state.metrics.cache_hits).inc()
    check_city_may_see(principal, report.private_sites, state.settings.api_city_min_private_sites)
    return sufficiency_answer(report.body, format, tz, f"{region.region_id}-sufficiency-{parsed.label}.csv")


@router.get(
    "/api/v1/regions/{region_id}/sufficiency/live",
    response_model=SufficiencyOut,
    responses=CSV_RESPONSE,
    summary="Sufficiency of the running 30-minute slot so far",
)
async def sufficiency_live(
    state: StateDep,
    conn: ConnDep,
    principal: AggregateReaderDep,
    now: NowDep,
    region_id: RegionIdPath,
    format: FormatQuery = "json",
    tz: TzQuery = "Asia/Tokyo",
) -> Response:
    region = await require_region(conn, region_id)
    report = await region_report(conn, state.settings, region, current_slot(now), now, live=True)
    check_city_may_see(principal, report.private_sites, state.settings.api_city_min_private_sites)
    return sufficiency_answer(report.body, format, tz, f"{region.region_id}-sufficiency-live.csv")
