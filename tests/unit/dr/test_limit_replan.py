"""The peak programme's LP limits for a site with EVs (`vpp.domain.planning.limit_replan`), in milliseconds."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from vpp.domain.planning import EvDemand, SiteFlex, plan_peak_cut, threshold_controller
from vpp.domain.planning.execution import EmsTracker
from vpp.domain.planning.limit_replan import limit_replan_import_kw, owed_ev_demands

FloatArray = npt.NDArray[np.float64]
FLEX = SiteFlex(40.0, 10.0, 20.0, 4.0, 38.0, 0.95, 0.95)
HOURS = np.arange(48, dtype=np.float64) / 2
# 10 kW at night, 14 kW by day, 20 kW from 17:00 to 21:00, no PV.
LOAD_KW: FloatArray = np.where((HOURS < 6) | (HOURS >= 21), 10.0, 14.0) + 6.0 * ((HOURS >= 17) & (HOURS < 21))
PV_KW: FloatArray = np.zeros(48)
# Vans plugged in from 18:00, 60 kWh owed by midnight on a 20 kW charger.
VANS = (EvDemand(60.0, 20.0, 36, 48, "vans"),)


def test_owed_energy_is_the_forecast_need_less_what_was_metered_since_it_became_available() -> None:
    ev_kw = np.zeros(48)
    ev_kw[30:38] = 10.0  # 10 kW from 15:00: only the two slots from 18:00 count against the vans' need
    (owed,) = owed_ev_demands(VANS, ev_kw, 38)
    assert owed.energy_kwh == pytest.approx(60.0 - 10.0)
    assert (owed.available_from_slot, owed.deadline_slot) == (0, 10)  # counted from slot 38
    # Capped by what the charger can still deliver; nothing owed once the deadline has passed.
    (late,) = owed_ev_demands(VANS, np.zeros(48), 46)
    assert late.energy_kwh == pytest.approx(20.0 * 0.5 * 2)
    assert owed_ev_demands(VANS, np.zeros(48), 48) == []


def test_on_a_day_as_forecast_it_holds_the_perfect_foresight_peak_and_every_van_leaves_charged() -> None:
    tracker = EmsTracker(FLEX, VANS)
    imports_kw = limit_replan_import_kw(LOAD_KW, PV_KW, LOAD_KW, PV_KW, VANS, tracker)
    optimum_kw = plan_peak_cut(LOAD_KW.tolist(), PV_KW.tolist(), FLEX, list(VANS), 0.0).peak_import_kw
    unmanaged_kw = threshold_controller(LOAD_KW.tolist(), PV_KW.tolist(), SiteFlex.without_battery(), VANS, 0.0)
    assert imports_kw.max() == pytest.approx(optimum_kw, abs=0.05)
    assert imports_kw.max() < unmanaged_kw.peak_import_kw - 10.0
    assert tracker.ev_remaining_kwh == [pytest.approx(0.0, abs=1e-6)]
    assert tracker.soc_kwh >= FLEX.soc_kwh_initial - 0.01


def test_vans_needing_more_than_forecast_are_still_charged_and_the_limit_follows() -> None:
    actual = (EvDemand(80.0, 20.0, 36, 48, "vans"),)  # 20 kWh more than forecast
    tracker = EmsTracker(FLEX, actual)
    imports_kw = limit_replan_import_kw(LOAD_KW, PV_KW, LOAD_KW, PV_KW, VANS, tracker)
    assert tracker.ev_remaining_kwh == [pytest.approx(0.0, abs=1e-6)]  # a van must leave charged
    as_forecast_kw = limit_replan_import_kw(LOAD_KW, PV_KW, LOAD_KW, PV_KW, VANS, EmsTracker(FLEX, VANS)).max()
    perfect_kw = plan_peak_cut(LOAD_KW.tolist(), PV_KW.tolist(), FLEX, list(actual), 0.0).peak_import_kw
    assert as_forecast_kw < perfect_kw <= imports_kw.max()
