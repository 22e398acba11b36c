"""Declared series of a region: top-down statistics such as the city's fiscal-year figures."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, status

from services.api.csv_import import CsvError, parse_fiscal_year_csv
from services.api.deps import AggregateReaderDep, ConnDep, OperatorDep
from services.api.errors import ProblemError
from services.api.regions_common import CSV_BODY, RegionIdPath, read_csv_body, require_region
from services.api.schemas import DeclaredFigureIn, DeclaredFigureOut, ImportResult
from services.api.sufficiency_report import parse_period_query
from vpp.domain.periods import parse_period
from vpp.postgres.regions import DeclaredRow, list_declared, upsert_declared

router = APIRouter(tags=["regions"])


def _out(row: DeclaredRow) -> DeclaredFigureOut:
    return DeclaredFigureOut(
        id=row.id,
        period_start=row.period_start,
        period_end=row.period_end,
        renewable_supply_kwh=row.renewable_supply_kwh,
        saving_kwh=row.saving_kwh,
        demand_kwh=row.demand_kwh,
        source=row.source,
        includes_metered_sites=row.includes_metered_sites,
    )


@router.get("/api/v1/regions/{region_id}/declared", response_model=list[DeclaredFigureOut], summary="Declared figures")
async def declared(conn: ConnDep, _principal: AggregateReaderDep, region_id: RegionIdPath) -> list[DeclaredFigureOut]:
    region = await require_region(conn, region_id)
    return [_out(r) for r in await list_declared(conn, region.region_pk)]


@router.post(
    "/api/v1/regions/{region_id}/declared",
    response_model=DeclaredFigureOut,
    status_code=status.HTTP_201_CREATED,
    summary="Declare a figure for a period (replaces one with the same period and source)",
)
async def post_declared(
    conn: ConnDep, _principal: OperatorDep, region_id: RegionIdPath, body: DeclaredFigureIn
) -> DeclaredFigureOut:
    region = await require_region(conn, region_id)
    period = parse_period_query(body.period, body.value, location="body")
    row = await upsert_declared(
        conn,
        region.region_pk,
        period.start,
        period.end,
        body.renewable_supply_kwh,
        body.saving_kwh,
        body.demand_kwh,
        body.source,
        body.includes_metered_sites,
    )
    await conn.commit()
    return _out(row)


@router.post(
    "/api/v1/regions/{region_id}/declared/csv",
    response_model=ImportResult,
    summary="Import fiscal-year figures from CSV (fiscal_year, renewable_supply_kwh, saving_kwh, civil_demand_kwh)",
    openapi_extra=CSV_BODY,
)
async def import_declared_csv(
    request: Request,
    conn: ConnDep,
    _principal: OperatorDep,
    region_id: RegionIdPath,
    source: Annotated[str, Query(min_length=1, max_length=500)] = "CSV import",
) -> ImportResult:
    region = await require_region(conn, region_id)
    try:
        figures = parse_fiscal_year_csv(await read_csv_body(request))
    except CsvError as exc:
        raise ProblemError(422, f"body: {exc}", slug="validation", title="Invalid request") from None
    for figure in figures:
        period = parse_period("fiscal_year", str(figure.fiscal_year))
        await upsert_declared(
            conn,
            region.region_pk,
            period.start,
            period.end,
            figure.renewable_supply_kwh,
            figure.saving_kwh,
            figure.demand_kwh,
            f"{source}, FY{figure.fiscal_year}",
        )
    await conn.commit()
    return ImportResult(imported=len(figures))
