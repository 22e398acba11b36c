from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest

from vpp.domain.calendar import day_type, is_japanese_holiday, is_weekend_or_holiday
from vpp.domain.forecast import (
    EvChargeRequest,
    ForecastError,
    clear_sky_index,
    clear_sky_pv_kw_per_kw,
    ev_energy_needed_kwh,
    pv_forecast_kw,
    similar_day_load_forecast,
)
from vpp.domain.slots import JST, SLOT

KAWASAKI = (35.57, 139.6)


def jst(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=JST)


def day_slots(day: date) -> list[datetime]:
    start = jst(day.year, day.month, day.day)
    return [start + i * SLOT for i in range(48)]


# ------------------------------------------------------------------------------------------ calendar


def test_japanese_public_holidays() -> None:
    assert is_japanese_holiday(date(2026, 11, 23))  # Labour Thanksgiving Day, a Monday
    assert is_japanese_holiday(date(2026, 5, 6))  # substitute holiday for Sunday 3 May
    assert is_japanese_holiday(date(2026, 9, 22))  # national holiday between two holidays
    assert not is_japanese_holiday(date(2026, 11, 24))
    assert not is_japanese_holiday(date(2026, 1, 2))  # closed at many firms, not a public holiday
    assert not is_japanese_holiday(date(2026, 11, 28))  # a Saturday is not a public holiday


def test_day_types() -> None:
    assert is_weekend_or_holiday(date(2026, 11, 28))
    assert day_type(date(2026, 11, 28)) == "holiday"
    assert day_type(date(2026, 11, 23)) == "holiday"
    assert day_type(date(2026, 11, 24)) == "weekday"


def test_calendar_refuses_datetimes_and_unknown_years() -> None:
    with pytest.raises(TypeError, match="calendar date"):
        is_japanese_holiday(jst(2026, 11, 23))
    with pytest.raises(ValueError, match="2100"):
        day_type(date(2100, 1, 4))


# ------------------------------------------------------------------------------------------------ PV

MIDSUMMER = day_slots(date(2026, 6, 21))


def test_clear_sky_pv_is_zero_at_night_and_peaks_at_solar_noon() -> None:
    per_kw = clear_sky_pv_kw_per_kw(MIDSUMMER, *KAWASAKI)
    assert per_kw.shape == (48,)
    # Sunrise ≈ 04:25 and sunset ≈ 19:00 JST in late June.
    assert np.all(per_kw[:8] == 0)  # 00:00-04:00
    assert np.all(per_kw[40:] == 0)  # 20:00-24:00
    # Solar noon at 139.6 E is ≈ 11:43 JST, inside the 11:30-12:00 slot (index 23).
    assert int(np.argmax(per_kw)) == 23
    assert 0.85 < per_kw[23] < 1.05
    # A clear midsummer day on a 20° south-facing plane: about 7-8 kWh per kWp before losses.
    assert 6.0 < per_kw.sum() * 0.5 < 9.0


def test_pv_forecast_scales_linearly() -> None:
    base = pv_forecast_kw(MIDSUMMER, *KAWASAKI, pv_kw=45.0, clear_sky_index=1.0)
    per_kw = clear_sky_pv_kw_per_kw(MIDSUMMER, *KAWASAKI)
    np.testing.assert_allclose(base, per_kw * 45.0 * 0.8)
    np.testing.assert_allclose(pv_forecast_kw(MIDSUMMER, *KAWASAKI, pv_kw=90.0, clear_sky_index=1.0), 2 * base)
    np.testing.assert_allclose(pv_forecast_kw(MIDSUMMER, *KAWASAKI, pv_kw=45.0, clear_sky_index=0.5), 0.5 * base)
    np.testing.assert_allclose(
        pv_forecast_kw(MIDSUMMER, *KAWASAKI, pv_kw=45.0, clear_sky_index=1.0, performance_ratio=0.4), 0.5 * base
    )
    assert 30.0 < base[23] < 38.0  # 45 kWp x ≈0.95 x 0.8 at noon


