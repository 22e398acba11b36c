"""Deliverable reduction per site and window, on sites where it is known by construction, and allocation by it."""

from __future__ import annotations

import pytest

from vpp.domain.allocation import SiteFlexibility, allocate_regional_request
from vpp.domain.planning import EvDemand, SiteFlex
from vpp.domain.planning.deliverable import plan_window_limit, window_deliverable

SLOTS = 48
WINDOW = (34, 40)  # 17:00–20:00, 3 h
PRICES = [20.0] * SLOTS
NO_PV = [0.0] * SLOTS
MONTHLY_MAX_KW = 12.0


def evening_load(window_kw: float, other_kw: float) -> list[float]:
    return [window_kw if WINDOW[0] <= t < WINDOW[1] else other_kw for t in range(SLOTS)]


def lossless(power_kw: float, soc_kwh: float, soc_max_kwh: float, soc_min_kwh: float = 0.0) -> SiteFlex:
    return SiteFlex(soc_max_kwh, power_kw, soc_kwh, soc_min_kwh, soc_max_kwh, 1.0, 1.0)


# (name, load, flex, evs, window, deliverable kW by construction)
CASES = [
    # Power-limited: a 4 kW battery with plenty of energy, recharged under the cap outside.
    ("power", evening_load(10, 5), lossless(4, 50, 100), [], WINDOW, 4.0),
    # Energy-limited: 6 kWh, already full, over 3 h → 2 kW; recharged after the window (end-SoC rule).
    ("energy", evening_load(10, 5), lossless(10, 6, 6), [], WINDOW, 2.0),
    # Import-limited: the window imports 3 kW, so no battery can take more than 3 kW off it.
    ("import", evening_load(3, 2), lossless(10, 50, 100), [], WINDOW, 3.0),
    # EV charging forecast only in the morning is no flexibility in the evening.
    ("ev-elsewhere", evening_load(10, 5), SiteFlex.without_battery(), [EvDemand(20, 10, 0, 13)], WINDOW, 0.0),
    # EV charging forecast to start in the window (15 kWh at 10 kW on arrival) moves after it, under the cap.
    ("ev-in-window", evening_load(10, 5), SiteFlex.without_battery(), [EvDemand(15, 10, 34, 48)], WINDOW, 10.0),
    # An empty battery at the start of a window at midnight has nothing to give.
    ("empty-at-start", evening_load(10, 5)[::-1], lossless(10, 0, 100), [], (0, 6), 0.0),
]


@pytest.mark.parametrize(("name", "load", "flex", "evs", "window", "expected_kw"), CASES, ids=[c[0] for c in CASES])
def test_deliverable_matches_the_construction(
    name: str, load: list[float], flex: SiteFlex, evs: list[EvDemand], window: tuple[int, int], expected_kw: float
) -> None:
    found = window_deliverable(load, NO_PV, flex, evs, *window, PRICES, MONTHLY_MAX_KW)
    assert found.deliverable_kw == pytest.approx(expected_kw, abs=1e-5)
    # No new peak outside the window: the cap is the month's maximum, or the day's own import without DR there.
    assert found.outside_cap_kw is not None
    assert found.outside_cap_kw >= MONTHLY_MAX_KW
    outside = [kw for t, kw in enumerate(found.plan.import_kw) if not window[0] <= t < window[1]]
    assert max(outside) <= found.outside_cap_kw + 1e-6


def test_allocation_never_exceeds_what_each_site_can_deliver_and_reports_the_rest_as_shortfall() -> None:
    found = {name: window_deliverable(load, NO_PV, flex, evs, *w, PRICES, MONTHLY_MAX_KW)
             for name, load, flex, evs, w, _ in CASES if w == WINDOW}  # fmt: skip
    rows = [SiteFlexibility(name, d.deliverable_kw) for name, d in found.items()]
    total_kw = sum(row.available_kw for row in rows)
    assert total_kw == pytest.approx(4 + 2 + 3 + 0 + 10, abs=1e-4)

    big = allocate_regional_request(100.0, rows)
    for row in rows:
        assert big.allocations_kw[row.site_id] <= row.available_kw + 1e-9
    assert big.shortfall_kw == pytest.approx(100.0 - total_kw, abs=1e-6)

    small = allocate_regional_request(9.5, rows)
    assert small.shortfall_kw == 0.0
    cases = {c[0]: c for c in CASES}
    for row in rows:
        share = small.allocations_kw[row.site_id]
        assert share <= row.available_kw + 1e-9
        _, load, flex, evs, window, _ = cases[row.site_id]
        limit_kw = found[row.site_id].baseline_peak_kw - share
        plan = plan_window_limit(load, NO_PV, flex, evs, *window, limit_kw, PRICES, found[row.site_id].outside_cap_kw)
        assert plan.target_met is True, (row.site_id, plan.status)  # every stored plan reaches its limit
        assert max(plan.import_kw[WINDOW[0] : WINDOW[1]]) <= limit_kw + 1e-6


def test_a_limit_below_the_deliverable_is_planned_and_marked_out_of_reach() -> None:
    load, flex = evening_load(10, 5), lossless(4, 50, 100)
    plan = plan_window_limit(load, NO_PV, flex, [], *WINDOW, 10 - 6.0, PRICES, MONTHLY_MAX_KW)
    assert plan.target_met is False
    assert max(plan.import_kw[34:40]) == pytest.approx(6.0, abs=1e-5)  # 4 kW off, as low as it goes
