"""Site planners: physical limits on random cases, hand-computed optima, infeasible requests."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from vpp.domain.planning import (
    EvDemand,
    InfeasiblePlan,
    PeakShiftWeights,
    Plan,
    SiteFlex,
    plan_peak_cut,
    plan_peak_shift,
    threshold_controller,
)

DT_H = 0.5
SLOTS = 48
TOL = 1e-6
NO_PV = [0.0] * SLOTS


def assert_physical(
    plan: Plan,
    base_load_kw: list[float],
    pv_kw: list[float],
    flex: SiteFlex,
    evs: list[EvDemand],
    terminal_soc_kwh: float | None = None,
) -> None:
    """Every limit and balance, slot by slot, from the plan's published series only."""
    load, pv = np.array(base_load_kw), np.array(pv_kw)
    imp, exp = np.array(plan.import_kw), np.array(plan.export_kw)
    battery, ev = np.array(plan.battery_kw), np.array(plan.ev_kw)
    curtailed, soc = np.array(plan.curtailed_kw), np.array(plan.soc_kwh)
    assert imp.shape == exp.shape == battery.shape == ev.shape == (SLOTS,)
    assert soc.shape == (SLOTS + 1,)

    assert (imp >= -TOL).all()
    assert (exp >= -TOL).all()
    assert (np.minimum(imp, exp) <= TOL).all(), "importing and exporting at once"
    assert (np.abs(battery) <= flex.battery_power_kw + TOL).all()
    assert soc[0] == pytest.approx(flex.soc_kwh_initial)
    assert (soc >= flex.soc_min_kwh - TOL).all()
    assert (soc <= flex.soc_max_kwh + TOL).all()
    if terminal_soc_kwh is not None:
        assert soc[-1] >= terminal_soc_kwh - TOL
    # SoC follows the efficiencies; a net battery series only satisfies this if the plan never
    # charges and discharges in the same slot.
    charge, discharge = np.maximum(-battery, 0.0), np.maximum(battery, 0.0)
    expected_step = DT_H * (flex.charge_efficiency * charge - discharge / flex.discharge_efficiency)
    np.testing.assert_allclose(np.diff(soc), expected_step, atol=1e-6)
    # Grid balance, with curtailed PV not used on site.
    np.testing.assert_allclose(imp - exp, load + ev - battery - (pv - curtailed), atol=1e-6)
    assert (curtailed >= -TOL).all()
    assert (curtailed <= pv + TOL).all()
    if not flex.export_allowed:
        assert (exp <= TOL).all()

    assert len(plan.ev_kw_by_demand) == len(evs)
    for demand, series in zip(evs, plan.ev_kw_by_demand, strict=True):
        power = np.array(series)
        assert (power >= -TOL).all()
        assert (power <= demand.max_power_kw + TOL).all()
        outside = np.ones(SLOTS, dtype=bool)
        outside[demand.available_from_slot : demand.deadline_slot] = False
        assert (np.abs(power[outside]) <= TOL).all()
        assert power.sum() * DT_H == pytest.approx(demand.energy_kwh, abs=1e-6)
    assert plan.peak_import_kw == pytest.approx(imp.max())


def random_site(seed: int) -> tuple[list[float], list[float], SiteFlex, list[EvDemand]]:
    rng = np.random.default_rng(seed)
    load = (20 + 60 * rng.random(SLOTS)).tolist()
    daylight = np.clip(np.sin(np.linspace(-np.pi / 2, 3 * np.pi / 2, SLOTS)), 0, None) ** 2
    pv = (rng.uniform(0, 120) * daylight).tolist()
    capacity = rng.uniform(20, 200)
    soc_min, soc_max = 0.1 * capacity, 0.9 * capacity
    flex = SiteFlex(
        battery_kwh=capacity,
        battery_power_kw=rng.uniform(5, 100),
        soc_kwh_initial=rng.uniform(soc_min, soc_max),
        soc_min_kwh=soc_min,
        soc_max_kwh=soc_max,
        charge_efficiency=rng.uniform(0.85, 1.0),
        discharge_efficiency=rng.uniform(0.85, 1.0),
        export_allowed=bool(rng.random() < 0.5),
    )
    evs = []
    for _ in range(int(rng.integers(0, 5))):
        start = int(rng.integers(0, 40))
        deadline = int(rng.integers(start + 1, SLOTS + 1))
        power = rng.uniform(3, 50)
        energy = rng.uniform(0, 0.8) * power * (deadline - start) * DT_H
        evs.append(EvDemand(energy, power, start, deadline))
    return load, pv, flex, evs