def test_winter_noon_is_weaker_on_the_horizontal() -> None:
    winter = clear_sky_pv_kw_per_kw(day_slots(date(2026, 12, 21)), *KAWASAKI, surface_tilt_deg=0.0)
    summer = clear_sky_pv_kw_per_kw(MIDSUMMER, *KAWASAKI, surface_tilt_deg=0.0)
    assert 0 < winter[23] < summer[23]
    assert winter.sum() < summer.sum()


def test_monthly_turbidity_and_empty_horizon() -> None:
    scalar = clear_sky_pv_kw_per_kw(MIDSUMMER, *KAWASAKI, linke_turbidity=3.0)
    monthly = clear_sky_pv_kw_per_kw(MIDSUMMER, *KAWASAKI, linke_turbidity=[3.0] * 12)
    np.testing.assert_allclose(scalar, monthly)
    hazier = clear_sky_pv_kw_per_kw(MIDSUMMER, *KAWASAKI, linke_turbidity=5.0)
    assert hazier[23] < scalar[23]
    with pytest.raises(ValueError, match="12 monthly values"):
        clear_sky_pv_kw_per_kw(MIDSUMMER, *KAWASAKI, linke_turbidity=[3.0] * 11)
    assert clear_sky_pv_kw_per_kw([], *KAWASAKI).shape == (0,)


def test_pv_forecast_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        pv_forecast_kw([datetime(2026, 6, 21, 12)], *KAWASAKI, pv_kw=1.0, clear_sky_index=1.0)  # noqa: DTZ001
    with pytest.raises(ValueError, match="pv_kw"):
        pv_forecast_kw(MIDSUMMER, *KAWASAKI, pv_kw=-1.0, clear_sky_index=1.0)
    with pytest.raises(ValueError, match="clear_sky_index"):
        pv_forecast_kw(MIDSUMMER, *KAWASAKI, pv_kw=1.0, clear_sky_index=float("nan"))
    with pytest.raises(ValueError, match="performance_ratio"):
        pv_forecast_kw(MIDSUMMER, *KAWASAKI, pv_kw=1.0, clear_sky_index=1.0, performance_ratio=0.0)


def test_clear_sky_index_is_a_ratio_of_daylight_sums() -> None:
    clear = [0.0, 10.0, 20.0, 10.0, 0.0]
    assert clear_sky_index([0.0, 5.0, 10.0, 5.0, 0.0], clear) == pytest.approx(0.5)
    # Night standby draw and a missing reading are ignored.
    assert clear_sky_index([-0.02, 5.0, 10.0, float("nan"), 0.3], clear) == pytest.approx(15 / 30)
    # Dawn (0.5 < 10 % of the 20 kWh peak) is left out: its ratio of 10 would dominate.
    assert clear_sky_index([5.0, 5.0, 10.0], [0.5, 10.0, 20.0]) == pytest.approx(0.5)


def test_clear_sky_index_clips_and_falls_back() -> None:
    assert clear_sky_index([20.0, 40.0], [10.0, 20.0]) == 1.2
    assert clear_sky_index([0.0, 0.0], [10.0, 20.0]) == 0.0
    assert clear_sky_index([0.0, 0.0], [0.0, 0.0]) == 1.0  # a window of nights
    assert clear_sky_index([], [], default=0.7) == 0.7
    with pytest.raises(ValueError, match="shape"):
        clear_sky_index([1.0], [1.0, 2.0])


# ---------------------------------------------------------------------------------------------- load


def history_from(first: date, last: date) -> dict[date, list[float]]:
    """Each day's 48 slots hold (day of month + 0.1 x slot index) kWh."""
    days = (last - first).days + 1
    return {
        first + timedelta(days=i): [(first + timedelta(days=i)).day + 0.1 * s for s in range(48)] for i in range(days)
    }


def test_weekday_forecast_skips_weekends_and_holidays() -> None:
    history = history_from(date(2026, 11, 16), date(2026, 12, 2))  # includes the target and later days
    forecast = similar_day_load_forecast(history, date(2026, 11, 30))  # a Monday
    # Weekdays before 30 Nov, newest first: 27, 26, 25, 24, (23 is a holiday), 20.
    expected_kwh = (27 + 26 + 25 + 24 + 20) / 5 + 0.1 * np.arange(48)
    np.testing.assert_allclose(forecast, 2 * expected_kwh)
    assert forecast[0] == pytest.approx(48.8)


