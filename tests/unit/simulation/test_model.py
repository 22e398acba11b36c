from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from vpp.domain.dr_events import DrSignal, SignalInterval
from vpp.simulation.model import SiteSimulator, SiteSpec, SiteState, fleet_specs

JST = ZoneInfo("Asia/Tokyo")
DEPOT = SiteSpec()
SLOT = timedelta(minutes=30)
JUNE_MONDAY = datetime(2025, 6, 2, tzinfo=JST)
WINTER_WEDNESDAY = datetime(2025, 12, 10, tzinfo=JST)


@dataclass
class Sample:
    now: datetime
    readings: dict[str, dict[str, object]]
    state: SiteState


def run(sim: SiteSimulator, start: datetime, steps_s: list[float]) -> list[Sample]:
    samples = []
    now = start
    for step_s in steps_s:
        now += timedelta(seconds=step_s)
        samples.append(Sample(now, sim.step(now), sim.state))
    return samples


def num(reading: dict[str, object], field: str) -> float:
    value = reading[field]
    assert type(value) is float, f"{field}: {value!r} is not a plain float"  # numpy scalars must not leak into payloads
    return value


def slot_demands_kw(samples: list[Sample], start: datetime, end: datetime) -> list[float]:
    """30-minute demand from the published meter counter, for slots in [start, end) aligned to readings."""
    import_at = {s.now: num(s.readings["meter-1"], "import_kwh") for s in samples}
    slots = []
    at = start
    while at < end:
        slots.append((import_at[at + SLOT] - import_at[at]) * 2.0)
        at += SLOT
    return slots


@pytest.fixture(scope="module")
def three_days() -> list[Sample]:
    """The depot over three June days at 10-60 s steps, with one evening DR limit to work the battery.

    Each slot gets its own step length, a divisor of 30 minutes, so readings land on slot boundaries.
    """
    start = JUNE_MONDAY
    sim = SiteSimulator(DEPOT, start, seed=3)
    sim.set_import_limit(start + timedelta(days=1, hours=17), start + timedelta(days=1, hours=19), 5.0)
    divisors_s = [10.0, 20.0, 30.0, 45.0, 60.0]
    odds = [0.02, 0.08, 0.2, 0.3, 0.4]
    per_slot_s = np.random.default_rng(1).choice(divisors_s, size=3 * 48, p=odds).tolist()
    steps_s = [step_s for step_s in per_slot_s for _ in range(round(1800 / step_s))]
    return run(sim, start, steps_s)


@pytest.fixture(scope="module")
def ragged_day() -> list[Sample]:
    """About a day at step lengths from 1 s to 15 min, so steps straddle slot boundaries."""
    start = datetime(2025, 6, 3, 17, 59, 58, tzinfo=JST)
    sim = SiteSimulator(DEPOT, start, seed=4)
    rng = np.random.default_rng(2)
    steps_s = [1.0, 1.0, 7.5, *rng.choice([1.0, 13.0, 61.0, 420.0, 900.0], size=400).tolist()]
    return run(sim, start, steps_s)


def test_energy_balance_holds_in_every_reading(ragged_day: list[Sample], three_days: list[Sample]) -> None:
    for sample in ragged_day + three_days:
        r, state = sample.readings, sample.state
        grid_kw = num(r["meter-1"], "power_kw")
        pv_kw = num(r["pv-1"], "power_kw")
        battery_kw = num(r["battery-1"], "power_kw")
        ev_kw = num(r["ev-1"], "power_kw")
        # Plain comparisons: pytest.approx costs more than the simulation over thousands of readings.
        assert abs(grid_kw + pv_kw + battery_kw - state.load_kw) < 1e-9
        assert abs(state.load_kw - (state.base_load_kw + ev_kw)) < 1e-9
        assert pv_kw >= 0.0
        assert ev_kw >= 0.0
        assert type(r["ev-1"]["vehicles"]) is int
        assert all(reading["ts"] == sample.now.isoformat() for reading in r.values())


