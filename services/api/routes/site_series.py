"""A site's time series: telemetry (raw or bucketed), 30-minute energy, monthly maximum demand."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import AwareDatetime

from services.api.deps import ConnDep, PrincipalDep
from services.api.errors import ProblemError
from services.api.schemas import DEVICE_ID_PATTERN, BucketOut, EnergySlotOut, MonthlyDemandOut, Page, ReadingOut
from services.api.series_format import (
    CSV_RESPONSE,
    FormatQuery,
    LimitQuery,
    OffsetQuery,
    TzQuery,
    csv_response,
    localize_rows,
    next_link,
    split_page,
    zone,
)
from services.api.site_access import SiteIdPath, readable_site
from vpp.domain.demand import RATCHET_MONTHS, demand_kw, monthly_max_demand, ratchet_contract_demand
from vpp.domain.slots import JST
from vpp.postgres.site_series import bucketed_readings, energy_slots, raw_readings, slot_imports

router = APIRouter(tags=["sites"])

StartQuery = Annotated[AwareDatetime, Query(description="Inclusive start, with UTC offset")]
EndQuery = Annotated[AwareDatetime, Query(description="Exclusive end, with UTC offset")]
BUCKETS = {
    "1m": timedelta(minutes=1),
    "5m": timedelta(minutes=5),
    "15m": timedelta(minutes=15),
    "30m": timedelta(minutes=30),
    "1h": timedelta(hours=1),
    "1d": timedelta(days=1),
}
_MAX_RAW = timedelta(days=31)
_MAX_SERIES = timedelta(days=400)
_MAX_DEMAND_MONTHS = 36
_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def _window(start: datetime, end: datetime, longest: timedelta) -> None:
    for name, moment in (("start", start), ("end", end)):
        if not 1900 <= moment.year <= 2999:
            raise ProblemError(422, f"query.{name}: year must be within 1900-2999", slug="validation")
    if end <= start:
        raise ProblemError(422, "query.end: must be after start", slug="validation")
    if end - start > longest:
        raise ProblemError(422, f"query.end: the window may span at most {longest.days} days", slug="validation")


@router.get(
    "/api/v1/sites/{site_id}/telemetry",
    response_model=Page[ReadingOut] | Page[BucketOut],
    responses=CSV_RESPONSE,
    summary="Telemetry, raw (window up to 31 days) or averaged per bucket (1 minute to 1 day)",
)
async def telemetry(
    request: Request,
    conn: ConnDep,
    principal: PrincipalDep,
    site_id: SiteIdPath,
    start: StartQuery,
    end: EndQuery,
    bucket: Annotated[Literal["raw", "1m", "5m", "15m", "30m", "1h", "1d"], Query()] = "raw",
    device_id: Annotated[str | None, Query(pattern=DEVICE_ID_PATTERN)] = None,
    limit: LimitQuery = 1000,
    offset: OffsetQuery = 0,
    format: FormatQuery = "json",
    tz: TzQuery = "Asia/Tokyo",
) -> Response:
    site = await readable_site(conn, principal, site_id)
    if bucket == "raw":
        _window(start, end, _MAX_RAW)
        rows = await raw_readings(conn, site.site_pk, device_id, start, end, limit + 1, offset)
        fields = list(ReadingOut.model_fields)
    else:
        _window(start, end, _MAX_SERIES)
        rows = await bucketed_readings(conn, site.site_pk, device_id, start, end, BUCKETS[bucket], limit + 1, offset)
        fields = list(BucketOut.model_fields)
    page_rows, next_offset = split_page(rows, limit, offset)
    items = localize_rows(page_rows, zone(tz))
    headers = next_link(request, next_offset)
    if format == "csv":
        return csv_response(fields, items, f"{site_id}-telemetry.csv", headers, where=zone(tz))
    model = ReadingOut if bucket == "raw" else BucketOut
    page = Page[model](  # type: ignore[valid-type]
        items=[model(**dict(zip(fields, r, strict=True))) for r in items],
        limit=limit,
        offset=offset,
        next_offset=next_offset,
    )
    return Response(page.model_dump_json(), media_type="application/json", headers=headers)


@router.get(
    "/api/v1/sites/{site_id}/energy",
    response_model=Page[EnergySlotOut],
    responses=CSV_RESPONSE,
    summary="30-minute energy per flow (window up to 400 days)",
)
async def energy(
    request: Request,
    conn: ConnDep,
    principal: PrincipalDep,
    site_id: SiteIdPath,
    start: StartQuery,
    end: EndQuery,
    limit: LimitQuery = 1000,
    offset: OffsetQuery = 0,
    format: FormatQuery = "json",
    tz: TzQuery = "Asia/Tokyo",
) -> Response:
    site = await readable_site(conn, principal, site_id)
    _window(start, end, _MAX_SERIES)
    rows = await energy_slots(conn, site.site_pk, start, end, limit + 1, offset)
    items, next_offset = split_page(rows, limit, offset)
    headers = next_link(request, next_offset)
    # demand_kw sits before coverage, in model order.
    table = localize_rows([(*r[:8], demand_kw(float(r[1])), float(r[8])) for r in items], zone(tz))
    fields = list(EnergySlotOut.model_fields)
    if format == "csv":
        return csv_response(fields, table, f"{site_id}-energy-30min.csv", headers, where=zone(tz))
    page = Page[EnergySlotOut](
        items=[EnergySlotOut(**dict(zip(fields, r, strict=True))) for r in table],
        limit=limit,
        offset=offset,
        next_offset=next_offset,
    )
    return Response(page.model_dump_json(), media_type="application/json", headers=headers)


def _parse_month(text: str, name: str) -> tuple[int, int]:
    match = _MONTH.match(text)
    if match is None or not 1900 <= int(match[1]) <= 2999:
        raise ProblemError(
            422, f"query.{name}: must be a month like 2026-11 (YYYY-MM); got {text!r}", slug="validation"
        )
    return int(match[1]), int(match[2])


def _month_start(index: int) -> datetime:
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=JST)


@router.get(
    "/api/v1/sites/{site_id}/demand",
    response_model=list[MonthlyDemandOut],
    responses=CSV_RESPONSE,
    summary="Monthly maximum demand (highest 30-minute average kW) with the 12-month ratchet",
)
async def demand(
    conn: ConnDep,
    principal: PrincipalDep,
    site_id: SiteIdPath,
    from_month: Annotated[str, Query(max_length=7, description="First month, YYYY-MM (JST)")],
    to_month: Annotated[str, Query(max_length=7, description="Last month, YYYY-MM (JST), inclusive")],
    format: FormatQuery = "json",
    tz: TzQuery = "Asia/Tokyo",
) -> Response:
    site = await readable_site(conn, principal, site_id)
    first_y, first_m = _parse_month(from_month, "from_month")
    last_y, last_m = _parse_month(to_month, "to_month")
    first, last = first_y * 12 + first_m - 1, last_y * 12 + last_m - 1
    if last < first:
        raise ProblemError(422, "query.to_month: must not be before from_month", slug="validation")
    if last - first >= _MAX_DEMAND_MONTHS:
        raise ProblemError(422, f"query.to_month: at most {_MAX_DEMAND_MONTHS} months per request", slug="validation")
    # The ratchet of the first month looks back 11 months.
    imports = await slot_imports(conn, site.site_pk, _month_start(first - (RATCHET_MONTHS - 1)), _month_start(last + 1))
    maxima = monthly_max_demand(imports)
    max_kw = {month: kw for month, (kw, _) in maxima.items()}
    rows = []
    for index in range(first, last + 1):
        month = (index // 12, index % 12 + 1)
        found = maxima.get(month)
        window = [m for m in max_kw if (m[0] * 12 + m[1] - 1) in range(index - RATCHET_MONTHS + 1, index + 1)]
        rows.append(
            MonthlyDemandOut(
                month=f"{month[0]:04d}-{month[1]:02d}",
                max_demand_kw=found[0] if found else None,
                max_demand_slot_start=found[1].astimezone(zone(tz)) if found else None,
                ratchet_contract_demand_kw=ratchet_contract_demand(max_kw, month) if window else None,
            )
        )
    if format == "csv":
        fields = list(MonthlyDemandOut.model_fields)
        return csv_response(
            fields, [list(r.model_dump().values()) for r in rows], f"{site_id}-demand.csv", {}, where=zone(tz)
        )
    body = b"[" + b",".join(r.model_dump_json().encode() for r in rows) + b"]"
    return Response(body, media_type="application/json")
