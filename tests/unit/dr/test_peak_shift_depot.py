"""Peak-shift as operators mean it, on the depot's day: the window comes down, no new peak outside it."""

from __future__ import annotations

import numpy as np
import pytest

from services.dr_scheduler.day_ahead import site_flex
from tests.unit.dr.depot_day import depot_day
from vpp.domain.planning import PeakShiftWeights, plan_peak_shift

MONTHLY_MAX_KW = 31.9  # the depot's maximum demand this month (issue 14)
WINDOW = range(34, 40)  # 17:00–20:00 JST, the evening peak
PRICES = [20.0] * 48
TOL = 1e-6


def outside(series: tuple[float, ...]) -> np.ndarray:
    mask = np.ones(48, dtype=bool)
    mask[WINDOW.start : WINDOW.stop] = False
    return np.asarray(series)[mask]


def test_depot_peak_shift_never_exceeds_its_monthly_maximum_outside_the_window() -> None:
    day = depot_day()
    flex = site_flex(61.0, 20.0)
    args = (day.load_kw.tolist(), day.pv_kw.tolist(), flex, day.evs, PRICES, WINDOW)

    plan = plan_peak_shift(*args, outside_cap_kw=MONTHLY_MAX_KW)
    assert outside(plan.import_kw).max() <= MONTHLY_MAX_KW + TOL
    # Energy only, no kW terms (the planner before issue 14): the recharge makes a new peak outside the
    # window and leaves kW in the window that the site could have taken out.
    energy_only = plan_peak_shift(*args, weights=PeakShiftWeights(window_peak_penalty_jpy_per_kw=0.0))
    assert outside(energy_only.import_kw).max() > MONTHLY_MAX_KW + 5
    assert max(plan.import_kw[34:40]) < max(energy_only.import_kw[34:40]) - 5
    assert plan.soc_kwh[-1] >= flex.soc_kwh_initial - TOL  # the end-SoC rule still holds


def test_depot_window_target_and_cap_hold_together_and_the_plan_says_so() -> None:
    day = depot_day()
    args = (day.load_kw.tolist(), day.pv_kw.tolist(), site_flex(61.0, 20.0), day.evs, PRICES, WINDOW)
    lowest = max(plan_peak_shift(*args, outside_cap_kw=MONTHLY_MAX_KW).import_kw[34:40])

    reachable = plan_peak_shift(*args, window_target_kw=lowest + 1.0, outside_cap_kw=MONTHLY_MAX_KW)
    assert reachable.target_met is True
    assert max(reachable.import_kw[34:40]) <= lowest + 1.0 + TOL

    too_low = plan_peak_shift(*args, window_target_kw=max(lowest - 2.0, 0.0), outside_cap_kw=MONTHLY_MAX_KW)
    assert too_low.target_met is False
    assert max(too_low.import_kw[34:40]) == pytest.approx(lowest, abs=1e-4)  # still as low as reachable


def test_a_cap_the_day_cannot_hold_gives_the_reason_instead_of_a_silent_plan() -> None:
    day = depot_day()
    args = (day.load_kw.tolist(), day.pv_kw.tolist(), site_flex(61.0, 20.0), day.evs, PRICES, WINDOW)
    # 5 kW outside the window cannot carry the vans' overnight charging: both cannot hold.
    plan = plan_peak_shift(*args, window_target_kw=5.0, outside_cap_kw=5.0)
    assert plan.target_met is False
    assert "cannot both hold" in plan.status