def test_counters_equal_integrated_power(ragged_day: list[Sample]) -> None:
    counters = {
        "meter-1": ("import_kwh", "export_kwh"),
        "pv-1": ("energy_kwh", None),
        "battery-1": ("discharge_kwh", "charge_kwh"),
        "ev-1": ("energy_kwh", None),
    }
    moved = dict.fromkeys(counters, 0.0)
    for before, after in itertools.pairwise(ragged_day):
        hours = (after.now - before.now).total_seconds() / 3600.0
        for device, (positive, negative) in counters.items():
            old, new = before.readings[device], after.readings[device]
            delta_kwh = num(new, positive) - num(old, positive)
            assert delta_kwh >= 0.0
            if negative is not None:
                assert num(new, negative) >= num(old, negative)
                delta_kwh -= num(new, negative) - num(old, negative)
            expected_kwh = num(new, "power_kw") * hours
            assert delta_kwh == pytest.approx(expected_kwh, rel=1e-3, abs=1e-9)
            moved[device] += abs(delta_kwh)
    assert all(total > 1.0 for total in moved.values()), moved


def test_meter_counters_start_at_a_deterministic_offset() -> None:
    start = datetime(2025, 6, 2, 12, tzinfo=JST)
    first = SiteSimulator(DEPOT, start, seed=5).step(start + timedelta(seconds=10))["meter-1"]
    again = SiteSimulator(DEPOT, start, seed=5).step(start + timedelta(seconds=10))["meter-1"]
    other = SiteSimulator(DEPOT, start, seed=6).step(start + timedelta(seconds=10))["meter-1"]
    assert num(first, "import_kwh") > 1_000.0
    assert first == again
    assert num(other, "import_kwh") != num(first, "import_kwh")


def test_battery_stays_within_soc_and_power_limits(three_days: list[Sample]) -> None:
    soc_pct = [num(s.readings["battery-1"], "soc_pct") for s in three_days]
    power_kw = [num(s.readings["battery-1"], "power_kw") for s in three_days]
    assert min(soc_pct) >= 10.0 - 1e-9
    assert max(soc_pct) <= 95.0 + 1e-9
    assert max(abs(p) for p in power_kw) <= DEPOT.battery_power_kw + 1e-9
    # The limits were actually reached, so the checks above constrain something.
    assert max(soc_pct) > 94.0
    assert min(soc_pct) < 40.0
    assert max(power_kw) > 0.9 * DEPOT.battery_power_kw


def test_base_load_is_high_on_working_days_and_low_at_night_and_weekends(three_days: list[Sample]) -> None:
    def mean_base_kw(samples: list[Sample], day: datetime, from_h: int, to_h: int) -> float:
        inside = [
            s.state.base_load_kw
            for s in samples
            if day + timedelta(hours=from_h) < s.now <= day + timedelta(hours=to_h)
        ]
        return sum(inside) / len(inside)

    sunday = JUNE_MONDAY - timedelta(days=1)
    weekend = run(SiteSimulator(DEPOT, sunday + timedelta(hours=9), seed=3), sunday + timedelta(hours=9), [60.0] * 180)
    working_kw = mean_base_kw(three_days, JUNE_MONDAY, 9, 12)
    assert working_kw > 1.6 * mean_base_kw(three_days, JUNE_MONDAY, 0, 4)  # JST hours, not UTC
    assert working_kw > 1.4 * mean_base_kw(weekend, sunday, 9, 12)
    daily_kw = mean_base_kw(three_days, JUNE_MONDAY, 0, 24)
    assert 0.8 * DEPOT.base_load_kw < daily_kw < 1.3 * DEPOT.base_load_kw


