"""Regional DR events: list, create, adjust, cancel, detail (lifecycle, audit, verification), settlement.

Creating, adjusting and cancelling record the operator's request (202 Accepted); the DR scheduler
process allocates, plans and publishes on its next tick, and every step shows in the event's audit.
"""

from __future__ import annotations

import csv
import io
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, status
from fastapi.responses import Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy.exc import IntegrityError

from services.api.deps import ConnDep, NowDep, OperatorDep
from services.api.errors import ProblemError
from services.api.schemas import ID_PATTERN
from services.api.series_format import TzQuery, in_zone_deep, zone
from vpp.domain.dr_events import EventStatus, event_window_slots
from vpp.postgres.dr_requests import (
    event_detail,
    list_event_rows,
    record_request,
    region_member_ids,
    request_action,
    settlement_rows,
    unknown_site_ids,
)
from vpp.postgres.reports import region_ref

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/dr", tags=["demand response"])

# Event ids as created here; checked on the way in, so a stray byte (NUL) is a 422, not a database error.
_EVENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
EventIdPath = Annotated[str, Path(pattern=_EVENT_ID_PATTERN, description="A DR event id, e.g. dr-3f2a9c1b0d4e")]

_ADJUSTABLE = {EventStatus.PLANNED, EventStatus.DISPATCHED, EventStatus.ACKNOWLEDGED}
_FINAL = {EventStatus.COMPLETED, EventStatus.CANCELLED}


class EventIn(BaseModel):
    # A misspelt optional field ("sites", "incentive") would otherwise be dropped and the event created
    # without it: region-wide instead of for the sites named, or at no incentive.
    model_config = ConfigDict(extra="forbid")
    start_at: AwareDatetime
    end_at: AwareDatetime
    requested_kw: float = Field(gt=0, le=1_000_000, description="Regional change asked for, kW (see direction)")
    incentive_jpy_per_kwh: float = Field(0.0, ge=0, le=10_000)
    kind: Literal["peak_cut"] = "peak_cut"
    direction: Literal["reduce", "increase"] = Field(
        "reduce",
        description='"reduce": X kW less (each site gets an import limit); "increase": X kW more, e.g. to absorb a '
        "PV surplus or negative prices (each site gets an import floor per slot). Verified against the same "
        "baseline: the reduction, or the increase.",
    )
    region_id: str | None = Field(None, pattern=ID_PATTERN)
    site_ids: list[str] | None = Field(None, max_length=5000)
    event_id: str | None = Field(None, pattern=_EVENT_ID_PATTERN)
    source: Literal["operator", "external", "openadr"] = "operator"


class AdjustIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    requested_kw: float = Field(gt=0, le=1_000_000)


class Accepted(BaseModel):
    event_id: str
    status: str
    pending_action: str


def _event_out(row: dict[str, Any], tz: str) -> dict[str, Any]:
    row = dict(row)
    if row.get("site_ids") is not None:
        row["site_ids"] = list(row["site_ids"])
    out: dict[str, Any] = in_zone_deep(row, zone(tz))  # Japan time unless tz=UTC
    return out


