"""`vpp bench dr`, regional events: requested, allocated, deliverable and delivered kW over several windows.

For a fleet of simulated sites and one day, each window's request is shared exactly as the scheduler shares
it (:mod:`services.dr_scheduler.event_planning`): every site's deliverable reduction from its own forecast
plan (:func:`vpp.domain.planning.deliverable.window_deliverable`), water-filling allocation capped by it, and each
called site's plan to its limit (:func:`vpp.domain.planning.deliverable.plan_window_limit`). The site EMS then
follows its plan on the *actual* day, defending the limit in the window and the cap outside it; delivered =
the actual day's window peak without DR − the executed window peak, kW, summed over the called sites.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import numpy as np

from bench import dr_fleet
from bench.dr_data import simulate_fleet
from vpp.domain.allocation import SiteFlexibility, allocate_regional_request
from vpp.domain.planning.deliverable import no_dr_import_kw, plan_window_limit, window_deliverable
from vpp.domain.planning.execution import EmsTracker

__all__ = ["DEFAULT_WINDOWS", "RegionalOutcome", "run_regional_events"]

# (first slot, end slot, requested kW): the evening and afternoon peaks, a night window and a late one.
DEFAULT_WINDOWS: tuple[tuple[int, int, float], ...] = ((34, 40, 500.0), (26, 32, 640.0), (0, 6, 900.0), (42, 48, 900.0))
_PRICES = [20.0] * 48


@dataclass(frozen=True)
class RegionalOutcome:
    first_slot: int
    end_slot: int
    requested_kw: float
    deliverable_kw: float
    allocated_kw: float
    shortfall_kw: float
    delivered_kw: float
    called_sites: int
    limits_out_of_reach: int  # stored plans that miss their limit on the forecast
    limits_missed: int  # called sites whose executed window peak ended above their limit


def run_regional_events(
    sites: int = 40, windows: Sequence[tuple[int, int, float]] = DEFAULT_WINDOWS, seed: int = 0
) -> list[RegionalOutcome]:
    """Allocate, plan and deliver each window's request on the first benchmark day."""
    first_day = dr_fleet.FIRST_BENCH_DAY - timedelta(days=dr_fleet.WARM_UP_DAYS)
    dr_fleet._fleet = fleet = simulate_fleet(sites, first_day, dr_fleet.WARM_UP_DAYS + 1, seed)
    day_index = dr_fleet.WARM_UP_DAYS
    planned, _cpu_s = dr_fleet._plan_chunk(day_index, range(sites))
    inputs = []
    for site, (_plan, load_fc, pv_fc) in enumerate(planned):
        flex_fc, evs_fc = dr_fleet._site_inputs(site, day_index, forecast=True)
        flex, evs = dr_fleet._site_inputs(site, day_index, forecast=False)
        inputs.append((load_fc, pv_fc, flex_fc, evs_fc, flex, evs))
    out: list[RegionalOutcome] = []
    for first, end, requested_kw in windows:
        found = [
            window_deliverable(load_fc.tolist(), pv_fc.tolist(), flex_fc, evs_fc, first, end, _PRICES)
            for load_fc, pv_fc, flex_fc, evs_fc, _flex, _evs in inputs
        ]
        allocation = allocate_regional_request(
            requested_kw, [SiteFlexibility(str(k), d.deliverable_kw) for k, d in enumerate(found)]
        )
        delivered_kw, called, out_of_reach, missed = 0.0, 0, 0, 0
        for site, d in enumerate(found):
            share = allocation.allocations_kw[str(site)]
            if share <= 0:
                continue
            called += 1
            load_fc, pv_fc, flex_fc, evs_fc, flex, evs = inputs[site]
            limit_kw = max(d.baseline_peak_kw - share, 0.0)
            plan = plan_window_limit(
                load_fc.tolist(), pv_fc.tolist(), flex_fc, evs_fc, first, end, limit_kw, _PRICES, d.outside_cap_kw
            )
            out_of_reach += plan.target_met is False
            load, pv = fleet.load_kw[site, day_index], fleet.pv_kw[site, day_index]
            tracker = EmsTracker(flex, evs, hold_peak=False)
            cap_kw = np.inf if d.outside_cap_kw is None else d.outside_cap_kw
            executed = np.array([
                tracker.step(
                    t, float(load[t]), float(pv[t]), plan.battery_kw[t], [series[t] for series in plan.ev_kw_by_demand],
                    plan.soc_kwh[t + 1], limit_kw if first <= t < end else cap_kw,
                )
                for t in range(load.size)
            ])  # fmt: skip
            window_peak_kw = float(executed[first:end].max())
            missed += window_peak_kw > limit_kw + 1e-6
            actual_baseline_kw = float(no_dr_import_kw(load.tolist(), pv.tolist(), evs)[first:end].max())
            delivered_kw += actual_baseline_kw - window_peak_kw
        out.append(
            RegionalOutcome(
                first, end, requested_kw, sum(d.deliverable_kw for d in found), allocation.allocated_kw,
                allocation.shortfall_kw, delivered_kw, called, out_of_reach, missed,
            )
        )  # fmt: skip
    return out
