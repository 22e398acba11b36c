"""Renewable capacity progress: registered PV plus declared statistics against the FY2030 target."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from services.api.csv_import import CsvError, parse_capacity_csv
from services.api.deps import AggregateReaderDep, ConnDep, OperatorDep, StateDep
from services.api.errors import ProblemError
from services.api.regions_common import CSV_BODY, RegionIdPath, read_csv_body, require_region
from services.api.schemas import CapacityItem, CapacityProgress, ImportResult, Provenance
from services.api.sufficiency_report import check_city_may_see
from vpp.postgres.regions import CapacityRow, list_capacity, registered_pv_kw, upsert_capacity

router = APIRouter(tags=["regions"])


@router.get(
    "/api/v1/regions/{region_id}/renewable-capacity",
    response_model=CapacityProgress,
    summary="Installed renewable capacity against the target",
)
async def capacity(
    state: StateDep, conn: ConnDep, principal: AggregateReaderDep, region_id: RegionIdPath
) -> CapacityProgress:
    region = await require_region(conn, region_id)
    declared = await list_capacity(conn, region.region_pk)
    pv_kw, private_sites = await registered_pv_kw(conn, region.region_pk)
    # Registered PV is summed from the sites' own capacities: over one or two private sites it is theirs.
    check_city_may_see(principal, private_sites, state.settings.api_city_min_private_sites)
    declared_kw = sum(item.capacity_kw for item in declared)
    installed_kw = pv_kw + declared_kw
    target_kw = state.settings.api_capacity_target_kw
    metered, stated = pv_kw > 0, bool(declared)
    provenance: Provenance = (
        "mixed" if metered and stated else "metered" if metered else "declared" if stated else "none"
    )
    return CapacityProgress(
        region_id=region.region_id,
        target_kw=target_kw,
        target_fiscal_year=state.settings.api_capacity_target_fiscal_year,
        registered_pv_kw=pv_kw,
        declared_kw=declared_kw,
        installed_kw=installed_kw,
        progress=installed_kw / target_kw,
        remaining_kw=max(target_kw - installed_kw, 0.0),
        declared=[
            CapacityItem(category=i.category, fiscal_year=i.fiscal_year, capacity_kw=i.capacity_kw, source=i.source)
            for i in declared
        ],
        provenance=provenance,
    )


@router.post(
    "/api/v1/regions/{region_id}/renewable-capacity/csv",
    response_model=ImportResult,
    summary="Import declared capacity from CSV (source, fyYYYY_actual_kw, ...)",
    openapi_extra=CSV_BODY,
)
async def import_capacity_csv(
    request: Request,
    conn: ConnDep,
    _principal: OperatorDep,
    region_id: RegionIdPath,
    source: Annotated[str, Query(min_length=1, max_length=500)] = "CSV import",
) -> ImportResult:
    region = await require_region(conn, region_id)
    try:
        figures = parse_capacity_csv(await read_csv_body(request))
    except CsvError as exc:
        raise ProblemError(422, f"body: {exc}", slug="validation", title="Invalid request") from None
    await upsert_capacity(
        conn, region.region_pk, [CapacityRow(f.category, f.fiscal_year, f.capacity_kw, source) for f in figures]
    )
    await conn.commit()
    return ImportResult(imported=len(figures))
