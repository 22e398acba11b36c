"""The day's peak programme for a site with EVs: each slot's import limit from a re-plan of the rest of the day.

The stochastic programme (:mod:`.stochastic`) has no EV state, so a site with vans gets the LP re-plan's limit
instead. What the scheduler knows differs from what the DR bench's re-planner
(:func:`~vpp.domain.planning.execution.receding_horizon_import_kw`) is given: not the vans' exact state, only
the day's forecast EV charging needs and the EV energy metered so far (:func:`owed_ev_demands`); and the site's
EMS is sent only the limit (with the same value as its floor), not the plan's battery and EV schedule.
:func:`limit_replan_import_kw` runs that controller on a day, so the bench measures what the service does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import numpy.typing as npt

from vpp.domain.planning.execution import (
    REPLAN_RESERVE_VALUE_PER_KWH,
    EmsTracker,
    corrected_forecast,
    replan_terminal_soc_kwh,
)
from vpp.domain.planning.model import SLOT_HOURS, EvDemand, SiteFlex
from vpp.domain.planning.planners import plan_peak_cut

__all__ = ["limit_replan_import_kw", "owed_ev_demands", "replanned_limit_kw"]

FloatArray = npt.NDArray[np.float64]


def owed_ev_demands(forecast_evs: Sequence[EvDemand], ev_kw: FloatArray, t: int) -> list[EvDemand]:
    """The EV energy still owed from slot ``t``, windows counted from ``t``: each forecast need less the EV
    energy metered (``ev_kw``, slots < t) since it became available, at most what its charger can still
    deliver by its deadline."""
    owed: list[EvDemand] = []
    for ev in forecast_evs:
        if ev.deadline_slot <= t:
            continue
        delivered_kwh = float(ev_kw[ev.available_from_slot : t].sum()) * SLOT_HOURS
        first, deadline = max(ev.available_from_slot - t, 0), ev.deadline_slot - t
        owed_kwh = min(max(ev.energy_kwh - delivered_kwh, 0.0), ev.max_power_kw * SLOT_HOURS * (deadline - first))
        if owed_kwh > 0:
            owed.append(EvDemand(owed_kwh, ev.max_power_kw, first, deadline, ev.ev_id))
    return owed


def replanned_limit_kw(
    load_rest_kw: FloatArray,
    pv_rest_kw: FloatArray,
    flex_now: SiteFlex,
    owed_evs: Sequence[EvDemand],
    peak_so_far_kw: float,
    rule_soc_kwh: float,
) -> float:
    """The limit for the slot the rest of the day starts at: the peak of the plan from the battery's SoC now
    (``flex_now.soc_kwh_initial``) that ends the day at ``rule_soc_kwh`` (or as near as it can still get),
    never below the day's peak so far. Raises :class:`ValueError` (InfeasiblePlan included) when no plan is."""
    terminal_kwh = replan_terminal_soc_kwh(flex_now, flex_now.soc_kwh_initial, load_rest_kw.size, rule_soc_kwh)
    plan = plan_peak_cut(
        load_rest_kw.tolist(), pv_rest_kw.tolist(), flex_now, list(owed_evs), peak_so_far_kw,
        terminal_soc_kwh=terminal_kwh, reserve_value_per_kwh=REPLAN_RESERVE_VALUE_PER_KWH,
    )  # fmt: skip
    return max(plan.peak_import_kw, peak_so_far_kw)


def limit_replan_import_kw(
    load_forecast_kw: FloatArray,
    pv_forecast_kw: FloatArray,
    load_kw: FloatArray,
    pv_kw: FloatArray,
    forecast_evs: Sequence[EvDemand],
    tracker: EmsTracker,
) -> FloatArray:
    """Import per slot (kW) when each slot's limit is :func:`replanned_limit_kw` on the forecast corrected by the
    measured slots and the EV energy owed by the forecast, and the EMS (``tracker``, with the actual EV needs)
    holds that limit as limit and floor, the vans before the battery; the day's end-of-day rule is the tracker's starting SoC. A slot whose re-plan fails keeps
    the limit before it, as the service does."""
    flex = tracker.flex
    imports = np.zeros(load_kw.size)
    ev_kw = np.zeros(load_kw.size)
    limit_kw = 0.0
    no_schedule = [0.0] * len(tracker.evs)
    for t in range(load_kw.size):
        load_rest, pv_rest = corrected_forecast(t, load_forecast_kw, pv_forecast_kw, load_kw, pv_kw)
        now_flex = replace(flex, soc_kwh_initial=min(max(tracker.soc_kwh, flex.soc_min_kwh), flex.soc_max_kwh))
        owed = owed_ev_demands(forecast_evs, ev_kw, t)
        try:
            limit_kw = replanned_limit_kw(load_rest, pv_rest, now_flex, owed, tracker.peak_kw, flex.soc_kwh_initial)
        except ValueError:
            limit_kw = max(limit_kw, tracker.peak_kw)
        owed_before_kwh = sum(tracker.ev_remaining_kwh)
        # With no plan the EMS has no SoC target to catch up with: headroom under the limit goes to the vans
        # first and then to the battery, as the site EMS does under a floor (vpp.simulation.ems). A target of
        # a full battery would give the battery the headroom first and leave the vans to their deadline: 0.80
        # of perfect foresight on the bench's battery+EV sites against 0.92 (a 140 site-day sample).
        imports[t] = tracker.step(t, float(load_kw[t]), float(pv_kw[t]), 0.0, no_schedule, tracker.soc_kwh, limit_kw)
        ev_kw[t] = (owed_before_kwh - sum(tracker.ev_remaining_kwh)) / SLOT_HOURS
    return imports
