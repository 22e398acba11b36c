"""Regions: sets of sites plus declared series."""

from __future__ import annotations

from fastapi import APIRouter

from services.api.deps import AggregateReaderDep, ConnDep, OperatorDep
from services.api.errors import ProblemError
from services.api.regions_common import RegionIdPath, require_region
from services.api.schemas import RegionDetail, RegionIn, RegionSummary
from vpp.postgres.regions import list_regions, region_members, set_region

router = APIRouter(tags=["regions"])


@router.get("/api/v1/regions", response_model=list[RegionSummary], summary="List regions")
async def regions(conn: ConnDep, _principal: AggregateReaderDep) -> list[RegionSummary]:
    return [
        RegionSummary(region_id=r.region_id, name=r.name, name_ja=r.name_ja, member_sites=r.member_sites)
        for r in await list_regions(conn)
    ]


async def _detail(conn: ConnDep, region_id: str, *, public_only: bool) -> RegionDetail:
    ref = await require_region(conn, region_id)
    row = (await list_regions(conn, region_id))[0]
    members = await region_members(conn, ref.region_pk)
    public = [site for site, is_public in members if is_public]
    return RegionDetail(
        region_id=row.region_id,
        name=row.name,
        name_ja=row.name_ja,
        member_sites=len(members),
        public_sites=len(public),
        private_sites=len(members) - len(public),
        site_ids=public if public_only else [site for site, _ in members],
        data_version=ref.version,
    )


@router.get("/api/v1/regions/{region_id}", response_model=RegionDetail, summary="A region and its member sites")
async def region(conn: ConnDep, principal: AggregateReaderDep, region_id: RegionIdPath) -> RegionDetail:
    return await _detail(conn, region_id, public_only=principal.role != "operator")


@router.put("/api/v1/regions/{region_id}", response_model=RegionDetail, summary="Create or replace a region")
async def put_region(conn: ConnDep, _principal: OperatorDep, region_id: RegionIdPath, body: RegionIn) -> RegionDetail:
    unknown = await set_region(conn, region_id, body.name, body.name_ja, body.site_ids)
    if unknown:
        index = body.site_ids.index(unknown[0])
        raise ProblemError(
            422,
            f"body.site_ids.{index}: no site {unknown[0]!r}"
            + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""),
            slug="validation",
            title="Invalid request",
            extra={
                "errors": [
                    {"loc": ["body", "site_ids", body.site_ids.index(s)], "msg": f"no site {s!r}"} for s in unknown
                ]
            },
        )
    await conn.commit()
    return await _detail(conn, region_id, public_only=False)
