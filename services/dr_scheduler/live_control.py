"""Live demand control inside the running 30-minute slot, as a site demand controller does.

Every few seconds, per site with a demand target: predicted demand = (energy imported so far in the slot
+ current import power × remaining time) × 2 (:func:`vpp.domain.demand.predict_end_of_slot_demand_kw`).
Above the target the site gets an alarm (stored once per slot) and an immediate peak-cut signal limiting
the rest of the slot to the target; a "warn" is stored too, without a signal. The signal is a one-slot
DR event (source ``live_control``) so it has the same lifecycle, acknowledgement and audit as any other.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from vpp.domain.demand import demand_alarm, predict_end_of_slot_demand_kw
from vpp.domain.slots import SLOT, slot_start
from vpp.log import kv
from vpp.postgres import dr_events as store
from vpp.postgres.energy_history import live_meter, load_dr_sites
from vpp.postgres.registry import site_pk
from vpp.postgres.site_alarms import store_demand_alarm

from .metrics import SchedulerMetrics
from .scheduler import EventRequest, Scheduler

__all__ = ["LiveAlarm", "check_live_demand"]

log = logging.getLogger("vpp.dr_scheduler.live")


@dataclass(frozen=True)
class LiveAlarm:
    site_id: str
    slot_start: datetime
    predicted_kw: float
    target_kw: float
    level: str
    event_id: str | None


def check_live_demand(
    scheduler: Scheduler, now: datetime, metrics: SchedulerMetrics, warn_ratio: float = 0.9
) -> list[LiveAlarm]:
    """One pass over every site with a demand target; returns the alarms raised or escalated now."""
    conn = scheduler.conn
    slot = slot_start(now)
    raised: list[LiveAlarm] = []
    for site in load_dr_sites(conn):
        if site.demand_target_kw is None:
            continue
        meter = live_meter(conn, site.site_pk, slot)
        if meter.power_kw is None:
            continue  # nothing metered in this slot yet: no basis for a prediction
        predicted_kw = predict_end_of_slot_demand_kw(slot, now, meter.slot_import_kwh, meter.power_kw)
        level = demand_alarm(predicted_kw, site.demand_target_kw, warn_ratio)
        if level == "ok":
            continue
        detail: dict[str, object] = {"slot_import_kwh": meter.slot_import_kwh, "power_kw": meter.power_kw}
        is_new = store_demand_alarm(conn, site.site_pk, slot, now, level, predicted_kw, site.demand_target_kw, detail)
        conn.commit()
        if not is_new:
            continue
        metrics.alarms.labels(level).inc()
        event_id = None
        if level == "over":
            event_id = f"live-{site.site_id}-{slot:%Y%m%dT%H%M}"
            request = EventRequest(
                slot,
                slot + SLOT,
                predicted_kw - site.demand_target_kw,
                site_ids=(site.site_id,),
                event_id=event_id,
                source="live_control",
            )
            _dispatch_live_cut(scheduler, request, site.demand_target_kw, now)
        log.warning(
            "demand alarm",
            extra=kv(site_id=site.site_id, level=level, predicted_kw=round(predicted_kw, 2),
                     target_kw=site.demand_target_kw, slot_start=slot.isoformat()),
        )  # fmt: skip
        raised.append(LiveAlarm(site.site_id, slot, predicted_kw, site.demand_target_kw, level, event_id))
    return raised


def _dispatch_live_cut(scheduler: Scheduler, request: EventRequest, target_kw: float, now: datetime) -> None:
    """A one-slot event at this site whose limit is the site's target, dispatched at once."""
    conn = scheduler.conn
    try:
        event = store.create_event(
            conn, event_id=request.event_id or "", kind="peak_cut", start_at=request.start_at, end_at=request.end_at,
            requested_kw=request.requested_kw, incentive_jpy_per_kwh=0.0, region_id=None, source=request.source,
            actor="live_control", now=now,
        )  # fmt: skip
        pk = site_pk(conn, (request.site_ids or ("",))[0])
        assert pk is not None
        store.set_event_sites(conn, event.pk, [(pk, request.requested_kw, target_kw, None)],
                              allocated_kw=request.requested_kw, shortfall_kw=0.0)  # fmt: skip
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    scheduler.dispatch(event.event_id, now=now, actor="live_control")