def test_pv_is_zero_at_night_peaks_near_noon_and_yields_plausibly() -> None:
    clear = SiteSpec(cloudiness=0.0, battery_kwh=0.0, ev_count=0)
    yields = {}
    # Days the other tests also simulate, so the clear-sky tables are computed once.
    for day in (JUNE_MONDAY + timedelta(days=1), WINTER_WEDNESDAY):
        samples = run(SiteSimulator(clear, day), day, [120.0] * 720)
        pv_kw = [num(s.readings["pv-1"], "power_kw") for s in samples]
        hours = [(s.now - day).total_seconds() / 3600.0 for s in samples]
        assert all(p == 0.0 for p, h in zip(pv_kw, hours, strict=True) if h < 3.5 or h > 20.0)
        assert 11.0 <= hours[int(np.argmax(pv_kw))] <= 12.5  # solar noon at 139.6 E is ~11:40 JST
        assert max(pv_kw) < clear.pv_kw
        energy_kwh = num(samples[-1].readings["pv-1"], "energy_kwh") - num(samples[0].readings["pv-1"], "energy_kwh")
        yields[day.month] = energy_kwh / clear.pv_kw
    assert 4.0 <= yields[6] <= 7.0
    assert 0.5 < yields[12] < 0.8 * yields[6]


def test_evs_are_charged_by_departure_with_the_peak_spread(three_days: list[Sample]) -> None:
    assert three_days[-1].state.ev_unmet_kwh == 0.0
    vehicles = [cast(int, s.readings["ev-1"]["vehicles"]) for s in three_days]
    assert max(vehicles) == DEPOT.ev_count  # vans came and went; each departure was checked
    assert min(vehicles) == 0
    # Unmanaged, 25 vans at 6 kW would draw 150 kW on arrival.
    assert max(num(s.readings["ev-1"], "power_kw") for s in three_days) < 60.0
    delivered_kwh = num(three_days[-1].readings["ev-1"], "energy_kwh") - num(
        three_days[0].readings["ev-1"], "energy_kwh"
    )
    assert delivered_kwh > 2 * DEPOT.ev_count * DEPOT.ev_daily_kwh * 0.8


def test_evs_still_finish_under_an_all_night_limit() -> None:
    start = datetime(2025, 6, 2, 12, tzinfo=JST)
    sim = SiteSimulator(DEPOT, start, seed=8)
    sim.set_import_limit(start + timedelta(hours=6), start + timedelta(hours=19), 5.0)
    samples = run(sim, start, [60.0] * (22 * 60))
    assert samples[-1].state.ev_unmet_kwh == 0.0
    assert max(s.state.vehicles for s in samples) == DEPOT.ev_count
    assert samples[-1].state.vehicles == 0


def test_demand_target_holds(three_days: list[Sample]) -> None:
    demands = slot_demands_kw(three_days, JUNE_MONDAY + SLOT, JUNE_MONDAY + timedelta(days=3) - SLOT)
    assert max(demands) <= DEPOT.demand_target_kw + 1e-6
    assert max(demands) > 0.6 * DEPOT.demand_target_kw


def test_import_limit_caps_slot_demand_when_the_battery_has_energy() -> None:
    start = WINTER_WEDNESDAY + timedelta(hours=6)  # little PV to help
    limit_from, limit_to = start + timedelta(hours=11), start + timedelta(hours=13)
    steps_s = [60.0] * (14 * 60)
    free = run(SiteSimulator(DEPOT, start, seed=11), start, steps_s)
    limited_sim = SiteSimulator(DEPOT, start, seed=11)
    limited_sim.set_import_limit(limit_from, limit_to, 12.0)
    limited = run(limited_sim, start, steps_s)

    assert max(slot_demands_kw(free, limit_from, limit_to)) > 12.0 + 5.0
    assert max(slot_demands_kw(limited, limit_from, limit_to)) <= 12.0 + 1e-6
    during = [s.state for s in limited if limit_from <= s.now < limit_to]
    assert all(state.import_limit_kw == 12.0 for state in during)
    assert min(state.soc_pct for state in during) > 10.0  # the battery had the energy: the premise holds

    # Vans arriving in the window wait: deferring them is free, unlike cycling the battery.
    def ev_kwh(samples: list[Sample]) -> float:
        return sum(s.state.ev_kw / 60.0 for s in samples if limit_from < s.now <= limit_to)

    assert ev_kwh(limited) < 0.5 * ev_kwh(free)