@pytest.mark.parametrize("seed", range(8))
def test_limits_hold_in_every_slot_of_random_cases(seed: int) -> None:
    load, pv, flex, evs = random_site(seed)
    rng = np.random.default_rng(1000 + seed)
    target = float(rng.uniform(10, 90))

    cut = plan_peak_cut(load, pv, flex, evs, target)
    assert_physical(cut, load, pv, flex, evs, terminal_soc_kwh=flex.soc_kwh_initial)
    assert cut.target_met == (cut.peak_import_kw <= target + TOL)

    price = rng.uniform(5, 30, SLOTS).tolist()
    shift = plan_peak_shift(load, pv, flex, evs, price, peak_slots=range(28, 40))
    assert_physical(shift, load, pv, flex, evs, terminal_soc_kwh=flex.soc_kwh_initial)
    assert shift.target_met is None

    reactive = threshold_controller(load, pv, flex, evs, target)
    assert_physical(reactive, load, pv, flex, evs)
    # The optimiser plans with the same knowledge, so it never does worse on the peak.
    assert cut.peak_import_kw <= reactive.peak_import_kw + TOL


def one_peak_load(peak_slots: range, base_kw: float = 50.0, peak_kw: float = 80.0) -> list[float]:
    load = [base_kw] * SLOTS
    for slot in peak_slots:
        load[slot] = peak_kw
    return load


def test_big_battery_shaves_the_peak_to_the_flat_load_plus_recharge() -> None:
    # Load 50 kW, 80 kW in slot 30, target 50. The battery must end as full as it started, so the
    # energy discharged at the peak is recharged in the other 47 slots, each at p − 50 kW:
    #   47 (p − 50) Δ η_c = (80 − p) Δ / η_d  →  p = (80 + 50 a) / (1 + a),  a = 47 η_c η_d.
    load = one_peak_load(range(30, 31))
    flex = SiteFlex(100, 50, 50, 0, 100)
    plan = plan_peak_cut(load, NO_PV, flex, [], target_kw=50)

    a = 47 * 0.95 * 0.95
    expected_peak = (80 + 50 * a) / (1 + a)  # 50.691 kW
    assert plan.peak_import_kw == pytest.approx(expected_peak, abs=1e-6)
    assert not plan.target_met
    assert plan.battery_kw[30] == pytest.approx(80 - expected_peak, abs=1e-6)
    assert plan.import_kw == pytest.approx([expected_peak] * SLOTS, abs=1e-6)
    assert_physical(plan, load, NO_PV, flex, [], terminal_soc_kwh=50)


def test_target_is_met_exactly_when_the_battery_may_end_lower() -> None:
    load = one_peak_load(range(30, 31))
    flex = SiteFlex(100, 50, 50, 0, 100)
    plan = plan_peak_cut(load, NO_PV, flex, [], target_kw=50, terminal_soc_kwh=30)
    assert plan.target_met
    assert plan.peak_import_kw == pytest.approx(50.0, abs=1e-6)
    assert plan.battery_kw[30] == pytest.approx(30.0, abs=1e-6)
    assert_physical(plan, load, NO_PV, flex, [], terminal_soc_kwh=30)


def test_energy_limited_battery_spreads_its_energy_over_the_peak() -> None:
    # 80 kW for 4 slots (2 h); 10 kWh in the battery, power no limit. 10 kWh × η_d = 9.5 kWh over
    # 2 h lowers each peak slot by 4.75 kW: p = 75.25 kW. Recharging afterwards stays far below it.
    load = one_peak_load(range(28, 32))
    flex = SiteFlex(10, 100, 10, 0, 10)
    plan = plan_peak_cut(load, NO_PV, flex, [], target_kw=50)
    assert plan.peak_import_kw == pytest.approx(75.25, abs=1e-6)
    assert plan.import_kw[28:32] == pytest.approx([75.25] * 4, abs=1e-6)
    assert plan.soc_kwh[32] == pytest.approx(0.0, abs=1e-6)
    assert not plan.target_met
    assert_physical(plan, load, NO_PV, flex, [], terminal_soc_kwh=10)


