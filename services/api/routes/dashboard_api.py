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
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.api.deps import ConnDep, NowDep, OperatorDep
from services.api.regions_common import RegionIdPath, require_region
from services.api.schemas import ID_PATTERN
from vpp.domain.demand import DemandAlarm, demand_alarm, predict_end_of_slot_demand_kw
from vpp.domain.slots import JST, SLOT, slot_start

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


_FLOWS = text(
    """SELECT e.slot_start,
              sum(greatest(e.pv_kwh - e.export_kwh, 0)), sum(e.import_kwh * s.renewable_share),
              sum(e.import_kwh * (1 - s.renewable_share)), sum(e.battery_discharge_kwh - e.battery_charge_kwh),
              sum(e.export_kwh), sum(e.ev_kwh), sum(e.load_kwh), count(*)
       FROM site_energy_30min e JOIN sites s ON s.id = e.site_pk
       JOIN region_sites rs ON rs.site_pk = s.id
       WHERE rs.region_pk = :region_pk AND e.slot_start >= :start AND e.slot_start < :end
       GROUP BY e.slot_start ORDER BY e.slot_start"""
)


@router.get("/regions/{region_id}/flows", response_model=RegionFlows, summary="A region's supply and demand per slot")
async def region_flows(
    conn: ConnDep,
    _principal: OperatorDep,
    now: NowDep,
    region_id: RegionIdPath,
    day: Annotated[date | None, Query(description="JST day; today by default")] = None,
) -> RegionFlows:
    region = await require_region(conn, region_id)
    the_day = day or now.astimezone(JST).date()
    start = datetime(the_day.year, the_day.month, the_day.day, tzinfo=JST)
    running = slot_start(now)
    rows = (
        await conn.execute(_FLOWS, {"region_pk": region.region_pk, "start": start, "end": start + timedelta(days=1)})
    ).all()
    slots = []
    for row in rows:
        is_running = row[0] == running
        # A running slot's energy covers only its elapsed part: divide by that, not by the whole slot.
        hours = max((now - running) / timedelta(hours=1), 1 / 60) if is_running else _SLOT_H
        kw = [float(v) / hours for v in row[1:8]]
        slots.append(FlowSlot(slot_start=row[0], running=is_running, pv_on_site_kw=kw[0], contract_renewable_kw=kw[1],
                              other_import_kw=kw[2], battery_kw=kw[3], export_kw=kw[4], ev_kw=kw[5], demand_kw=kw[6],
                              sites=int(row[8])))  # fmt: skip
    return RegionFlows(region_id=region.region_id, day=the_day, slots=slots)


_SITES = text(
    """SELECT s.site_id, s.name, s.is_public, s.demand_target_kw, st.online, d.kind, d.last_reading_at,
              r.power_kw, r.soc_pct, r.vehicles, coalesce(e.import_kwh, 0)
       FROM sites s
       LEFT JOIN site_status st ON st.site_pk = s.id
       LEFT JOIN devices d ON d.site_pk = s.id
       LEFT JOIN readings r ON r.device_pk = d.id AND r.ts = d.last_reading_at
       LEFT JOIN site_energy_30min e ON e.site_pk = s.id AND e.slot_start = :slot
       WHERE CAST(:region AS text) IS NULL OR EXISTS (SELECT 1 FROM region_sites rs JOIN regions g
             ON g.id = rs.region_pk WHERE rs.site_pk = s.id AND g.region_id = :region)
       ORDER BY s.site_id, d.device_id"""
)
_KIND_FIELD = {"meter": "grid_kw", "pv": "pv_kw", "battery": "battery_kw", "ev_charger": "ev_kw"}


def _site_states(rows: list[Any], now: datetime, slot: datetime, stale_after_s: float) -> list[SiteLive]:
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