def test_clearing_a_limit_removes_it() -> None:
    start = WINTER_WEDNESDAY + timedelta(hours=6)
    sim = SiteSimulator(DEPOT, start)
    sim.set_import_limit(start + timedelta(hours=1), start + timedelta(hours=3), 12.0)
    sim.set_import_limit(start + timedelta(hours=2), start + timedelta(hours=4), None)
    sim.step(start + timedelta(hours=1, minutes=30))
    assert sim.state.import_limit_kw == 12.0
    sim.step(start + timedelta(hours=2, minutes=30))
    assert sim.state.import_limit_kw is None


def test_import_floor_raises_slot_demand_by_charging_the_battery() -> None:
    # A sunny June midday: the depot's PV covers its load, so it imports almost nothing on its own.
    start = JUNE_MONDAY + timedelta(hours=6)
    floor_from, floor_to = start + timedelta(hours=5), start + timedelta(hours=7)  # 11:00-13:00 JST
    steps_s = [60.0] * (8 * 60)
    free = run(SiteSimulator(DEPOT, start, seed=5), start, steps_s)
    floored_sim = SiteSimulator(DEPOT, start, seed=5)
    floored_sim.set_import_limit(floor_from, floor_to, None, 15.0)
    floored = run(floored_sim, start, steps_s)

    assert max(slot_demands_kw(free, floor_from, floor_to)) < 15.0 - 5.0
    assert min(slot_demands_kw(floored, floor_from, floor_to)) >= 15.0 - 1e-6
    during = [s.state for s in floored if floor_from <= s.now < floor_to]
    assert all(state.import_floor_kw == 15.0 and state.import_limit_kw is None for state in during)
    # Charging is what raised the import: never a discharge, and most of the 2 h at well over 5 kW (a
    # sample's powers are its step's averages, so the window's steps end after its start).
    window = [s.state.battery_kw for s in floored if floor_from < s.now <= floor_to]
    assert max(window) <= 0.0
    assert -sum(window) / 60.0 > 2 * 5.0
    assert max(state.soc_pct for state in during) <= 95.0 + 1e-6

    # Before the window the battery made room: it ran lower than without the coming floor.
    def soc_pct_at_start(samples: list[Sample]) -> float:
        return next(s.state.soc_pct for s in samples if s.now == floor_from)

    assert soc_pct_at_start(floored) < soc_pct_at_start(free)


def test_a_signal_replaces_every_earlier_window() -> None:
    start = WINTER_WEDNESDAY + timedelta(hours=6)
    sim = SiteSimulator(DEPOT, start)
    sim.set_import_limit(start + timedelta(hours=1), start + timedelta(hours=2), 12.0)
    window = SignalInterval(start + timedelta(hours=3), start + timedelta(hours=4), 30.0, 20.0)
    sim.apply_signal(DrSignal("e", 2, "peak_cut", "active", start, (window,)))
    sim.step(start + timedelta(hours=1, minutes=30))
    assert (sim.state.import_limit_kw, sim.state.import_floor_kw) == (None, None)
    sim.step(start + timedelta(hours=3, minutes=30))
    assert (sim.state.import_limit_kw, sim.state.import_floor_kw) == (30.0, 20.0)
    sim.apply_signal(DrSignal("e", 3, "peak_cut", "cancelled", start, ()))
    sim.step(start + timedelta(hours=3, minutes=40))
    assert (sim.state.import_limit_kw, sim.state.import_floor_kw) == (None, None)


