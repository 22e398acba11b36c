"""What the operations dashboard reads beyond the public REST API: region flows per slot, live site
states with the running slot's predicted demand, alarms, and the DR timeline with verified reductions.

Operator only: every answer carries per-site data of private sites. Each endpoint is one or two
queries, so the page can poll them every few seconds.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncConnection

from services.api.deps import ConnDep, NowDep, OperatorDep
from services.api.regions_common import RegionIdPath, require_region, require_region_filter
from services.api.schemas import ID_PATTERN
from vpp.domain.demand import DemandAlarm, demand_alarm, predict_end_of_slot_demand_kw
from vpp.domain.slots import JST, SLOT, slot_start
from vpp.postgres.dashboard import (
    DeviceState,
    PeakProgrammeState,
    dead_letter_counts,
    device_states,
    peak_programme_states,
    region_flow_rows,
    stored_alarms,
    timeline_rows,
)

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/dashboard", tags=["dashboard"])

_SLOT_H = SLOT / timedelta(hours=1)


class FlowSlot(BaseModel):
    """Average power over the slot (or over its elapsed part while it runs), kW, summed over sites."""

    slot_start: datetime
    running: bool
    pv_on_site_kw: float
    contract_renewable_kw: float
    other_import_kw: float
    battery_kw: float  # + discharge, - charge
    export_kw: float
    ev_kw: float
    demand_kw: float  # site load
    sites: int


class RegionFlows(BaseModel):
    region_id: str
    day: date
    slots: list[FlowSlot]


class PeakProgrammeLive(BaseModel):
    """The day's peak programme at an enrolled site (`PUT /api/v1/sites/{site_id}/peak-programme`)."""

    state: Literal["waiting", "solving", "holding", "left_out"]  # waiting: not looked at yet today
    why: str | None  # left out: the short reason (as in vpp_dr_peak_programme_left_out_total)
    reason: str | None  # left out: what the operator reads
    checked_at: datetime | None
    limit_kw: float | None  # the import limit in force now (None: no event in effect)
    limits_kw: list[float | None]  # per slot of today (JST), the limit in force when the programme looked


class SiteLive(BaseModel):
    site_id: str
    name: str
    public: bool
    online: bool
    status_online: bool | None
    last_reading_at: datetime | None
    age_s: float | None
    grid_kw: float | None = None
    pv_kw: float | None = None
    battery_kw: float | None = None
    ev_kw: float | None = None
    load_kw: float | None = None
    soc_pct: float | None = None
    vehicles: int | None = None
    demand_target_kw: float | None
    slot_start: datetime
    slot_import_kwh: float
    predicted_demand_kw: float | None
    demand_level: DemandAlarm | None
    peak_programme: PeakProgrammeLive | None = None  # None: not enrolled


class DemandAlarmOut(BaseModel):
    site_id: str
    slot_start: datetime
    level: Literal["warn", "over"]
    predicted_kw: float
    target_kw: float
    raised_at: datetime
    origin: Literal["live", "scheduler"]


class DeadLetterRate(BaseModel):
    last_5min: int
    last_hour: int
    per_min: float
    threshold_per_min: float
    alarm: bool
    by_reason: dict[str, int]


class Alarms(BaseModel):
    demand: list[DemandAlarmOut]
    offline: list[SiteLive]
    dead_letters: DeadLetterRate


class Live(BaseModel):
    now: datetime
    stale_after_s: float
    sites: list[SiteLive]
    alarms: Alarms


class TimelineEvent(BaseModel):
    event_id: str
    kind: str
    status: str
    region_id: str | None
    start_at: datetime
    end_at: datetime
    requested_kw: float
    allocated_kw: float
    shortfall_kw: float
    incentive_jpy_per_kwh: float
    revision: int
    source: str
    pending_action: str | None
    updated_at: datetime
    sites: int
    dispatched_sites: int
    acked_sites: int
    verified_slots: int
    verified_reduction_kwh: float | None  # delivered in the direction asked: less import, or more
    direction: Literal["reduce", "increase"]
    deliverable_kw: float | None  # what the sites' own forecast plans can deliver (None: planned before 0010)
    unreachable_sites: int  # called sites whose stored plan misses its limit on the forecast