def test_days_with_missing_data_are_skipped() -> None:
    history = history_from(date(2026, 11, 16), date(2026, 11, 29))
    history[date(2026, 11, 25)][7] = float("nan")
    history[date(2026, 11, 26)] = history[date(2026, 11, 26)][:47]
    forecast = similar_day_load_forecast(history, date(2026, 11, 30))
    assert forecast[0] == pytest.approx(2 * (27 + 24 + 20 + 19 + 18) / 5)


def test_holiday_forecast_uses_weekends_and_holidays() -> None:
    history = history_from(date(2026, 11, 16), date(2026, 11, 28))
    forecast = similar_day_load_forecast(history, date(2026, 11, 29))  # a Sunday
    # Only four such days exist: 28 (Sat), 23 (holiday), 22 (Sun), 21 (Sat).
    assert forecast[0] == pytest.approx(2 * (28 + 23 + 22 + 21) / 4)


def test_lookback_and_no_data() -> None:
    history = history_from(date(2026, 11, 16), date(2026, 11, 29))
    limited = similar_day_load_forecast(history, date(2026, 11, 30), lookback_days=5)  # from 25 Nov
    assert limited[0] == pytest.approx(2 * (27 + 26 + 25) / 3)
    with pytest.raises(ForecastError, match="no complete holiday day"):
        similar_day_load_forecast({date(2026, 11, 24): [1.0] * 48}, date(2026, 11, 29))
    with pytest.raises(ValueError, match="n_days"):
        similar_day_load_forecast(history, date(2026, 11, 30), n_days=0)


# ------------------------------------------------------------------------------------------------ EV


def test_ev_energy_and_deadlines() -> None:
    need = ev_energy_needed_kwh(
        [
            EvChargeRequest(20, 40, 80, jst(2026, 11, 24, 7, 15)),  # 24 kWh, due by the 07:00 slot
            (50, 60, 100, jst(2026, 11, 24, 7, 0)),  # 30 kWh, due 07:00; plain tuples work too
            (90, 40, 80, jst(2026, 11, 24, 6, 0)),  # already above target: nothing needed
            (10, 40, 60, jst(2026, 11, 24, 5, 30).astimezone(UTC)),  # 20 kWh, due 05:30
        ]
    )
    assert need.total_kwh == pytest.approx(74)
    assert need.per_vehicle_kwh == pytest.approx((24, 30, 0, 20))
    assert need.deadlines == (jst(2026, 11, 24, 5, 30), jst(2026, 11, 24, 7))
    assert need.energy_due_kwh == pytest.approx((20, 54))
    horizon = [jst(2026, 11, 24, 4) + i * SLOT for i in range(8)]  # 04:00 .. 07:30
    np.testing.assert_allclose(need.required_by_kwh(horizon), [0, 0, 20, 20, 20, 74, 74, 74])


def test_ev_charge_efficiency_and_empty_fleet() -> None:
    need = ev_energy_needed_kwh([(20, 40, 80, jst(2026, 11, 24, 7))], charge_efficiency=0.8)
    assert need.total_kwh == pytest.approx(30)
    empty = ev_energy_needed_kwh([])
    assert empty.total_kwh == 0
    assert empty.required_by_kwh([jst(2026, 11, 24)]).tolist() == [0.0]


@pytest.mark.parametrize(
    ("vehicle", "message"),
    [
        ((120, 40, 80, jst(2026, 11, 24, 7)), r"0\.\.100"),
        ((20, 0, 80, jst(2026, 11, 24, 7)), "battery_kwh"),
        ((20, 40, 80, datetime(2026, 11, 24, 7)), "timezone-aware"),  # noqa: DTZ001
    ],
)
def test_ev_rejects_bad_vehicles(vehicle: tuple[float, float, float, datetime], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ev_energy_needed_kwh([vehicle])
