"""The import-floor planner ("X kW more" events): hand-computed optima, limits, reasons for refusals."""

from __future__ import annotations

import numpy as np
import pytest

from tests.unit.domain.test_planning import DT_H, NO_PV, SLOTS, TOL, assert_physical, random_site
from vpp.domain.planning import EvDemand, InfeasiblePlan, SiteFlex, plan_import_floor

PRICE = [20.0] * SLOTS


def floors(slots: range, kw: float) -> list[float]:
    out = [0.0] * SLOTS
    for slot in slots:
        out[slot] = kw
    return out


def test_battery_charges_in_the_window_and_gives_it_back_later() -> None:
    # 10 kW flat load, lossless battery: 20 kW more for 2 h is 40 kWh into the battery, discharged later
    # against the load so the day's import stays 240 kWh. Cost: 240 kWh × 20 JPY + 80 kWh cycled × 3 JPY.
    load = [10.0] * SLOTS
    flex = SiteFlex(100, 50, 50, 0, 100, charge_efficiency=1.0, discharge_efficiency=1.0)
    plan = plan_import_floor(load, NO_PV, flex, [], floors(range(20, 24), 30.0), PRICE)
    assert_physical(plan, load, NO_PV, flex, [], terminal_soc_kwh=50)
    np.testing.assert_allclose(plan.import_kw[20:24], 30.0, atol=1e-6)
    assert sum(plan.import_kw) * DT_H == pytest.approx(240.0)
    assert plan.objective == pytest.approx(240 * 20 + 80 * 3)
    assert plan.strategy == "import_floor"


def test_ev_charging_is_brought_forward_into_the_window() -> None:
    load = [10.0] * SLOTS
    ev = EvDemand(energy_kwh=20, max_power_kw=10, available_from_slot=0, deadline_slot=SLOTS)
    plan = plan_import_floor(load, NO_PV, SiteFlex.without_battery(), [ev], floors(range(10, 14), 20.0), PRICE)
    assert_physical(plan, load, NO_PV, SiteFlex.without_battery(), [ev])
    np.testing.assert_allclose(plan.ev_kw[10:14], 10.0, atol=1e-6)
    assert sum(plan.ev_kw) == pytest.approx(40.0)  # all of it: 4 slots × 10 kW × 0.5 h = 20 kWh


def test_a_pv_surplus_is_absorbed_before_any_import_counts() -> None:
    load = [10.0] * SLOTS
    pv = floors(range(20, 24), 30.0)  # 20 kW surplus for 2 h
    flex = SiteFlex(100, 50, 20, 0, 100)
    plan = plan_import_floor(load, pv, flex, [], floors(range(20, 24), 5.0), PRICE)
    assert_physical(plan, load, pv, flex, [], terminal_soc_kwh=20)
    np.testing.assert_allclose(plan.import_kw[20:24], 5.0, atol=1e-6)
    np.testing.assert_allclose(plan.export_kw[20:24], 0.0, atol=1e-9)
    np.testing.assert_allclose(plan.battery_kw[20:24], -25.0, atol=1e-6)


def test_a_floor_above_what_the_site_can_draw_names_the_slot() -> None:
    flex = SiteFlex(100, 50, 50, 0, 100)
    with pytest.raises(InfeasiblePlan, match=r"slot 20: import floor 70\.000 kW is above the most .* 60\.000 kW"):
        plan_import_floor([10.0] * SLOTS, NO_PV, flex, [], floors(range(20, 21), 70.0), PRICE)


def test_more_energy_than_the_battery_can_hold_is_refused_with_the_account() -> None:
    flex = SiteFlex(20, 50, 10, 0, 20)  # 20 kWh of room ÷ 95% charge efficiency = 21.05 kWh from the grid
    with pytest.raises(
        InfeasiblePlan, match=r"need 120\.00 kWh .* slots 20–27, but the battery can take at most 21\.05"
    ):
        plan_import_floor([10.0] * SLOTS, NO_PV, flex, [], floors(range(20, 28), 40.0), PRICE)


@pytest.mark.parametrize("seed", range(6))
def test_random_floors_are_met_within_every_limit(seed: int) -> None:
    load, pv, flex, evs = random_site(seed)
    # Two night slots (no PV) at load + 10% of the battery's power: at most 0.1 × P kWh to absorb, which
    # the battery can always make room for by covering the load of the two slots before.
    floor = [load[t] + 0.1 * flex.battery_power_kw if t in (2, 3) else 0.0 for t in range(SLOTS)]
    plan = plan_import_floor(load, pv, flex, evs, floor, PRICE)
    assert_physical(plan, load, pv, flex, evs, terminal_soc_kwh=flex.soc_kwh_initial)
    assert all(plan.import_kw[t] >= floor[t] - TOL for t in range(SLOTS))