@router.get("/regions/{region_id}/flows", response_model=RegionFlows, summary="A region's supply and demand per slot")
async def region_flows(
    conn: ConnDep,
    _principal: OperatorDep,
    now: NowDep,
    region_id: RegionIdPath,
    day: Annotated[
        date | None,
        Query(ge=date(1900, 1, 1), le=date(2999, 12, 31), description="JST day; today by default"),
    ] = None,
) -> RegionFlows:
    region = await require_region(conn, region_id)
    the_day = day or now.astimezone(JST).date()
    start = datetime(the_day.year, the_day.month, the_day.day, tzinfo=JST)
    running = slot_start(now)
    slots = []
    for row in await region_flow_rows(conn, region.region_pk, start, start + timedelta(days=1)):
        is_running = row.slot_start == running
        # A running slot's energy covers only its elapsed part: divide by that, not by the whole slot.
        hours = max((now - running) / timedelta(hours=1), 1 / 60) if is_running else _SLOT_H
        slots.append(FlowSlot(slot_start=row.slot_start, running=is_running, pv_on_site_kw=row.pv_on_site_kwh / hours,
                              contract_renewable_kw=row.contract_renewable_kwh / hours,
                              other_import_kw=row.other_import_kwh / hours,
                              battery_kw=row.battery_net_discharge_kwh / hours, export_kw=row.export_kwh / hours,
                              ev_kw=row.ev_kwh / hours, demand_kw=row.load_kwh / hours, sites=row.sites))  # fmt: skip
    return RegionFlows(region_id=region.region_id, day=the_day, slots=slots)


_KIND_FIELD = {"meter": "grid_kw", "pv": "pv_kw", "battery": "battery_kw", "ev_charger": "ev_kw"}


def _site_states(rows: list[DeviceState], now: datetime, slot: datetime, stale_after_s: float) -> list[SiteLive]:
    by_site: dict[str, dict[str, Any]] = {}
    for site_id, name, public, target, status, kind, last_at, power, soc, vehicles, slot_kwh in rows:
        site = by_site.setdefault(site_id, {"site_id": site_id, "name": name, "public": public,
                                            "demand_target_kw": target, "status_online": status,
                                            "last_reading_at": None, "slot_import_kwh": float(slot_kwh),
                                            "meter_at": None})  # fmt: skip
        if kind is None or last_at is None:
            continue
        site["last_reading_at"] = max(filter(None, (site["last_reading_at"], last_at)))
        if power is not None:
            field = _KIND_FIELD[kind]
            site[field] = (site.get(field) or 0.0) + float(power)
        if kind == "meter":
            site["meter_at"] = last_at
        elif kind == "battery" and soc is not None:
            site["soc_pct"] = float(soc)
        elif kind == "ev_charger" and vehicles is not None:
            site["vehicles"] = (site.get("vehicles") or 0) + int(vehicles)
    states = []
    for site in by_site.values():
        last = site["last_reading_at"]
        age_s = (now - last).total_seconds() if last is not None else None
        flows = [site.get(f) for f in ("grid_kw", "pv_kw", "battery_kw")]
        load = sum(f or 0.0 for f in flows) if any(f is not None for f in flows) else None
        predicted = level = None
        meter_at, grid_kw, target = site.pop("meter_at"), site.get("grid_kw"), site["demand_target_kw"]
        if meter_at is not None and grid_kw is not None and meter_at >= slot and slot <= now <= slot + SLOT:
            predicted = predict_end_of_slot_demand_kw(slot, now, site["slot_import_kwh"], grid_kw)
            level = demand_alarm(predicted, target) if target else None
        online = site["status_online"] is not False and age_s is not None and age_s <= stale_after_s
        states.append(SiteLive(**site, online=online, age_s=age_s, load_kw=load, slot_start=slot,
                               predicted_demand_kw=predicted, demand_level=level))  # fmt: skip
    return states


