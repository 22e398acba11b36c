"""A regional request ("X kW less over these slots") → per-site shares, import limits and plans.

Each site's availability over the event window is what its battery can hold for the whole window
(power, and usable energy ÷ window hours) plus the EV charging forecast in the window (deferrable).
:func:`vpp.domain.allocation.allocate_regional_request` splits the request by availability. A site's
import limit is its forecast import peak in the window without DR minus its share; its plan
(:func:`vpp.domain.planning.plan_peak_shift` with the window as peak slots) shows how it can get there.
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
from vpp.domain.dr_events import event_window_slots
from vpp.domain.forecast import ForecastError
from vpp.domain.planning import InfeasiblePlan, Plan, plan_peak_shift, threshold_controller
from vpp.domain.slots import SLOTS_PER_DAY
from vpp.log import kv
from vpp.postgres.energy_history import SiteDr

from .day_ahead import SOC_MAX_FRACTION, SOC_MIN_FRACTION, site_flex
from .metrics import SchedulerMetrics
from .site_forecast import SiteDayForecast, forecast_from_history

__all__ = ["SitePlan", "event_slots", "plan_event_sites"]

event_slots = event_window_slots

log = logging.getLogger("vpp.dr_scheduler.planning")

FLAT_PRICE_JPY_PER_KWH = 20.0


@dataclass(frozen=True)
class SitePlan:
    site: SiteDr
    available_kw: float
    allocated_kw: float
    import_limit_kw: float | None
    plan: Plan | None
    note: str


def _availability_kw(site: SiteDr, day_forecast: SiteDayForecast, first: int, end: int) -> float:
    hours = (end - first) * 0.5
    usable_kwh = (SOC_MAX_FRACTION - SOC_MIN_FRACTION) * site.battery_kwh
    battery_kw = min(site.battery_kw, usable_kwh / hours) if site.battery_kw > 0 else 0.0
    ev_kw = sum(
        ev.energy_kwh / ((ev.deadline_slot - ev.available_from_slot) * 0.5)
        for ev in day_forecast.evs if ev.available_from_slot < end and ev.deadline_slot > first
    )  # fmt: skip
    return battery_kw + ev_kw


def _window_peak_kw(day_forecast: SiteDayForecast, first: int, end: int) -> float:
    """Forecast import peak in the window without DR: no battery, EVs charged as they arrive."""
    f = day_forecast.forecast
    normal = threshold_controller(f.load_kw.tolist(), f.pv_kw.tolist(), site_flex(0, 0), day_forecast.evs, 0.0)
    return float(np.max(normal.import_kw[first:end]))


def plan_event_sites(
    conn: psycopg.Connection,
    sites: list[SiteDr],
    start_at: datetime,
    end_at: datetime,
    requested_kw: float,
    metrics: SchedulerMetrics,
) -> tuple[RegionalAllocation, list[SitePlan]]:
    """Forecast every site, allocate the request by availability, set limits and plan each called site."""
    day, first, end = event_slots(start_at, end_at)
    forecasts: dict[str, SiteDayForecast] = {}
    flex_rows: list[SiteFlexibility] = []
    for site in sites:
        try:
            forecasts[site.site_id] = forecast_from_history(conn, site, day)
        except ForecastError as error:
            log.warning("site not called: no forecast", extra=kv(site_id=site.site_id, reason=str(error)))
            flex_rows.append(SiteFlexibility(site.site_id, 0.0))
            continue
        flex_rows.append(SiteFlexibility(site.site_id, _availability_kw(site, forecasts[site.site_id], first, end)))
    allocation = allocate_regional_request(requested_kw, flex_rows)
    available = {row.site_id: row.available_kw for row in flex_rows}
    out: list[SitePlan] = []
    for site in sites:
        share = allocation.allocations_kw.get(site.site_id, 0.0)
        day_forecast = forecasts.get(site.site_id)
        if day_forecast is None or share <= 0:
            out.append(SitePlan(site, available[site.site_id], 0.0, None, None, "not called"))
            continue
        started = time.perf_counter()
        limit_kw = max(_window_peak_kw(day_forecast, first, end) - share, 0.0)
        soc_kwh = site.soc_pct / 100 * site.battery_kwh if site.soc_pct is not None else None
        f = day_forecast.forecast
        try:
            plan: Plan | None = plan_peak_shift(
                f.load_kw.tolist(), f.pv_kw.tolist(), site_flex(site.battery_kwh, site.battery_kw, soc_kwh),
                day_forecast.evs, [FLAT_PRICE_JPY_PER_KWH] * SLOTS_PER_DAY, range(first, end),
            )  # fmt: skip
            note = "planned"
            metrics.plans.labels("ok").inc()
        except InfeasiblePlan as error:
            plan, note = None, f"no plan: {error.reason}"
            metrics.plans.labels("infeasible").inc()
        metrics.plan_seconds.observe(time.perf_counter() - started)
        out.append(SitePlan(site, available[site.site_id], share, limit_kw, plan, note))
    return allocation, out


def plan_document(site_plan: SitePlan) -> dict[str, Any] | None:
    """The plan as stored with the event (JSON): the series, the limit and why."""
    if site_plan.plan is None:
        return {"note": site_plan.note}
    return {**asdict(site_plan.plan), "note": site_plan.note, "objective": None}
