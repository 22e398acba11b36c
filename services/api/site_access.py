"""Who may read which site: operators any, city clients public sites only, site clients their own."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path
from sqlalchemy.ext.asyncio import AsyncConnection

from services.api.auth import Principal
from services.api.errors import ProblemError
from services.api.schemas import ID_PATTERN
from vpp.postgres.site_series import SiteRow, get_site

__all__ = ["SiteIdPath", "readable_site"]

SiteIdPath = Annotated[str, Path(pattern=ID_PATTERN, description="Site id, e.g. depot-a")]


async def readable_site(conn: AsyncConnection, principal: Principal, site_id: str) -> SiteRow:
    # A site client learns nothing about other sites, not even whether they exist.
    if principal.role == "site" and principal.site_id != site_id:
        raise ProblemError(403, f"site clients may only read their own site ({principal.site_id})")
    site = await get_site(conn, site_id)
    if site is None:
        raise ProblemError(404, f"no site {site_id!r}")
    if principal.role == "city" and not site.is_public:
        raise ProblemError(403, "city clients may not read per-site data of private sites")
    return site