@router.get("/events", summary="DR events, newest first")
async def list_events(
    conn: ConnDep,
    _principal: OperatorDep,
    status_filter: Annotated[EventStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    tz: TzQuery = "Asia/Tokyo",
) -> list[dict[str, Any]]:
    rows = await list_event_rows(conn, status=str(status_filter) if status_filter else None, limit=limit)
    return [_event_out(row, tz) for row in rows]


@router.post("/events", status_code=status.HTTP_202_ACCEPTED, response_model=Accepted, summary="Request a DR event")
async def create_event(conn: ConnDep, principal: OperatorDep, now: NowDep, body: EventIn) -> Accepted:
    try:
        event_window_slots(body.start_at, body.end_at)
    except ValueError as error:
        raise ProblemError(422, str(error)) from None
    if body.end_at <= now:
        raise ProblemError(422, "the event window has already ended")
    if body.site_ids is not None and not body.site_ids:
        # Not "every site": the scheduler would call the sites named, none, and "dispatch" the event to nobody.
        raise ProblemError(
            422, "body.site_ids: name at least one site, or leave it out for every site", slug="no-sites"
        )
    region = None if body.region_id is None else await region_ref(conn, body.region_id)
    if body.region_id is not None and region is None:
        # As for unknown sites: an event for a region that does not exist would be planned for nobody.
        raise ProblemError(422, f"body.region_id: no region {body.region_id!r}", slug="unknown-region")
    if body.site_ids:
        unknown = await unknown_site_ids(conn, body.site_ids)
        if unknown:
            # Refused here rather than planned for nobody: an event naming no real site would be
            # "dispatched" while no site received anything.
            raise ProblemError(
                422,
                f"no such site: {', '.join(unknown[:20])}{' …' if len(unknown) > 20 else ''}",
                slug="unknown-sites",
                extra={"unknown_site_ids": unknown},
            )
    if region is not None:
        # The scheduler calls the region's members (of those named): none would be an event sent to nobody.
        members = await region_member_ids(conn, region.region_pk)
        if not members:
            raise ProblemError(422, f"body.region_id: region {body.region_id!r} has no member sites", slug="no-sites")
        if body.site_ids and not set(body.site_ids) & set(members):
            raise ProblemError(
                422, f"body.site_ids: none of these sites is a member of region {body.region_id!r}", slug="no-sites"
            )
    event_id = body.event_id or f"dr-{uuid.uuid4().hex[:12]}"
    try:
        await record_request(
            conn, event_id=event_id, kind=body.kind, start_at=body.start_at, end_at=body.end_at,
            requested_kw=body.requested_kw, incentive_jpy_per_kwh=body.incentive_jpy_per_kwh,
            region_id=body.region_id, site_ids=body.site_ids, source=body.source,
            actor=f"{principal.role}:{principal.client_id}", now=now, direction=body.direction,
        )  # fmt: skip
    except IntegrityError:  # event_id is unique; the database is the one place that can check it race-free
        await conn.rollback()
        raise ProblemError(409, f"event {event_id!r} already exists") from None
    await conn.commit()
    return Accepted(event_id=event_id, status=EventStatus.PLANNED, pending_action="plan")


async def _request(conn: ConnDep, event_id: str, action: str, actor: str, now: datetime, kw: float | None) -> Accepted:
    detail = await event_detail(conn, event_id)
    if detail is None:
        raise ProblemError(404, f"no DR event {event_id!r}")
    current = EventStatus(detail["status"])
    if action == "replan" and current not in _ADJUSTABLE:
        raise ProblemError(409, f"a {current} event cannot be adjusted")
    if action == "cancel" and current in _FINAL:
        raise ProblemError(409, f"a {current} event cannot be cancelled")
    await request_action(conn, event_id, action, actor=actor, now=now, requested_kw=kw)
    await conn.commit()
    return Accepted(event_id=event_id, status=current, pending_action=action)


@router.patch(
    "/events/{event_id}", status_code=status.HTTP_202_ACCEPTED, response_model=Accepted, summary="Adjust the request"
)
async def adjust_event(
    conn: ConnDep, principal: OperatorDep, now: NowDep, event_id: EventIdPath, body: AdjustIn
) -> Accepted:
    return await _request(conn, event_id, "replan", f"{principal.role}:{principal.client_id}", now, body.requested_kw)


@router.post(
    "/events/{event_id}/cancel", status_code=status.HTTP_202_ACCEPTED, response_model=Accepted, summary="Cancel"
)
async def cancel_event(conn: ConnDep, principal: OperatorDep, now: NowDep, event_id: EventIdPath) -> Accepted:
    return await _request(conn, event_id, "cancel", f"{principal.role}:{principal.client_id}", now, None)


@router.get("/events/{event_id}", summary="An event with its sites, lifecycle audit and verified reductions")
async def get_event(
    conn: ConnDep, _principal: OperatorDep, event_id: EventIdPath, tz: TzQuery = "Asia/Tokyo"
) -> dict[str, Any]:
    detail = await event_detail(conn, event_id)
    if detail is None:
        raise ProblemError(404, f"no DR event {event_id!r}")
    lines = await settlement_rows(conn, since=None, until=None, event_id=event_id)
    detail["settlement"] = [
        {"site_id": line["site_id"], "delivered_kwh": s.delivered_kwh, "settled_kwh": s.settled_kwh,
         "amount_jpy": s.amount_jpy, "missing_slots": s.missing_slots, "method": line["method"]}
        for line, s in lines
    ]  # fmt: skip
    return _event_out(detail, tz)


_CSV_COLUMNS = (
    "event_id", "site_id", "start_at", "end_at", "method", "incentive_jpy_per_kwh", "delivered_kwh", "settled_kwh",
    "amount_jpy", "missing_slots",
)  # fmt: skip


@router.get("/settlement", summary="Settlement report: verified kWh × incentive per event and site (JSON or CSV)")
async def settlement(
    conn: ConnDep,
    _principal: OperatorDep,
    since: AwareDatetime | None = None,
    until: AwareDatetime | None = None,
    event_id: Annotated[str | None, Query(pattern=_EVENT_ID_PATTERN)] = None,
    fmt: Annotated[Literal["json", "csv"], Query(alias="format")] = "json",
    tz: TzQuery = "Asia/Tokyo",
) -> Any:
    for name, moment in (("since", since), ("until", until)):
        if moment is not None and not 1900 <= moment.year <= 2999:
            raise ProblemError(422, f"query.{name}: year must be within 1900-2999", slug="validation")
    if since is not None and until is not None and until <= since:
        raise ProblemError(422, "query.until: must be after since", slug="validation")
    rows = [
        {**line, "delivered_kwh": s.delivered_kwh, "settled_kwh": s.settled_kwh, "amount_jpy": s.amount_jpy,
         "missing_slots": s.missing_slots}
        for line, s in await settlement_rows(conn, since=since, until=until, event_id=event_id)
    ]  # fmt: skip
    if fmt == "json":
        return {"lines": in_zone_deep(rows, zone(tz)), "total_settled_kwh": sum(r["settled_kwh"] for r in rows),
                "total_amount_jpy": sum(r["amount_jpy"] for r in rows)}  # fmt: skip
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=_CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        where = zone(tz)  # the download in Japan time unless tz=UTC
        writer.writerow(
            {**row, "start_at": row["start_at"].astimezone(where).isoformat(),
             "end_at": row["end_at"].astimezone(where).isoformat()}
        )  # fmt: skip
    return Response(
        buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="dr-settlement.csv"'},
    )
