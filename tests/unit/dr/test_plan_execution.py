from __future__ import annotations

import numpy as np
import pytest

from vpp.domain.planning import EvDemand, Plan, SiteFlex, plan_peak_cut
from vpp.domain.planning.execution import executed_import_kw, receding_horizon_import_kw

FLEX = SiteFlex(40.0, 10.0, 20.0, 4.0, 38.0, 0.95, 0.95)
EVS = [EvDemand(30.0, 10.0, 36, 48, "evening")]


def _day(peak_kw: float) -> tuple[np.ndarray, np.ndarray]:
    hours = np.arange(48) / 2
    load = 10 + peak_kw * np.exp(-(((hours - 15) / 2.0) ** 2))
    pv = np.clip(12 * np.sin((hours - 6) / 12 * np.pi), 0, None)
    return load, pv


def _replanner(load, pv, flex, evs, target_kw, terminal_kwh) -> Plan:  # type: ignore[no-untyped-def]
    return plan_peak_cut(load.tolist(), pv.tolist(), flex, evs, target_kw, terminal_soc_kwh=terminal_kwh)


def test_following_a_perfect_plan_reproduces_its_peak() -> None:
    load, pv = _day(15.0)
    plan = plan_peak_cut(load.tolist(), pv.tolist(), FLEX, EVS, 0.0)
    executed = executed_import_kw(plan, load, pv, FLEX, EVS, plan.peak_import_kw)
    assert executed.max() == pytest.approx(plan.peak_import_kw, abs=1e-6)


def test_higher_load_than_forecast_is_absorbed_by_the_battery_and_evs_are_still_delivered() -> None:
    forecast_load, pv = _day(12.0)
    actual_load, _ = _day(15.0)
    plan = plan_peak_cut(forecast_load.tolist(), pv.tolist(), FLEX, EVS, 0.0)
    open_loop_peak = float((actual_load + np.array(plan.ev_kw) - pv - np.array(plan.battery_kw)).max())
    executed = executed_import_kw(plan, actual_load, pv, FLEX, EVS, plan.peak_import_kw)
    assert executed.max() < open_loop_peak - 1.0
    # Import − (load − PV) summed over the day is what went into EVs and the battery: at least the vans' 30 kWh.
    assert float((executed - actual_load + pv).sum() * 0.5) >= 30.0 - 20.0 - 1e-6


def test_intraday_replanning_stays_between_the_optimum_and_the_open_loop_plan() -> None:
    forecast_load, pv = _day(8.0)
    actual_load, _ = _day(16.0)
    plan = plan_peak_cut(forecast_load.tolist(), pv.tolist(), FLEX, EVS, 0.0)
    open_loop_peak = float((actual_load + np.array(plan.ev_kw) - pv - np.array(plan.battery_kw)).max())
    replanned = receding_horizon_import_kw(forecast_load, pv, actual_load, pv, FLEX, EVS, plan, _replanner, 8).max()
    optimum = plan_peak_cut(actual_load.tolist(), pv.tolist(), FLEX, EVS, 0.0).peak_import_kw
    # Re-plans keep the day's end-of-day SoC rule, so they cannot beat the optimum that obeys it.
    assert optimum - 1e-6 <= replanned < open_loop_peak
