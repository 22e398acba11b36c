"""A regional request ("X kW less", or "X kW more", over these slots) → per-site shares, signals and plans.

Both directions start from each site's forecast import without DR (no battery, EVs charged as they
arrive): the *baseline* the plan works against. :func:`vpp.domain.allocation.allocate_regional_request`
splits the request by each site's availability over the window, and each called site is planned.

- "reduce": availability is the site's *deliverable* reduction (:mod:`vpp.domain.planning.deliverable`): its
  baseline peak in the window minus the lowest window peak its own forecast plan reaches (battery from its
  state of charge, the end-SoC rule, EV charging only where forecast, nothing outside the window above the
  month's maximum demand). The site's import limit is its baseline peak in the window minus its share; its
  plan is :func:`vpp.domain.planning.deliverable.plan_window_limit`, and the stored plan says whether it reaches
  the limit (a share never exceeds the deliverable, so on the forecast it does).
- "increase": availability is the least, over the window's slots, of the extra import the site could
  draw: battery charging (power, and usable energy ÷ window hours) plus EV energy that could be brought
  forward into the window, less any PV surplus that charging would only soak up without raising import.
  The site's import floor in each window slot is its baseline there plus its share; its plan is
  :func:`vpp.domain.planning.plan_import_floor`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import numpy as np
import psycopg

from vpp.domain.allocation import RegionalAllocation, SiteFlexibility, allocate_regional_request
from vpp.domain.dr_events import Direction, event_window_slots
from vpp.domain.forecast import ForecastError
from vpp.domain.planning import InfeasiblePlan, Plan, SiteFlex, plan_import_floor, threshold_controller
from vpp.domain.planning.deliverable import WindowDeliverable, plan_window_limit, window_deliverable
from vpp.domain.slots import SLOTS_PER_DAY
from vpp.log import kv
from vpp.postgres.energy_history import SiteDr, monthly_max_demand_kw

from .day_ahead import SOC_MAX_FRACTION, SOC_MIN_FRACTION, site_flex
from .metrics import SchedulerMetrics
from .site_forecast import SiteDayForecast, forecast_from_history

__all__ = ["SitePlan", "dr_site_flex", "event_slots", "plan_event_sites"]

event_slots = event_window_slots

log = logging.getLogger("vpp.dr_scheduler.planning")

FLAT_PRICE_JPY_PER_KWH = 20.0
NO_FORECAST = "no forecast"
# What an operator can do about a site without a forecast: the load forecast averages earlier complete days
# of the event day's type (weekday, or weekend and holiday), so a site needs one of each on record.
NO_FORECAST_HINT = (
    "the site needs at least one complete day of the event day's type (weekday, or weekend/holiday) in the "
    "last 21 days of metered history: let it report for a full day, or send its backlog (with the simulated "
    "platform: `vpp up --backfill-hours 192`, the default)"
)


@dataclass(frozen=True)
class SitePlan:
    site: SiteDr
    available_kw: float
    allocated_kw: float
    import_limit_kw: float | None
    plan: Plan | None
    note: str
    import_floor_kw: tuple[float, ...] | None = None  # per window slot, "increase" events
    limit_reachable: bool | None = None  # the plan meets its limit (and the outside cap) on the forecast
    outside_cap_kw: float | None = None  # "reduce": no slot outside the window above this, kW


def dr_site_flex(site: SiteDr) -> SiteFlex:
    soc_kwh = site.soc_pct / 100 * site.battery_kwh if site.soc_pct is not None else None
    return site_flex(site.battery_kwh, site.battery_kw, soc_kwh)


def _battery_window_kw(site: SiteDr, first: int, end: int) -> float:
    """Battery power the site can hold for the whole window: its rating, or usable energy ÷ window hours."""
    usable_kwh = (SOC_MAX_FRACTION - SOC_MIN_FRACTION) * site.battery_kwh
    return min(site.battery_kw, usable_kwh / ((end - first) * 0.5)) if site.battery_kw > 0 else 0.0


def _baseline(day_forecast: SiteDayForecast) -> Plan:
    """The forecast day without DR: no battery, EVs charged as they arrive."""
    f = day_forecast.forecast
    return threshold_controller(f.load_kw.tolist(), f.pv_kw.tolist(), site_flex(0, 0), day_forecast.evs, 0.0)


def _absorb_availability_kw(site: SiteDr, day_forecast: SiteDayForecast, first: int, end: int) -> float:
    """Extra import the site can draw in every window slot, kW ("increase" events; module docstring)."""
    f, baseline = day_forecast.forecast, _baseline(day_forecast)
    hours = (end - first) * 0.5
    ev_base_kw = np.asarray(baseline.ev_kw[first:end])
    pullable_kwh = sum(
        min(ev.energy_kwh, ev.max_power_kw * 0.5 * (min(end, ev.deadline_slot) - max(first, ev.available_from_slot)))
        for ev in day_forecast.evs if ev.available_from_slot < end and ev.deadline_slot > first
    )  # fmt: skip
    ev_extra_kw = max(pullable_kwh / hours - float(ev_base_kw.mean()), 0.0)
    net_kw = f.load_kw[first:end] - f.pv_kw[first:end] + ev_base_kw
    most_kw = np.maximum(net_kw + _battery_window_kw(site, first, end) + ev_extra_kw, 0.0)
    return max(float(np.min(most_kw - np.asarray(baseline.import_kw[first:end]))), 0.0)


def plan_event_sites(
    conn: psycopg.Connection,
    sites: list[SiteDr],
    start_at: datetime,
    end_at: datetime,
    requested_kw: float,
    metrics: SchedulerMetrics,
    direction: str = Direction.REDUCE,
    committed_kw: dict[str, float] | None = None,
) -> tuple[RegionalAllocation, list[SitePlan]]:
    """Forecast every site, allocate the request by availability, set limits (or floors), plan each called site.

    ``committed_kw``: what other events in force in the same slots already ask of a site; it is taken off the
    site's availability, and this event's limit (floor) goes that much further, so the merged signal the site
    obeys delivers both events' shares."""
    committed = committed_kw or {}
    increase = Direction(direction) == Direction.INCREASE
    day, first, end = event_slots(start_at, end_at)
    prices = [FLAT_PRICE_JPY_PER_KWH] * SLOTS_PER_DAY
    forecasts: dict[str, SiteDayForecast] = {}
    no_forecast: dict[str, str] = {}
    deliverables: dict[str, WindowDeliverable] = {}
    flex_rows: list[SiteFlexibility] = []
    for site in sites:
        try:
            forecasts[site.site_id] = day_forecast = forecast_from_history(conn, site, day)
        except ForecastError as error:
            log.warning("site not called: no forecast", extra=kv(site_id=site.site_id, reason=str(error)))
            no_forecast[site.site_id] = f"{NO_FORECAST}: {error}"
            flex_rows.append(SiteFlexibility(site.site_id, 0.0))
            continue
        taken = committed.get(site.site_id, 0.0)
        if increase:
            absorb = _absorb_availability_kw(site, day_forecast, first, end)
            flex_rows.append(SiteFlexibility(site.site_id, max(absorb - taken, 0.0)))
            continue
        f = day_forecast.forecast
        started = time.perf_counter()
        try:
            deliverables[site.site_id] = found = window_deliverable(
                f.load_kw.tolist(), f.pv_kw.tolist(), dr_site_flex(site), day_forecast.evs, first, end, prices,
                monthly_max_demand_kw(conn, site.site_pk, day),
            )  # fmt: skip
            flex_rows.append(SiteFlexibility(site.site_id, max(found.deliverable_kw - taken, 0.0)))
        except InfeasiblePlan as error:
            log.warning("site not called: no plan", extra=kv(site_id=site.site_id, reason=error.reason))
            flex_rows.append(SiteFlexibility(site.site_id, 0.0))
        metrics.plan_seconds.observe(time.perf_counter() - started)
    allocation = allocate_regional_request(requested_kw, flex_rows)
    available = {row.site_id: row.available_kw for row in flex_rows}
    out: list[SitePlan] = []
    for site in sites:
        share = allocation.allocations_kw.get(site.site_id, 0.0)
        called = forecasts.get(site.site_id)
        if called is None or share <= 0:
            note = no_forecast.get(site.site_id, "not called")
            out.append(SitePlan(site, available[site.site_id], 0.0, None, None, note))
            continue
        started = time.perf_counter()
        f = called.forecast
        limit_kw: float | None = None
        floors_kw: tuple[float, ...] | None = None
        cap_kw: float | None = None
        try:
            if increase:
                extra = share + committed.get(site.site_id, 0.0)
                floors_kw = tuple(float(v) + extra for v in _baseline(called).import_kw[first:end])
                day_floors = [0.0] * first + list(floors_kw) + [0.0] * (SLOTS_PER_DAY - end)
                planned = plan_import_floor(
                    f.load_kw.tolist(), f.pv_kw.tolist(), dr_site_flex(site), called.evs, day_floors, prices
                )
            else:
                found = deliverables[site.site_id]
                taken = committed.get(site.site_id, 0.0)
                limit_kw, cap_kw = max(found.baseline_peak_kw - taken - share, 0.0), found.outside_cap_kw
                planned = plan_window_limit(
                    f.load_kw.tolist(), f.pv_kw.tolist(), dr_site_flex(site), called.evs, first, end, limit_kw,
                    prices, cap_kw,
                )  # fmt: skip
            plan: Plan | None = planned
            reachable = True if increase else planned.target_met
            note = "planned" if reachable is not False else f"planned, limit out of reach: {planned.status}"
            metrics.plans.labels("ok").inc()
        except InfeasiblePlan as error:
            plan, reachable, note = None, None, f"no plan: {error.reason}"
            metrics.plans.labels("infeasible").inc()
        metrics.plan_seconds.observe(time.perf_counter() - started)
        out.append(SitePlan(site, available[site.site_id], share, limit_kw, plan, note, floors_kw, reachable, cap_kw))
    return allocation, out


def plan_document(site_plan: SitePlan) -> dict[str, Any] | None:
    """The plan as stored with the event (JSON): the series, the limit, whether it is reachable, and why."""
    facts = {
        "note": site_plan.note,
        "deliverable_kw": site_plan.available_kw,
        "limit_reachable": site_plan.limit_reachable,
        "outside_cap_kw": site_plan.outside_cap_kw,
    }
    if site_plan.plan is None:
        return facts
    return {**asdict(site_plan.plan), **facts, "objective": None}