def test_power_limited_battery_cuts_by_its_power() -> None:
    load = one_peak_load(range(30, 31))
    flex = SiteFlex(100, 10, 50, 0, 100)
    plan = plan_peak_cut(load, NO_PV, flex, [], target_kw=50)
    assert plan.peak_import_kw == pytest.approx(70.0, abs=1e-6)
    assert plan.battery_kw[30] == pytest.approx(10.0, abs=1e-6)


def test_ev_charging_is_deferred_out_of_the_evening_peak() -> None:
    # Base 50 kW, 70 kW in 17:00-19:00 (slots 34-37); an EV needs 20 kWh at 10 kW from 17:00.
    load = one_peak_load(range(34, 38), peak_kw=70.0)
    ev = EvDemand(energy_kwh=20, max_power_kw=10, available_from_slot=34, deadline_slot=48)
    no_battery = SiteFlex.without_battery()

    plan = plan_peak_cut(load, NO_PV, no_battery, [ev], target_kw=60)
    assert plan.ev_kw[34:38] == pytest.approx([0.0] * 4, abs=1e-6)
    assert plan.ev_kw[38:42] == pytest.approx([10.0] * 4, abs=1e-6)  # earliest after the peak
    assert plan.peak_import_kw == pytest.approx(70.0, abs=1e-6)  # the base load's own peak
    assert not plan.target_met
    assert_physical(plan, load, NO_PV, no_battery, [ev])

    reactive = threshold_controller(load, NO_PV, no_battery, [ev], threshold_kw=60)
    assert reactive.ev_kw[34:36] == pytest.approx([10.0, 10.0])
    assert reactive.peak_import_kw == pytest.approx(80.0)


def test_ev_fills_the_headroom_under_a_reachable_target() -> None:
    load = one_peak_load(range(34, 38), base_kw=40.0, peak_kw=55.0)
    ev = EvDemand(energy_kwh=20, max_power_kw=10, available_from_slot=34, deadline_slot=48)
    plan = plan_peak_cut(load, NO_PV, SiteFlex.without_battery(), [ev], target_kw=60)
    assert plan.target_met
    assert plan.peak_import_kw <= 60 + TOL
    assert plan.ev_kw[34:38] == pytest.approx([5.0] * 4, abs=1e-6)  # up to the target, early


def midday_surplus(pv_peak_kw: float) -> tuple[list[float], list[float]]:
    load = [20.0] * SLOTS
    pv = [0.0] * SLOTS
    pv[22:28] = [pv_peak_kw] * 6  # 11:00-14:00
    return load, pv


def test_peak_shift_stores_the_pv_surplus_instead_of_exporting_it() -> None:
    load, pv = midday_surplus(40.0)  # 20 kW surplus for 3 h = 60 kWh
    flex = SiteFlex(100, 50, 20, 10, 100)
    price = [20.0] * SLOTS
    peak = range(34, 40)

    plan = plan_peak_shift(load, pv, flex, [], price, peak)
    assert sum(plan.export_kw) == pytest.approx(0.0, abs=1e-6)
    assert all(power <= -20 + TOL for power in plan.battery_kw[22:28])
    assert plan.import_kw[34:40] == pytest.approx([0.0] * 6, abs=1e-6)  # peak served from storage
    assert_physical(plan, load, pv, flex, [], terminal_soc_kwh=20)

    without = plan_peak_shift(load, pv, SiteFlex.without_battery(), [], price, peak)
    assert sum(without.export_kw) * DT_H == pytest.approx(60.0)


def test_peak_shift_moves_ev_charging_into_the_surplus() -> None:
    load, pv = midday_surplus(40.0)
    ev = EvDemand(energy_kwh=30, max_power_kw=20, available_from_slot=16, deadline_slot=40)
    no_battery = SiteFlex.without_battery()
    plan = plan_peak_shift(load, pv, no_battery, [ev], [20.0] * SLOTS, range(34, 40))
    assert plan.ev_kw[22:25] == pytest.approx([20.0] * 3, abs=1e-6)  # 30 kWh, earliest surplus slots
    assert sum(plan.ev_kw) == pytest.approx(sum(plan.ev_kw[22:25]))
    assert plan.import_kw == pytest.approx([0.0 if 22 <= t < 28 else 20.0 for t in range(SLOTS)], abs=1e-6)
    assert_physical(plan, load, pv, no_battery, [ev])


