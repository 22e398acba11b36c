"""The stochastic peak-cut programme: exact when nothing is uncertain, holding back as the net load runs high.

Whether it beats the LP re-planner is a statistical question, answered on `vpp bench dr` (500 battery-only
site-days); on single constructed days either can win.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from vpp.domain.planning import EvDemand, Plan, SiteFlex, plan_peak_cut
from vpp.domain.planning.execution import EmsTracker
from vpp.domain.planning.stochastic import (
    ResidualModel,
    net_error_estimate,
    peak_range_kw,
    solve_peak_values,
    stochastic_import_kw,
)

FloatArray = npt.NDArray[np.float64]
FLEX = SiteFlex(40.0, 10.0, 20.0, 4.0, 38.0, 0.95, 0.95)
HOURS = np.arange(48, dtype=np.float64) / 2
# 10 kW at night, 14 kW by day, 20 kW from 17:00 to 21:00; PV at noon.
FORECAST_KW: FloatArray = np.where((HOURS < 6) | (HOURS >= 21), 10.0, 14.0) + 6.0 * ((HOURS >= 17) & (HOURS < 21))
PV_KW: FloatArray = np.maximum(8.0 * np.cos((HOURS - 12.0) / 12.0 * np.pi) - 2.0, 0.0)
CERTAIN = ResidualModel(0.9, 1e-6, 1e-6, 0.97, 1e-6)


def _lp(load: FloatArray, pv: FloatArray, terminal_kwh: float = FLEX.soc_kwh_initial) -> Plan:
    return plan_peak_cut(load.tolist(), pv.tolist(), FLEX, [], 0.0, terminal_soc_kwh=terminal_kwh)


def test_when_the_forecast_is_certain_it_reaches_the_lp_optimum_within_a_grid_step() -> None:
    optimum_kw = _lp(FORECAST_KW, PV_KW).peak_import_kw
    peaks = peak_range_kw(FORECAST_KW, PV_KW, optimum_kw)
    step_kw = (peaks[1] - peaks[0]) / 60
    solved = solve_peak_values(FORECAST_KW, PV_KW, FLEX, peaks, FLEX.soc_kwh_initial, CERTAIN)
    # The programme's own value of the day (peak so far 0, under the grid: its bottom) is the optimum ...
    expected_kw = float(solved.value(0, np.array(FLEX.soc_kwh_initial), np.array(0.0), np.array(0.0)))
    assert optimum_kw - 1e-6 <= expected_kw <= optimum_kw + step_kw
    # ... and its policy, run by the EMS on that day, achieves it and ends the day as full as it began.
    tracker = EmsTracker(FLEX, [])
    imports_kw = stochastic_import_kw(FORECAST_KW, PV_KW, FORECAST_KW, PV_KW, FLEX, optimum_kw, tracker, model=CERTAIN)
    assert optimum_kw - 1e-6 <= imports_kw.max() <= optimum_kw + step_kw
    assert tracker.soc_kwh >= FLEX.soc_kwh_initial - 0.1


def test_it_holds_back_more_the_further_the_net_load_runs_above_forecast() -> None:
    day_ahead = _lp(FORECAST_KW, PV_KW)
    peaks = peak_range_kw(FORECAST_KW, PV_KW, day_ahead.peak_import_kw)
    solved = solve_peak_values(FORECAST_KW, PV_KW, FLEX, peaks, FLEX.soc_kwh_initial, ResidualModel())
    # 17:30, the evening peak under way, the battery half full, the peak so far under the plan's level.
    t, soc_kwh, peak_kw = 35, 20.0, 12.0
    limits_kw = [solved.limit_kw(t, soc_kwh, peak_kw, drift) for drift in (-2.0, 0.0, 2.0)]
    # A net load running above forecast (in sd units of its persistent error) is expected to stay above it:
    # the limit rises with it, spending less of the battery now; running below, it falls.
    assert limits_kw[0] < limits_kw[1] < limits_kw[2], limits_kw
    # With more energy in the battery the same evening needs a lower limit, never a higher one.
    assert solved.limit_kw(t, 30.0, peak_kw, 0.0) <= limits_kw[1]
    # The limit never falls below the peak already set: lowering it would only spend energy for nothing.
    assert solved.limit_kw(t, soc_kwh, 19.0, 0.0) >= 19.0

    # A service releases the slots it has passed: the same limits from what it keeps, and the day's arrays
    # before the slot after are gone (asking for them is an error, not a silent zero).
    kept = solved.released_before(t + 1)
    assert [kept.limit_kw(t, soc_kwh, peak_kw, drift) for drift in (-2.0, 0.0, 2.0)] == limits_kw
    assert sum(v.nbytes for v in kept.values) < 0.3 * sum(v.nbytes for v in solved.values)
    with pytest.raises(ValueError, match="released"):
        kept.limit_kw(t - 1, soc_kwh, peak_kw, 0.0)


def test_sites_with_evs_or_without_a_battery_are_refused() -> None:
    with pytest.raises(ValueError, match="EV"):
        stochastic_import_kw(
            FORECAST_KW, PV_KW, FORECAST_KW, PV_KW, FLEX, 15.0, EmsTracker(FLEX, [EvDemand(5.0, 7.0, 0, 12, "van")])
        )
    with pytest.raises(ValueError, match="battery"):
        solve_peak_values(FORECAST_KW, PV_KW, SiteFlex.without_battery(), (5.0, 30.0), 0.0)


def test_a_slot_not_metered_carries_no_evidence_about_the_net_load_error() -> None:
    model = ResidualModel()
    high_kw = FORECAST_KW * 1.2  # the morning runs 20% above forecast
    measured = net_error_estimate(FORECAST_KW, PV_KW, high_kw, PV_KW, 20, model)
    assert measured > 1.0
    # The last slot missing: the estimate decays through it instead of reading "exactly as forecast".
    gap = high_kw.copy()
    gap[19] = np.nan
    with_gap = net_error_estimate(FORECAST_KW, PV_KW, gap, PV_KW, 20, model)
    as_forecast = high_kw.copy()
    as_forecast[19] = FORECAST_KW[19]
    as_forecast_estimate = net_error_estimate(FORECAST_KW, PV_KW, as_forecast, PV_KW, 20, model)
    assert with_gap == pytest.approx(measured, abs=0.1)
    assert as_forecast_estimate < 0.6 * measured
    # Nothing metered at all: no evidence, no error.
    nothing = np.full(48, np.nan)
    assert net_error_estimate(FORECAST_KW, PV_KW, nothing, nothing, 20, model) == 0.0
