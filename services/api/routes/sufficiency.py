"""Regional renewable sufficiency over a period, and the live view of the running slot."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query
from fastapi.responses import Response

from services.api.cache import CachedReport
from services.api.deps import AggregateReaderDep, ConnDep, NowDep, StateDep
from services.api.errors import ProblemError
from services.api.regions_common import RegionIdPath, require_region
from services.api.schemas import SufficiencyOut
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


def _json(body: bytes) -> Response:
    return Response(content=body, media_type="application/json")


@router.get(
    "/api/v1/regions/{region_id}/sufficiency",
    response_model=SufficiencyOut,
    summary="Renewable sufficiency of a region over a period",
)
async def sufficiency(
    state: StateDep,
    principal: AggregateReaderDep,
    region_id: RegionIdPath,
    period: PeriodKindQuery,
    value: PeriodValueQuery,
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
    return _json(report.body)


@router.get(
    "/api/v1/regions/{region_id}/sufficiency/live",
    response_model=SufficiencyOut,
    summary="Sufficiency of the running 30-minute slot so far",
)
async def sufficiency_live(
    state: StateDep, conn: ConnDep, principal: AggregateReaderDep, now: NowDep, region_id: RegionIdPath
) -> Response:
    region = await require_region(conn, region_id)
    report = await region_report(conn, state.settings, region, current_slot(now), now, live=True)
    check_city_may_see(principal, report.private_sites, state.settings.api_city_min_private_sites)
    return _json(report.body)
