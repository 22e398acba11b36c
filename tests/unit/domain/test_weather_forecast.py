from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest

from vpp.domain.forecast import clear_sky_ghi_w_m2, clear_sky_pv_kw_per_kw
from vpp.domain.slots import JST, SLOT
from vpp.domain.weather_forecast import (
    MIN_PV_ERROR_SD,
    MIN_RECORD_DAYS,
    day_index,
    distance_km,
    forecast_record,
    nearest_point,
    slot_indices,
)

KAWASAKI = (35.57, 139.6)
JUNE_21 = [datetime(2026, 6, 21, tzinfo=JST) + k * SLOT for k in range(48)]


def test_clear_sky_ghi_is_zero_at_night_and_peaks_near_noon_below_the_solar_constant() -> None:
    ghi = clear_sky_ghi_w_m2(JUNE_21, *KAWASAKI)
    assert ghi[:8].max() == 0
    assert ghi[40:].max() == 0
    assert 22 <= int(np.argmax(ghi)) <= 24  # 11:00–12:30 JST (Kawasaki lies east of 135°E)
    assert 900 < ghi.max() < 1100
    # the PV model's plane-of-array irradiance comes from the same sky: both zero in the same slots
    assert np.array_equal(ghi > 0, clear_sky_pv_kw_per_kw(JUNE_21, *KAWASAKI) > 0)


def test_a_forecast_of_clear_sky_gives_index_one_and_half_of_it_half() -> None:
    clear = clear_sky_ghi_w_m2(JUNE_21, *KAWASAKI)
    assert day_index(clear, clear) == pytest.approx(1.0)
    assert day_index(clear * 0.5, clear) == pytest.approx(0.5)
    slots = slot_indices(clear * 0.5, clear)
    assert slots is not None
    assert np.allclose(slots, 0.5)


def test_slot_indices_follow_the_forecast_by_day_and_use_the_days_index_at_dawn_dusk_and_night() -> None:
    clear = clear_sky_ghi_w_m2(JUNE_21, *KAWASAKI)
    forecast = clear.copy()
    forecast[20:30] *= 0.2  # a cloudy late morning and early afternoon
    slots = slot_indices(forecast, clear)
    assert slots is not None
    assert np.allclose(slots[20:30], 0.2)
    daylight = clear >= 0.1 * clear.max()
    index = day_index(forecast, clear)
    assert index is not None
    assert np.allclose(slots[~daylight], index)
    assert np.allclose(slots[daylight & (np.arange(48) < 20)], 1.0)


def test_a_missing_daylight_slot_leaves_no_index_but_a_missing_night_slot_does_not_matter() -> None:
    clear = clear_sky_ghi_w_m2(JUNE_21, *KAWASAKI)
    night_gap, day_gap = clear.copy(), clear.copy()
    night_gap[0] = np.nan
    day_gap[24] = np.nan
    assert day_index(night_gap, clear) == pytest.approx(1.0)
    assert day_index(day_gap, clear) is None
    assert slot_indices(day_gap, clear) is None
    assert day_index(np.zeros(48), np.zeros(48)) is None  # no daylight at all


def test_an_index_above_clear_sky_is_clipped_to_cloud_edge_enhancement() -> None:
    clear = clear_sky_ghi_w_m2(JUNE_21, *KAWASAKI)
    assert day_index(clear * 3, clear) == pytest.approx(1.2)
    slots = slot_indices(clear * 3, clear)
    assert slots is not None
    assert slots.max() == pytest.approx(1.2)


def test_the_record_learns_the_sites_bias_and_the_forecasts_error_around_it() -> None:
    rng = np.random.default_rng(3)
    forecast = rng.uniform(0.3, 1.0, 14)
    error = rng.normal(0.0, 0.15, 14)
    metered = 0.8 * forecast * (1 + error)  # the site sees 80% of what the forecast's sky would give
    persistence = np.roll(metered, 1) * rng.uniform(0.6, 1.4, 14)  # last week's index: a poor guess
    record = forecast_record(list(forecast), list(persistence), list(metered))
    assert record is not None
    assert record.days == 14
    assert record.bias == pytest.approx(0.8 * (1 + error.mean()))
    ratio = metered / forecast
    assert record.error_sd == pytest.approx(max(float(np.std(ratio / ratio.mean())), MIN_PV_ERROR_SD))
    assert record.error_sd < record.persistence_error_sd
    assert record.usable


def test_a_forecast_no_better_than_last_weeks_index_or_too_short_a_record_is_not_used() -> None:
    metered = [0.5, 0.9, 0.3, 0.8, 0.6, 0.7]
    # the forecast says the opposite of what came; last week's index happened to be right
    worse = forecast_record([1.1 - m for m in metered], metered, metered)
    assert worse is not None
    assert not worse.usable
    short = forecast_record(
        metered[: MIN_RECORD_DAYS - 1], [0.6] * (MIN_RECORD_DAYS - 1), metered[: MIN_RECORD_DAYS - 1]
    )
    assert short is not None
    assert short.error_sd == MIN_PV_ERROR_SD
    assert not short.usable


def test_days_missing_an_index_or_with_a_dark_forecast_do_not_count() -> None:
    record = forecast_record([0.5, None, 0.01, 0.6], [0.5, 0.5, 0.5, None], [0.5, 0.6, 0.4, 0.6])
    assert record is not None
    assert record.days == 1
    assert forecast_record([None], [0.5], [0.5]) is None
    with pytest.raises(ValueError, match="one entry per day"):
        forecast_record([0.5], [0.5, 0.5], [0.5])


def test_the_nearest_point_within_reach_is_chosen() -> None:
    assert distance_km(35.57, 139.6, 35.57, 139.6) == 0
    # Kawasaki station to Tokyo station, about 18 km
    assert distance_km(35.531, 139.697, 35.681, 139.767) == pytest.approx(17.9, abs=0.5)
    points = [(35.0, 139.0), (35.6, 139.6), (35.5, 139.7)]
    assert nearest_point(35.57, 139.62, points) == (35.6, 139.6)
    assert nearest_point(36.5, 139.6, points) is None  # ~100 km away
    assert nearest_point(35.57, 139.6, []) is None
