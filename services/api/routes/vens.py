"""The VENs the platform serves over OpenADR 2.0b and 3.1: protocol, last poll, opt state (operators only)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel

from services.api.deps import ConnDep, NowDep, OperatorDep
from vpp.postgres.ven_status import ven_statuses

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/dashboard", tags=["dashboard"])


class EventOptOut(BaseModel):
    event_id: str
    dr_event_id: str
    modification_number: int
    opt: str | None = None  # optIn, optOut; null while unanswered


class VenOut(BaseModel):
    protocol: str  # "2.0b" or "3.1"
    ven_name: str
    ven_id: str
    targets: list[str]
    registered: bool
    revoked: bool
    last_poll_at: datetime | None = None  # null for 3.1 VENs: their REST reads are not recorded
    events: list[EventOptOut]


@router.get("/vens", response_model=list[VenOut], summary="OpenADR VENs: protocol, last poll, opt state")
async def list_vens(conn: ConnDep, now: NowDep, _operator: OperatorDep) -> list[VenOut]:
    return [
        VenOut(protocol=v.protocol, ven_name=v.ven_name, ven_id=v.ven_id, targets=list(v.targets),
               registered=v.registered, revoked=v.revoked, last_poll_at=v.last_poll_at,
               events=[EventOptOut(event_id=e.event_id, dr_event_id=e.dr_event_id,
                                   modification_number=e.modification_number, opt=e.opt) for e in v.events])
        for v in await ven_statuses(conn, now)
    ]  # fmt: skip
