from __future__ import annotations

import math
from datetime import date

import numpy as np
import pytest

from bench.dr_data import simulate_fleet
from bench.dr_fleet import run_bench
from bench.dr_reactive import fair_reactive_import_kw
from bench.dr_regional import run_regional_events
from vpp.domain.planning import EvDemand, SiteFlex


def test_fleet_history_is_deterministic_and_shaped_per_site_day_slot() -> None:
    first = simulate_fleet(5, date(2026, 7, 1), 3, seed=2)
    again = simulate_fleet(5, date(2026, 7, 1), 3, seed=2)
    assert first.load_kw.shape == first.pv_kw.shape == (5, 3, 48)
    assert np.array_equal(first.load_kw, again.load_kw)
    assert (first.pv_kw[:, :, :8] == 0).all()  # no sun before 04:00 JST
    assert (first.load_kw > 0).all()
    # The forecast ceiling's model is the one the load was drawn from: what is left is the slot-to-slot noise.
    left = first.load_kw / first.expected_load_kw - 1.0 - first.load_persistent_error
    assert 0.03 < float(left.std()) < 0.09


@pytest.mark.parametrize(("lookahead_slots", "stochastic_ceiling"), [(0, True), (12, False)])
def test_bench_runs_end_to_end_and_nothing_beats_perfect_foresight_with_the_same_end_soc_rule(
    lookahead_slots: int, stochastic_ceiling: bool
) -> None:
    result = run_bench(
        sites=15, days=1, workers=1, lookahead_slots=lookahead_slots, stochastic_ceiling=stochastic_ceiling
    )
    assert len(result.plan_wall_s) == 1
    assert sum(group.site_days for group in result.groups.values()) == result.evaluated_sites > 0
    for name, group in result.groups.items():
        if group.site_days == 0:
            continue
        ratios = [group.replanned_to_perfect, group.open_loop_to_perfect, group.ceiling_to_perfect]
        # The stochastic programme runs on battery-only sites; sites with EVs keep the LP re-planner.
        assert math.isnan(group.stochastic_to_perfect) == (name == "battery+ev")
        assert math.isnan(group.stochastic_ceiling_to_perfect) == (name == "battery+ev" or not stochastic_ceiling)
        # The scheduler's controller for sites with EVs ("limit only") runs on them alone.
        assert math.isnan(group.limit_only_to_perfect) == (name == "battery")
        if name == "battery+ev":
            ratios.append(group.limit_only_to_perfect)
        if name == "battery":
            ratios.append(group.stochastic_to_perfect)
            if stochastic_ceiling:
                ratios += [group.stochastic_ceiling_to_perfect, group.stochastic_ceiling_to_reactive]
        for ratio in ratios:
            assert math.isfinite(ratio)
            assert ratio <= 1.0 + 1e-6


def test_fair_reactive_controller_spreads_ev_charging_to_the_deadline_like_the_site_ems() -> None:
    load = np.full(48, 10.0)
    ev = EvDemand(energy_kwh=60.0, max_power_kw=50.0, available_from_slot=36, deadline_slot=48)
    spread, _soc = fair_reactive_import_kw(load, np.zeros(48), SiteFlex.without_battery(), [ev], 100.0)
    # 60 kWh over the 6 h left: 10 kW a slot, not 50 kW on arrival.
    assert spread[36:] == pytest.approx([20.0] * 12)
    # At a threshold the load already fills, charging waits until the vans' least-laxity point, yet all is delivered.
    deferred, _soc = fair_reactive_import_kw(load, np.zeros(48), SiteFlex.without_battery(), [ev], 10.0)
    assert deferred[36:45] == pytest.approx([10.0] * 9)
    assert (deferred[36:] - 10.0).sum() * 0.5 == pytest.approx(60.0)


def test_regional_events_never_allocate_above_the_deliverable() -> None:
    for outcome in run_regional_events(sites=6, windows=((34, 40, 1_000.0), (42, 48, 5.0))):
        assert outcome.allocated_kw <= outcome.deliverable_kw + 1e-6
        assert outcome.allocated_kw + outcome.shortfall_kw == pytest.approx(outcome.requested_kw)
        assert outcome.limits_out_of_reach == 0


def test_with_the_day_index_known_the_pv_forecast_holds_the_days_actual_pv_energy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bench import dr_fleet

    # Recorded so that monkeypatch puts both back: _init_worker sets them for this process.
    monkeypatch.setattr(dr_fleet, "_fleet", None)
    monkeypatch.setattr(dr_fleet, "_pv_day_index_known", False)
    day = dr_fleet.WARM_UP_DAYS
    dr_fleet._init_worker(8, 1, 0)
    history_kw = dr_fleet._forecast(0, day, day).pv_kw
    dr_fleet._init_worker(8, 1, 0, pv_day_index_known=True)
    fleet = dr_fleet._fleet
    assert fleet is not None
    known_kw = dr_fleet._forecast(0, day, day).pv_kw
    assert known_kw.sum() == pytest.approx(fleet.pv_kw[0, day].sum())
    assert history_kw.sum() != pytest.approx(known_kw.sum())  # not what the last week's index says
    assert np.flatnonzero(known_kw).tolist() == np.flatnonzero(history_kw).tolist()  # the same sun hours


def test_a_weather_forecast_of_given_skill_misses_the_days_pv_by_about_that_sd(monkeypatch: pytest.MonkeyPatch) -> None:
    from bench import dr_fleet

    monkeypatch.setattr(dr_fleet, "_fleet", None)
    monkeypatch.setattr(dr_fleet, "_pv_forecast_error", None)
    monkeypatch.setattr(dr_fleet, "_seed", 0)
    dr_fleet._init_worker(40, 3, 0, pv_forecast_error=0.0)
    fleet = dr_fleet._fleet
    assert fleet is not None
    days = range(dr_fleet.WARM_UP_DAYS, dr_fleet.WARM_UP_DAYS + 3)
    sunny = [(site, day) for site in range(40) for day in days if fleet.pv_kw[site, day].sum() > 0]
    perfect = [dr_fleet._forecast(site, day, day).pv_kw.sum() / fleet.pv_kw[site, day].sum() for site, day in sunny]
    assert np.allclose(perfect, 1.0)
    dr_fleet._init_worker(40, 3, 0, pv_forecast_error=0.2)
    ratios = np.array([dr_fleet._forecast(site, day, day).pv_kw.sum() / fleet.pv_kw[site, day].sum()
                       for site, day in sunny])  # fmt: skip
    assert len(ratios) > 60
    assert 0.14 < float(np.std(ratios)) < 0.26  # the index is clipped at 0 and 1.2: a little under 0.2
    again = [dr_fleet._forecast(site, day, day).pv_kw.sum() / fleet.pv_kw[site, day].sum() for site, day in sunny]
    assert np.array_equal(ratios, again)  # seeded per site and day
