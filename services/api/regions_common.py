"""Shared bits of the region routes: the path parameter, region lookup and CSV request bodies."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path, Request
from sqlalchemy.ext.asyncio import AsyncConnection

from services.api.errors import ProblemError
from services.api.schemas import ID_PATTERN
from vpp.postgres.reports import RegionRef, region_ref

__all__ = ["CSV_BODY", "RegionIdPath", "read_csv_body", "require_region"]

RegionIdPath = Annotated[str, Path(pattern=ID_PATTERN, description="Region id, e.g. kawasaki")]

_MAX_CSV_BYTES = 1_000_000
CSV_BODY: dict[str, Any] = {
    "requestBody": {"required": True, "content": {"text/csv": {"schema": {"type": "string"}}}},
}


async def require_region_filter(conn: AsyncConnection, region_id: str | None) -> None:
    """A ``region`` query filter must name a region: an unknown one would answer an empty list, as if the
    region had no members."""
    if region_id is not None and await region_ref(conn, region_id) is None:
        raise ProblemError(422, f"query.region: no region {region_id!r}", slug="validation", title="Invalid request")


async def require_region(conn: AsyncConnection, region_id: str) -> RegionRef:
    region = await region_ref(conn, region_id)
    if region is None:
        raise ProblemError(404, f"no region {region_id!r}")
    return region


async def read_csv_body(request: Request) -> str:
    body = await request.body()
    if len(body) > _MAX_CSV_BYTES:
        raise ProblemError(413, f"the CSV is larger than {_MAX_CSV_BYTES} bytes")
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ProblemError(422, f"body: the CSV must be UTF-8 ({exc.reason} at byte {exc.start})") from None
