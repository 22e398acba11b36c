"""Rolling re-planning (MPC): the forecast is wrong, the re-plans from the measured state recover the target."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pytest

from vpp.domain.plan_execution import (
    LOAD_ERROR_DECAY_PER_SLOT,
    EmsTracker,
    corrected_forecast,
    load_residual_estimate,
    receding_horizon_import_kw,
)
from vpp.domain.planning import EvDemand, Plan, SiteFlex, plan_peak_cut

FloatArray = npt.NDArray[np.float64]
FLEX = SiteFlex(40.0, 10.0, 20.0, 4.0, 38.0, 0.95, 0.95)
HOURS = np.arange(48, dtype=np.float64) / 2
# 13.5 kW all day (little room under the target to charge from the grid) and 19.5 kW from 18:00 to 21:00.
LOAD_KW: FloatArray = (13.5 + 6.0 * ((HOURS >= 18) & (HOURS < 21))).astype(np.float64)
SUNNY_PV_KW: FloatArray = np.clip(25.0 * np.sin((HOURS - 6) / 12 * np.pi), 0.0, None).astype(np.float64)
CLOUDY_PV_KW: FloatArray = (0.3 * SUNNY_PV_KW).astype(np.float64)  # the day turns out overcast
TARGET_KW = 14.0


class ScheduleFollower(EmsTracker):
    """A simple site EMS: it runs the dispatched battery schedule as sent (within power and SoC) and
    corrects nothing itself, so whatever the day brings is up to the platform's re-plans."""

    def step(
        self, t: int, load_kw: float, pv_kw: float, battery_kw: float, ev_kw: Sequence[float], soc_target: float,
        limit_kw: float,
    ) -> float:  # fmt: skip
        flex, dt = self.flex, 0.5
        discharge_max = min(
            flex.battery_power_kw, max(self.soc_kwh - flex.soc_min_kwh, 0.0) * flex.discharge_efficiency / dt
        )
        charge_max = min(
            flex.battery_power_kw, max(flex.soc_max_kwh - self.soc_kwh, 0.0) / (flex.charge_efficiency * dt)
        )
        battery = min(max(battery_kw, -charge_max), discharge_max)
        self.soc_kwh = self._soc_after(battery)
        import_kw = max(load_kw - pv_kw - battery, 0.0)
        self.peak_kw = max(self.peak_kw, import_kw)
        return import_kw


def _replanner(
    load: np.ndarray, pv: np.ndarray, flex: SiteFlex, evs: list[EvDemand], target_kw: float, terminal_kwh: float
) -> Plan:
    return plan_peak_cut(
        load.tolist(), pv.tolist(), flex, evs, max(target_kw, TARGET_KW), terminal_soc_kwh=terminal_kwh,
        reserve_value_per_kwh=0.3,
    )  # fmt: skip


def test_a_cloudy_day_forecast_sunny_misses_the_target_on_the_schedule_and_the_replans_recover_it() -> None:
    day_ahead = plan_peak_cut(LOAD_KW.tolist(), SUNNY_PV_KW.tolist(), FLEX, [], TARGET_KW)
    assert day_ahead.target_met  # on the sunny forecast, PV charges the battery for the evening
    # The day-ahead schedule alone on the real day: the battery charges as planned at midday, but the energy
    # now comes from the grid, on top of the load.
    schedule_only_kw = LOAD_KW - CLOUDY_PV_KW - np.asarray(day_ahead.battery_kw)
    assert schedule_only_kw.max() > TARGET_KW + 1.0

    without = receding_horizon_import_kw(
        LOAD_KW, SUNNY_PV_KW, LOAD_KW, CLOUDY_PV_KW, FLEX, [], day_ahead, _replanner, 0, ScheduleFollower(FLEX, [])
    )
    assert without.max() == pytest.approx(schedule_only_kw.max())

    tracker = ScheduleFollower(FLEX, [])
    imports_kw = receding_horizon_import_kw(
        LOAD_KW, SUNNY_PV_KW, LOAD_KW, CLOUDY_PV_KW, FLEX, [], day_ahead, _replanner, 1, tracker
    )
    assert imports_kw.max() <= TARGET_KW + 1e-6
    assert tracker.soc_kwh >= FLEX.soc_kwh_initial - 1e-6  # and the battery ends the day as full as it began


def test_the_rest_of_the_day_is_corrected_by_what_the_day_has_shown() -> None:
    t = 24  # noon: the morning was overcast and the load has run 20% above forecast since 09:00
    load = LOAD_KW.copy()
    load[18:t] *= 1.2
    rest_load, rest_pv = corrected_forecast(t, LOAD_KW, SUNNY_PV_KW, load, CLOUDY_PV_KW)
    assert rest_pv == pytest.approx(0.3 * SUNNY_PV_KW[t:])  # the measured ratio, kept for the afternoon
    error = load_residual_estimate(LOAD_KW, load, t)[0]
    assert 0.15 < error < 0.2  # three hours of +20% are believed almost fully
    assert rest_load[0] == pytest.approx(LOAD_KW[t] * (1 + error * LOAD_ERROR_DECAY_PER_SLOT))
    assert rest_load[-1] == pytest.approx(LOAD_KW[-1], rel=0.02)  # faded by the evening
    # Before the sun is up there is nothing to learn about PV.
    assert corrected_forecast(8, LOAD_KW, SUNNY_PV_KW, LOAD_KW, CLOUDY_PV_KW)[1] == pytest.approx(SUNNY_PV_KW[8:])


def test_one_noisy_slot_moves_the_forecast_less_than_an_error_that_persists() -> None:
    one_slot, persistent = LOAD_KW.copy(), LOAD_KW * 1.2
    one_slot[23] *= 1.2
    single_kw = corrected_forecast(24, LOAD_KW, SUNNY_PV_KW, one_slot, SUNNY_PV_KW)[0][0]
    lasting_kw = corrected_forecast(24, LOAD_KW, SUNNY_PV_KW, persistent, SUNNY_PV_KW)[0][0]
    assert LOAD_KW[24] < single_kw < LOAD_KW[24] * 1.1 < lasting_kw < LOAD_KW[24] * 1.2
    # The estimate's variance shrinks with every slot measured and is the same whatever the values were.
    assert load_residual_estimate(LOAD_KW, one_slot, 24)[1] == load_residual_estimate(LOAD_KW, persistent, 24)[1]
    assert load_residual_estimate(LOAD_KW, LOAD_KW, 24)[1] < load_residual_estimate(LOAD_KW, LOAD_KW, 1)[1]
    assert load_residual_estimate(LOAD_KW, LOAD_KW, 24)[0] == 0.0  # a forecast that was right stays as it is
