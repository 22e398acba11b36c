"""A day-ahead irradiance forecast as the PV forecast's input, and what its record at a site says of it.

Without one, a site's PV forecast is clear sky × the clear-sky index of the site's last week: on the DR bench
that misses the day's PV energy with an sd of 22%, and the day's peak programme prices that in (a cloudy day
is the costly case). A utility can buy a day-ahead forecast of global horizontal irradiance (GHI, W/m² per
slot) at grid points. Divided by clear-sky GHI it gives each slot's clear-sky index.

Nothing here trusts a forecast on its word. A site uses one only once its **record** there holds
:data:`MIN_RECORD_DAYS` days: the day-ahead index it forecast, beside the index the site's PV then metered
and beside last week's index (what the site would have used instead). The record gives:
- the site's **bias** (shading, soiling, a model that misses the site's tilt), as the mean ratio of metered to
  forecast index;
- the forecast's **error** at the site (sd of that ratio around the bias), which the peak programme prices in
  instead of the default;
- whether it **beats last week's index** on the same days. Where it does not, the site keeps last week's
  index.

All functions are pure: arrays in, numbers out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from vpp.domain.forecast import CLEAR_SKY_INDEX_MAX

__all__ = [
    "GHI_MAX_W_M2",
    "MIN_PV_ERROR_SD",
    "MIN_RECORD_DAYS",
    "POINT_MAX_DISTANCE_KM",
    "RECORD_DAYS",
    "ForecastRecord",
    "day_index",
    "distance_km",
    "forecast_record",
    "nearest_point",
    "slot_indices",
]

FloatArray = npt.NDArray[np.float64]

GHI_MAX_W_M2 = 1500.0  # above the solar constant's share that reaches the ground: a unit mistake (Wh, kW/m²)
MIN_RECORD_DAYS = 5
RECORD_DAYS = 14
# No day-ahead forecast carries passing clouds: on the bench they alone give PV an sd of about 0.12 of the
# forecast (0.08 over a mean index of 0.65). A record of a few lucky days must not make the programme surer.
MIN_PV_ERROR_SD = 0.12
POINT_MAX_DISTANCE_KM = 25.0  # a grid point further away forecasts another sky
_DAYLIGHT_FRACTION = 0.1  # slots under 10% of the day's clear-sky peak: dawn and dusk ratios blow up
_MIN_FORECAST_INDEX = 0.05  # a forecast this dark makes the metered ÷ forecast ratio meaningless
_EARTH_RADIUS_KM = 6371.0


def _daylight(clear_ghi_w_m2: FloatArray) -> npt.NDArray[np.bool_]:
    peak = float(clear_ghi_w_m2.max()) if clear_ghi_w_m2.size else 0.0
    return clear_ghi_w_m2 >= _DAYLIGHT_FRACTION * peak if peak > 0 else np.zeros(clear_ghi_w_m2.shape, dtype=bool)


def day_index(ghi_forecast_w_m2: npt.ArrayLike, clear_ghi_w_m2: npt.ArrayLike) -> float | None:
    """The day's clear-sky index the forecast gives: its daylight GHI energy ÷ clear sky's; None when a daylight
    slot is missing (NaN) or the day has no daylight."""
    forecast = np.asarray(ghi_forecast_w_m2, dtype=np.float64)
    clear = np.asarray(clear_ghi_w_m2, dtype=np.float64)
    if forecast.shape != clear.shape:
        raise ValueError(f"forecast {forecast.shape} and clear-sky {clear.shape} differ in shape")
    daylight = _daylight(clear)
    if not daylight.any() or np.isnan(forecast[daylight]).any():
        return None
    ratio = float(np.clip(forecast[daylight], 0.0, None).sum() / clear[daylight].sum())
    return min(ratio, CLEAR_SKY_INDEX_MAX)


def slot_indices(ghi_forecast_w_m2: npt.ArrayLike, clear_ghi_w_m2: npt.ArrayLike) -> FloatArray | None:
    """Each slot's clear-sky index (forecast ÷ clear-sky GHI, within [0, 1.2]); at dawn, dusk and night the
    day's index, where a ratio of small numbers says nothing. None when :func:`day_index` is None."""
    index = day_index(ghi_forecast_w_m2, clear_ghi_w_m2)
    if index is None:
        return None
    forecast = np.asarray(ghi_forecast_w_m2, dtype=np.float64)
    clear = np.asarray(clear_ghi_w_m2, dtype=np.float64)
    daylight = _daylight(clear)
    out = np.full(clear.shape, index)
    out[daylight] = np.clip(forecast[daylight] / clear[daylight], 0.0, CLEAR_SKY_INDEX_MAX)
    return out


@dataclass(frozen=True)
class ForecastRecord:
    """What a forecast's record at one site says: see the module's docstring."""

    days: int
    bias: float  # metered ÷ forecast index, mean over the record
    error_sd: float  # sd of metered ÷ (bias × forecast) − 1, at least MIN_PV_ERROR_SD
    persistence_error_sd: float  # the same for last week's index on the same days (no bias: it is the site's own)

    @property
    def usable(self) -> bool:
        """Long enough, and better than last week's index on the same days."""
        return self.days >= MIN_RECORD_DAYS and self.error_sd < self.persistence_error_sd


def forecast_record(
    forecast_index: Sequence[float | None],
    persistence_index: Sequence[float | None],
    metered_index: Sequence[float | None],
) -> ForecastRecord | None:
    """The record from past days' indices (one entry per day; None where a day lacks one): the days with all
    three count. None when no day does."""
    if not len(forecast_index) == len(persistence_index) == len(metered_index):
        raise ValueError("one entry per day in each of forecast, persistence and metered indices")
    rows = [
        (f, p, m) for f, p, m in zip(forecast_index, persistence_index, metered_index, strict=True)
        if f is not None and p is not None and m is not None and f >= _MIN_FORECAST_INDEX and p >= _MIN_FORECAST_INDEX
    ]  # fmt: skip
    if not rows:
        return None
    forecast, persistence, metered = (np.array(column, dtype=np.float64) for column in zip(*rows, strict=True))
    ratio = metered / forecast
    bias = float(ratio.mean())
    if bias <= 0:
        return None
    return ForecastRecord(
        days=len(rows),
        bias=bias,
        error_sd=max(_rms(ratio / bias - 1.0), MIN_PV_ERROR_SD),
        persistence_error_sd=_rms(metered / persistence - 1.0),
    )


def _rms(errors: FloatArray) -> float:
    return float(np.sqrt(np.mean(errors**2)))


def distance_km(latitude_a: float, longitude_a: float, latitude_b: float, longitude_b: float) -> float:
    """Great-circle distance (haversine), km."""
    phi_a, phi_b = math.radians(latitude_a), math.radians(latitude_b)
    d_phi, d_lambda = phi_b - phi_a, math.radians(longitude_b - longitude_a)
    h = math.sin(d_phi / 2) ** 2 + math.cos(phi_a) * math.cos(phi_b) * math.sin(d_lambda / 2) ** 2
    return 2 * _EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def nearest_point(
    latitude: float, longitude: float, points: Sequence[tuple[float, float]], max_km: float = POINT_MAX_DISTANCE_KM
) -> tuple[float, float] | None:
    """The forecast point nearest a site, within ``max_km``; ties go to the first listed."""
    best: tuple[float, float] | None = None
    best_km = max_km
    for point in points:
        km = distance_km(latitude, longitude, *point)
        if km <= best_km and (best is None or km < best_km):
            best, best_km = point, km
    return best
