"""Rolling re-planning of the day's reduce events from live telemetry, once per 30-minute slot.

The day-ahead allocation rests on forecasts. Once per slot, for every "reduce" event of today still in
effect, each called site's deliverable reduction is computed again from what is measured now: its live
state of charge, the day's metered load, PV and EV energy so far, and the rest of the day's forecast
corrected by them (:func:`vpp.domain.planning.execution.corrected_forecast`). The request is shared again
among the called sites by these figures against the *same* baselines (a site's limit stays baseline −
share), and when a limit moves by more than :data:`LIMIT_STEP_KW` the event is re-dispatched as a new
revision: a site that fell behind (a cloudy morning, a lower SoC than planned) is asked less, one with
room is asked more, and the platform's promise follows what the sites can still do.
"""

from __future__ import annotations

import logging
from datetime import datetime

import numpy as np

from vpp.domain.allocation import SiteFlexibility, allocate_regional_request
from vpp.domain.dr_events import OWN_CONTROL_SOURCES, Direction, EventStatus
from vpp.domain.forecast import ForecastError
from vpp.domain.planning import EvDemand, InfeasiblePlan, Plan, SiteFlex
from vpp.domain.planning.deliverable import plan_window_limit, window_deliverable
from vpp.domain.slots import JST, SLOT, SLOTS_PER_DAY
from vpp.log import kv
from vpp.postgres import dr_events as store
from vpp.postgres.energy_history import jst_midnight, load_dr_sites, monthly_max_demand_kw

from .event_planning import FLAT_PRICE_JPY_PER_KWH, event_slots
from .rest_of_day import rest_of_day
from .scheduler import Scheduler

__all__ = ["LIMIT_STEP_KW", "IntradayReplanner"]

log = logging.getLogger("vpp.dr_scheduler.intraday")

LIMIT_STEP_KW = 0.1  # smaller moves are not worth a new revision at the sites
_IN_EFFECT = (EventStatus.DISPATCHED, EventStatus.ACKNOWLEDGED, EventStatus.ACTIVE)


class IntradayReplanner:
    """Re-plans each of today's reduce events at most once per slot (the last slot done is kept per event)."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self._done: dict[str, datetime] = {}

    def run(self, now: datetime) -> list[str]:
        """Re-plan every event in effect today; return the ids of those re-dispatched with new limits."""
        conn = self.scheduler.conn
        slot_start = jst_midnight(now.astimezone(JST).date())
        t = int((now - slot_start) / SLOT)
        changed: list[str] = []
        for event in store.list_events(conn, statuses=[str(s) for s in _IN_EFFECT]):
            if event.direction != Direction.REDUCE or event.source in OWN_CONTROL_SOURCES or event.end_at <= now:
                continue
            day, first, end = event_slots(event.start_at, event.end_at)
            current = slot_start + t * SLOT
            # Once per slot, and not in the slot the event was just planned or dispatched on the same data.
            if (
                day != now.astimezone(JST).date()
                or self._done.get(event.event_id) == current
                or event.updated_at >= current
            ):
                continue
            self._done[event.event_id] = current
            if self._replan(event, t, first, end, now):
                changed.append(event.event_id)
        conn.commit()
        return changed

    def _replan(self, event: store.DrEventRow, t: int, first: int, end: int, now: datetime) -> bool:
        conn = self.scheduler.conn
        called = store.event_sites(conn, event.pk)
        sites = {s.site_id: s for s in load_dr_sites(conn, [c.site_id for c in called])}
        prices = [FLAT_PRICE_JPY_PER_KWH] * (SLOTS_PER_DAY - t)
        rows: list[SiteFlexibility] = []
        inputs: dict[str, tuple[np.ndarray, np.ndarray, list[EvDemand], SiteFlex, float, float | None]] = {}
        for c in called:
            if c.import_limit_kw is None or c.site_id not in sites:
                continue
            baseline_kw = c.import_limit_kw + c.allocated_kw  # the limit was baseline − share
            try:
                load, pv, evs, flex = rest_of_day(
                    conn, sites[c.site_id], t, jst_midnight(event.start_at.astimezone(JST).date())
                )
                found = window_deliverable(
                    load.tolist(), pv.tolist(), flex, evs, max(first - t, 0), end - t, prices,
                    monthly_max_demand_kw(conn, c.site_pk, event.start_at.astimezone(JST).date()),
                )  # fmt: skip
            except (ForecastError, InfeasiblePlan) as error:
                log.warning(
                    "site not re-planned", extra=kv(event_id=event.event_id, site_id=c.site_id, reason=str(error))
                )
                continue
            inputs[c.site_id] = (load, pv, evs, flex, baseline_kw, found.outside_cap_kw)
            rows.append(SiteFlexibility(c.site_id, max(baseline_kw - found.lowest_peak_kw, 0.0)))
        if not rows or len(rows) < sum(1 for c in called if c.import_limit_kw is not None):
            return False  # re-share only among all the called sites: a site left out would keep cutting unseen
        allocation = allocate_regional_request(event.requested_kw, rows)
        previous = {c.site_id: c for c in called}
        new_limits = {
            site_id: max(inputs[site_id][4] - share, 0.0) for site_id, share in allocation.allocations_kw.items()
        }
        moved = max(abs(new_limits[s] - (previous[s].import_limit_kw or 0.0)) for s in new_limits)
        if moved <= LIMIT_STEP_KW:
            return False
        stored: list[tuple[int, float, float | None, dict[str, object] | None]] = []
        facts: list[tuple[float | None, bool | None]] = []
        for row in rows:
            load, pv, evs, flex, _baseline_kw, cap_kw = inputs[row.site_id]
            share = allocation.allocations_kw[row.site_id]
            plan: Plan = plan_window_limit(
                load.tolist(),
                pv.tolist(),
                flex,
                evs,
                max(first - t, 0),
                end - t,
                new_limits[row.site_id],
                prices,
                cap_kw,
            )
            document = {"note": f"re-planned from slot {t} on live telemetry", "from_slot": t,
                        "deliverable_kw": row.available_kw, "limit_reachable": plan.target_met,
                        "import_kw": list(plan.import_kw), "battery_kw": list(plan.battery_kw),
                        "soc_kwh": list(plan.soc_kwh), "status": plan.status}  # fmt: skip
            stored.append((previous[row.site_id].site_pk, share, new_limits[row.site_id], document))
            facts.append((row.available_kw, plan.target_met))
        store.set_event_sites(
            conn, event.pk, stored, allocated_kw=allocation.allocated_kw, shortfall_kw=allocation.shortfall_kw,
            deliverable_kw=sum(r.available_kw for r in rows), site_deliverables=facts,
        )  # fmt: skip
        store.add_audit(conn, event.pk, now, "scheduler", "replanned", None, None, {
            "from_slot": t, "limits_kw": new_limits, "allocated_kw": allocation.allocated_kw,
            "shortfall_kw": allocation.shortfall_kw,
        })  # fmt: skip
        # Stored and sent together: publish_revision commits both, or rolls both back.
        self.scheduler.publish_revision(event.event_id, now=now, actor="scheduler:replan")
        log.info("DR event re-planned", extra=kv(event_id=event.event_id, from_slot=t, moved_kw=round(moved, 3)))
        return True