_STORED_ALARMS = text(
    """SELECT s.site_id, a.slot_start, a.level, a.predicted_kw, a.target_kw, a.raised_at
       FROM site_alarms a JOIN sites s ON s.id = a.site_pk
       WHERE a.slot_start >= :since ORDER BY a.slot_start DESC, s.site_id LIMIT 200"""
)
_DEAD_LETTERS = text(
    """SELECT reason, count(*), count(*) FILTER (WHERE received_at >= :five_min_ago)
       FROM dead_letters WHERE received_at >= :hour_ago GROUP BY reason"""
)


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
    for row in (await conn.execute(_STORED_ALARMS, {"since": now - timedelta(hours=24)})).all():
        if (row[0], row[1]) not in live_keys:
            demand.append(DemandAlarmOut(site_id=row[0], slot_start=row[1], level=row[2], predicted_kw=row[3],
                                         target_kw=row[4], raised_at=row[5], origin="scheduler"))  # fmt: skip
    reasons = (
        await conn.execute(
            _DEAD_LETTERS, {"hour_ago": now - timedelta(hours=1), "five_min_ago": now - timedelta(minutes=5)}
        )
    ).all()
    last_5min = sum(int(r[2]) for r in reasons)
    rate = DeadLetterRate(
        last_5min=last_5min, last_hour=sum(int(r[1]) for r in reasons), per_min=last_5min / 5,
        threshold_per_min=dead_letter_alarm_per_min, alarm=last_5min / 5 > dead_letter_alarm_per_min,
        by_reason={str(r[0]): int(r[1]) for r in reasons},
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
    slot = slot_start(now)
    rows = (await conn.execute(_SITES, {"slot": slot, "region": region})).all()
    sites = _site_states(list(rows), now, slot, stale_after_s)
    alarms = await _alarms(conn, sites, now, slot, dead_letter_alarm_per_min)
    return Live(now=now, stale_after_s=stale_after_s, sites=sites, alarms=alarms)


_TIMELINE = text(
    """SELECT e.event_id, e.kind, e.status, e.region_id, e.start_at, e.end_at, e.requested_kw, e.allocated_kw,
              e.shortfall_kw, e.incentive_jpy_per_kwh, e.revision, e.source, e.pending_action, e.updated_at,
              (SELECT count(*) FROM dr_event_sites es WHERE es.event_pk = e.id),
              (SELECT count(*) FROM dr_event_sites es WHERE es.event_pk = e.id AND es.dispatched_at IS NOT NULL),
              (SELECT count(*) FROM dr_event_sites es WHERE es.event_pk = e.id AND es.ack_status = 'accepted'
                  AND es.acked_revision = e.revision),
              v.slots, v.reduction_kwh, e.direction, e.deliverable_kw,
              (SELECT count(*) FROM dr_event_sites es WHERE es.event_pk = e.id AND es.limit_reachable IS FALSE)
       FROM dr_events e
       LEFT JOIN LATERAL (SELECT count(*) FILTER (WHERE reduction_kwh IS NOT NULL) AS slots,
                                 sum(reduction_kwh) AS reduction_kwh
                          FROM dr_verified_reductions WHERE event_pk = e.id) v ON true
       WHERE e.end_at >= :since AND e.start_at < :until
       ORDER BY e.start_at DESC, e.id DESC LIMIT :limit"""
)


@router.get("/dr/timeline", response_model=list[TimelineEvent], summary="DR events around now, with verification")
async def dr_timeline(
    conn: ConnDep,
    _principal: OperatorDep,
    now: NowDep,
    days_back: Annotated[int, Query(ge=0, le=366)] = 7,
    days_ahead: Annotated[int, Query(ge=0, le=366)] = 7,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[TimelineEvent]:
    params = {"since": now - timedelta(days=days_back), "until": now + timedelta(days=days_ahead), "limit": limit}
    fields = list(TimelineEvent.model_fields)
    return [
        TimelineEvent(**dict(zip(fields, (*row[:17], int(row[17] or 0), *row[18:]), strict=True)))
        for row in (await conn.execute(_TIMELINE, params)).all()
    ]