def _peak_programme(row: PeakProgrammeState) -> PeakProgrammeLive:
    return PeakProgrammeLive(
        state=row.state or "waiting", why=row.why, reason=row.reason, checked_at=row.checked_at,  # type: ignore[arg-type]
        limit_kw=row.limit_kw, limits_kw=row.limits_kw,
    )  # fmt: skip


async def _alarms(
    conn: AsyncConnection, sites: list[SiteLive], now: datetime, slot: datetime, dead_letter_alarm_per_min: float
) -> Alarms:
    demand = [
        DemandAlarmOut(
            site_id=s.site_id,
            slot_start=slot,
            level=s.demand_level,
            predicted_kw=s.predicted_demand_kw,
            target_kw=s.demand_target_kw,
            raised_at=now,
            origin="live",
        )
        for s in sites
        if s.demand_level in ("warn", "over") and s.predicted_demand_kw is not None and s.demand_target_kw is not None
    ]
    live_keys = {(a.site_id, a.slot_start) for a in demand}
    for alarm in await stored_alarms(conn, now - timedelta(hours=24)):
        if (alarm.site_id, alarm.slot_start) not in live_keys:
            demand.append(DemandAlarmOut(**alarm._asdict(), origin="scheduler"))
    reasons = await dead_letter_counts(conn, now - timedelta(hours=1), now - timedelta(minutes=5))
    last_5min = sum(r.since_five_min_ago for r in reasons)
    rate = DeadLetterRate(
        last_5min=last_5min, last_hour=sum(r.since_hour_ago for r in reasons), per_min=last_5min / 5,
        threshold_per_min=dead_letter_alarm_per_min, alarm=last_5min / 5 > dead_letter_alarm_per_min,
        by_reason={r.reason: r.since_hour_ago for r in reasons},
    )  # fmt: skip
    return Alarms(demand=demand, offline=[s for s in sites if not s.online], dead_letters=rate)


@router.get("/live", response_model=Live, summary="Live site states and alarms (poll every few seconds)")
async def live(
    conn: ConnDep,
    _principal: OperatorDep,
    now: NowDep,
    region: Annotated[str | None, Query(pattern=ID_PATTERN, description="Only members of this region")] = None,
    stale_after_s: Annotated[float, Query(gt=0, le=86_400, description="Older last reading: offline")] = 120.0,
    dead_letter_alarm_per_min: Annotated[float, Query(ge=0, le=1e6)] = 1.0,
) -> Live:
    await require_region_filter(conn, region)
    slot = slot_start(now)
    sites = _site_states(await device_states(conn, slot, region), now, slot, stale_after_s)
    enrolled = await peak_programme_states(conn, now.astimezone(JST).date(), now, region)
    programme = {row.site_id: _peak_programme(row) for row in enrolled}
    for site in sites:
        site.peak_programme = programme.get(site.site_id)
    alarms = await _alarms(conn, sites, now, slot, dead_letter_alarm_per_min)
    return Live(now=now, stale_after_s=stale_after_s, sites=sites, alarms=alarms)


@router.get("/dr/timeline", response_model=list[TimelineEvent], summary="DR events around now, with verification")
async def dr_timeline(
    conn: ConnDep,
    _principal: OperatorDep,
    now: NowDep,
    days_back: Annotated[int, Query(ge=0, le=366)] = 7,
    days_ahead: Annotated[int, Query(ge=0, le=366)] = 7,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    own_control: Annotated[
        bool,
        Query(
            description="Also the sites' own demand control: live-control cuts and the peak programme's day "
            "events (one per site and slot or day: left out by default, they would crowd out DR)"
        ),
    ] = False,
) -> list[TimelineEvent]:
    since, until = now - timedelta(days=days_back), now + timedelta(days=days_ahead)
    rows = await timeline_rows(conn, since, until, limit, own_control)
    return [TimelineEvent(**row._asdict()) for row in rows]
