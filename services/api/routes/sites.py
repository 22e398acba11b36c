"""Sites: list, detail and self-sufficiency."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from services.api.deps import ConnDep, NowDep, OperatorDep, PrincipalDep, StateDep
from services.api.errors import ProblemError
from services.api.regions_common import require_region_filter
from services.api.routes.sufficiency import PeriodKindQuery, PeriodValueQuery, sufficiency_answer
from services.api.schemas import ID_PATTERN, DeviceOut, Page, SiteDetail, SiteOut, SufficiencyOut
from services.api.series_format import (
    CSV_RESPONSE,
    FormatQuery,
    LimitQuery,
    OffsetQuery,
    TzQuery,
    next_link,
    split_page,
)
from services.api.site_access import SiteIdPath, readable_site
from services.api.sufficiency_report import parse_period_query, site_report
from vpp.domain.sufficiency import SiteContract
from vpp.postgres.site_series import SiteRow, list_devices, list_sites, set_peak_programme

router = APIRouter(tags=["sites"])


def _out(site: SiteRow) -> SiteOut:
    return SiteOut(
        site_id=site.site_id,
        name=site.name,
        public=site.is_public,
        latitude=site.latitude,
        longitude=site.longitude,
        pv_kw=site.pv_kw,
        battery_kwh=site.battery_kwh,
        battery_kw=site.battery_kw,
        contract_demand_kw=site.contract_demand_kw,
        demand_target_kw=site.demand_target_kw,
        renewable_share=site.renewable_share,
        regions=site.regions,
        online=site.online,
        last_reading_at=site.last_reading_at,
        peak_programme=site.peak_programme,
    )


@router.get("/api/v1/sites", response_model=Page[SiteOut], summary="List the sites the caller may see")
async def sites(
    request: Request,
    response: Response,
    conn: ConnDep,
    principal: PrincipalDep,
    region: Annotated[str | None, Query(pattern=ID_PATTERN, description="Only members of this region")] = None,
    limit: LimitQuery = 100,
    offset: OffsetQuery = 0,
) -> Page[SiteOut]:
    await require_region_filter(conn, region)
    rows = await list_sites(
        conn,
        region_id=region,
        public_only=principal.role == "city",
        only_site_id=principal.site_id if principal.role == "site" else None,
        limit=limit + 1,
        offset=offset,
    )
    items, next_offset = split_page(rows, limit, offset)
    response.headers.update(next_link(request, next_offset))
    return Page[SiteOut](items=[_out(s) for s in items], limit=limit, offset=offset, next_offset=next_offset)


@router.get("/api/v1/sites/{site_id}", response_model=SiteDetail, summary="A site and its devices")
async def site(conn: ConnDep, principal: PrincipalDep, site_id: SiteIdPath) -> SiteDetail:
    row = await readable_site(conn, principal, site_id)
    devices = [
        DeviceOut(device_id=d[0], kind=d[1], rated_power_kw=d[2], last_reading_at=d[3])
        for d in await list_devices(conn, row.site_pk)
    ]
    return SiteDetail(**_out(row).model_dump(), devices=devices)


@router.get(
    "/api/v1/sites/{site_id}/sufficiency",
    response_model=SufficiencyOut,
    responses=CSV_RESPONSE,
    summary="A site's renewable self-sufficiency over a period",
)
async def site_sufficiency(
    state: StateDep,
    conn: ConnDep,
    principal: PrincipalDep,
    now: NowDep,
    site_id: SiteIdPath,
    period: PeriodKindQuery,
    value: PeriodValueQuery,
    format: FormatQuery = "json",
    tz: TzQuery = "Asia/Tokyo",
) -> Response:
    parsed = parse_period_query(period, value)
    row = await readable_site(conn, principal, site_id)
    contract = SiteContract(row.site_id, row.renewable_share, row.is_public)
    body = await site_report(conn, state.settings, row.site_pk, contract, parsed, now)
    return sufficiency_answer(body, format, tz, f"{row.site_id}-sufficiency-{parsed.label}.csv")


class PeakProgrammeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enrolled: StrictBool = Field(description="true: enrol the site; false: withdraw it (today's limit is cancelled)")


class PeakProgrammeOut(BaseModel):
    site_id: str
    enrolled: bool


@router.put(
    "/api/v1/sites/{site_id}/peak-programme",
    response_model=PeakProgrammeOut,
    summary="Enrol a battery site in the day's peak programme, or withdraw it (operators)",
    description="Enrolled battery sites without EV charging get each 30-minute slot's import limit from the DR "
    "scheduler, chosen from live telemetry to keep the day's peak demand low; the scheduler sends the first "
    "limit within a slot. Withdrawing cancels the day's limit at the site.",
)
async def peak_programme(
    conn: ConnDep, _principal: OperatorDep, site_id: SiteIdPath, body: PeakProgrammeIn
) -> PeakProgrammeOut:
    if not await set_peak_programme(conn, site_id, body.enrolled):
        raise ProblemError(404, f"no site {site_id!r}")
    return PeakProgrammeOut(site_id=site_id, enrolled=body.enrolled)