def test_site_that_may_not_export_curtails_what_it_cannot_absorb() -> None:
    load, pv = midday_surplus(200.0)  # 180 kW surplus: far beyond a 50 kW battery
    flex = SiteFlex(50, 50, 25, 0, 50, export_allowed=False)
    for plan in (
        plan_peak_shift(load, pv, flex, [], [20.0] * SLOTS, range(34, 40)),
        plan_peak_cut(load, pv, flex, [], target_kw=20),
        threshold_controller(load, pv, flex, [], threshold_kw=20),
    ):
        assert sum(plan.export_kw) == 0.0
        assert sum(plan.curtailed_kw) > 0
        assert_physical(plan, load, pv, flex, [])


@pytest.mark.parametrize("export_allowed", [True, False])
def test_no_simultaneous_charge_and_discharge_even_without_a_wear_cost(export_allowed: bool) -> None:
    # With a full battery, a huge surplus and a heavy export penalty, charging and discharging at
    # once would "dispose" of energy as losses; the planner must export or curtail instead.
    load, pv = midday_surplus(200.0)
    flex = SiteFlex(50, 50, 50, 0, 50, export_allowed=export_allowed)
    weights = PeakShiftWeights(export_penalty_jpy_per_kwh=500.0, cycle_cost_jpy_per_kwh=0.0)
    plan = plan_peak_shift(load, pv, flex, [], [20.0] * SLOTS, range(34, 40), weights=weights)
    assert_physical(plan, load, pv, flex, [], terminal_soc_kwh=50)  # SoC check fails on burning
    assert (sum(plan.export_kw) + sum(plan.curtailed_kw)) * DT_H > 100


def test_ev_request_that_cannot_fit_before_its_deadline_is_refused() -> None:
    ev = EvDemand(energy_kwh=40, max_power_kw=7, available_from_slot=36, deadline_slot=40, ev_id="van-07")
    with pytest.raises(InfeasiblePlan, match=r"van-07.*40 kWh.*= 14 kWh") as caught:
        plan_peak_cut([50.0] * SLOTS, NO_PV, SiteFlex.without_battery(), [ev], target_kw=60)
    assert "slot 36" in caught.value.reason


@pytest.mark.parametrize(
    ("flex", "message"),
    [
        (SiteFlex(100, 50, 50, 60, 40), "SoC bounds inconsistent"),
        (SiteFlex(100, 50, 50, 0, 120), "SoC bounds inconsistent"),
        (SiteFlex(100, 50, 95, 10, 90), "initial SoC 95"),
        (SiteFlex(100, 50, 50, 10, 90, charge_efficiency=0.0), "charge efficiency"),
    ],
)
def test_inconsistent_battery_is_refused(flex: SiteFlex, message: str) -> None:
    planners: list[Callable[[], Plan]] = [
        lambda: plan_peak_cut([50.0] * SLOTS, NO_PV, flex, [], target_kw=60),
        lambda: plan_peak_shift([50.0] * SLOTS, NO_PV, flex, [], [10.0] * SLOTS, []),
        lambda: threshold_controller([50.0] * SLOTS, NO_PV, flex, [], threshold_kw=60),
    ]
    for planner in planners:
        with pytest.raises(InfeasiblePlan, match=message):
            planner()


def test_other_impossible_requests_are_refused() -> None:
    flex = SiteFlex(100, 50, 50, 10, 90)
    with pytest.raises(InfeasiblePlan, match=r"window \[40, 49\)"):
        plan_peak_cut([50.0] * SLOTS, NO_PV, flex, [EvDemand(1, 7, 40, 49)], target_kw=60)
    with pytest.raises(InfeasiblePlan, match="terminal SoC 95"):
        plan_peak_cut([50.0] * SLOTS, NO_PV, flex, [], target_kw=60, terminal_soc_kwh=95)
    with pytest.raises(InfeasiblePlan, match="target"):
        plan_peak_cut([50.0] * SLOTS, NO_PV, flex, [], target_kw=-1)
    with pytest.raises(ValueError, match="equally long"):
        plan_peak_cut([50.0] * SLOTS, NO_PV[:47], flex, [], target_kw=60)
    with pytest.raises(ValueError, match="peak slot 48"):
        plan_peak_shift([50.0] * SLOTS, NO_PV, flex, [], [10.0] * SLOTS, [48])