def test_fleet_specs_are_deterministic_and_varied() -> None:
    fleet = fleet_specs(200, seed=4)
    assert fleet == fleet_specs(200, seed=4)
    assert fleet[:50] == fleet_specs(50, seed=4)  # growing the fleet keeps existing sites
    assert fleet[1:] != fleet_specs(200, seed=5)[1:]
    assert fleet[0] == SiteSpec()
    assert [spec.site_id for spec in fleet[1:3]] == ["site-00001", "site-00002"]
    assert len({spec.site_id for spec in fleet}) == 200
    assert any(spec.battery_kwh == 0 for spec in fleet)
    assert any(spec.ev_count == 0 for spec in fleet)
    assert any(spec.battery_kwh > 0 and spec.ev_count > 0 for spec in fleet[1:])


def test_missing_devices_are_omitted() -> None:
    start = datetime(2025, 6, 2, 12, tzinfo=JST)
    sim = SiteSimulator(SiteSpec(site_id="school", battery_kwh=0.0, ev_count=0), start)
    assert sim.devices == {"meter-1": "meter", "pv-1": "pv"}
    assert set(sim.step(start + timedelta(minutes=1))) == {"meter-1", "pv-1"}


def test_same_seed_same_readings_other_seed_other_readings() -> None:
    start = datetime(2025, 6, 2, 19, tzinfo=JST)
    steps_s = [10.0] * 60
    first = [s.readings for s in run(SiteSimulator(DEPOT, start, seed=1), start, steps_s)]
    again = [s.readings for s in run(SiteSimulator(DEPOT, start, seed=1), start, steps_s)]
    other = [s.readings for s in run(SiteSimulator(DEPOT, start, seed=2), start, steps_s)]
    assert first == again
    assert first != other


def test_first_step_at_start_previews_without_advancing() -> None:
    start = datetime(2025, 6, 2, 21, tzinfo=JST)
    sim = SiteSimulator(DEPOT, start)
    preview = sim.step(start)
    assert num(preview["ev-1"], "power_kw") > 0.0
    assert sim.step(start) == preview
    later = sim.step(start + timedelta(seconds=10))
    assert num(later["meter-1"], "import_kwh") > num(preview["meter-1"], "import_kwh")


def test_naive_or_backwards_datetimes_raise() -> None:
    aware = datetime(2025, 6, 2, tzinfo=JST)
    naive = datetime(2025, 6, 2)  # noqa: DTZ001 - the point of the test
    with pytest.raises(ValueError, match="timezone-aware"):
        SiteSimulator(DEPOT, naive)
    sim = SiteSimulator(DEPOT, aware)
    with pytest.raises(ValueError, match="timezone-aware"):
        sim.step(naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        sim.set_import_limit(naive, aware + timedelta(hours=1), 10.0)
    sim.step(aware + timedelta(minutes=1))
    with pytest.raises(ValueError, match="before the previous step"):
        sim.step(aware)


def test_slot_imports_are_the_meter_import_of_each_whole_slot() -> None:
    start = datetime(2026, 11, 20, 0, 10, tzinfo=JST)  # mid-slot: the first slot is not whole
    sim = SiteSimulator(SiteSpec(site_id="depot-a"), start, seed=1)
    counters = {}
    now = start
    while now < start + timedelta(hours=3):
        now += timedelta(minutes=5)
        readings = sim.step(now)
        counters[now] = readings["meter-1"]["import_kwh"]
    slots = sim.slot_imports_kwh(start - timedelta(days=1))
    first = datetime(2026, 11, 20, 0, 30, tzinfo=JST)
    assert sorted(slots) == [first + k * timedelta(minutes=30) for k in range(5)]  # 00:30 .. 02:30
    for slot, kwh in slots.items():
        end = slot + timedelta(minutes=30)
        assert kwh == pytest.approx(counters[end] - counters[slot], abs=1e-9)  # type: ignore[operator]
    assert sim.slot_imports_kwh(first + timedelta(hours=2)) == {
        first + timedelta(hours=2): slots[first + timedelta(hours=2)]
    }
