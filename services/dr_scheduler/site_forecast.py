"""Forecast a site's JST day from its metered history (the database side of :mod:`.day_ahead`).

Load: similar days of the site's non-EV load (``load_kwh − ev_kwh``). PV: clear sky at the site's
coordinates × capacity × performance ratio × the clear-sky index of the last week's metered PV. EVs: the
fleet's need by departure, forecast as the mean energy of similar days in the morning session
(00:00–06:30 JST) and the evening session (18:00–24:00 JST), at the highest charging power seen.

Where the utility feeds irradiance forecasts (``POST /api/v1/weather/forecasts``) and the day-ahead one's record
at the site beats last week's index, PV is clear sky × that forecast's clear-sky index per slot × the site's
bias, and the forecast's error at the site goes to the peak programme (:mod:`vpp.domain.weather_forecast`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from functools import lru_cache

import numpy as np
import numpy.typing as npt
import psycopg

from vpp.domain.calendar import day_type
from vpp.domain.forecast import CLEAR_SKY_INDEX_MAX, clear_sky_ghi_w_m2, clear_sky_index, clear_sky_pv_kw_per_kw
from vpp.domain.planning import EvDemand
from vpp.domain.slots import SLOT, SLOTS_PER_DAY
from vpp.domain.weather_forecast import RECORD_DAYS, day_index, forecast_record, slot_indices
from vpp.postgres.energy_history import SiteDr, daily_slots, jst_midnight
from vpp.postgres.weather_forecasts import day_ahead_ghi

from .day_ahead import (
    EV_EVENING_FIRST_SLOT,
    EV_MORNING_DEADLINE_SLOT,
    LOAD_LOOKBACK_DAYS,
    SiteForecast,
    forecast_site_day,
)

__all__ = ["PV_FROM_RECENT_PV", "PV_FROM_WEATHER_FORECAST", "SiteDayForecast", "ev_demands", "forecast_from_history"]

FloatArray = npt.NDArray[np.float64]

PERFORMANCE_RATIO = 0.8
CLEAR_SKY_INDEX_DAYS = 7
_DEFAULT_LOCATION = (35.57, 139.6)  # Kawasaki, for sites registered without coordinates


PV_FROM_RECENT_PV, PV_FROM_WEATHER_FORECAST = "recent_pv", "weather_forecast"


@dataclass(frozen=True)
class SiteDayForecast:
    forecast: SiteForecast
    evs: tuple[EvDemand, ...]
    pv_source: str = PV_FROM_RECENT_PV
    pv_error_sd: float | None = None  # the weather forecast's relative error at the site; None: the default's


def _day_slots(day: date) -> list[datetime]:
    start = jst_midnight(day)
    return [start + k * SLOT for k in range(SLOTS_PER_DAY)]


@lru_cache(maxsize=512)
def _clear_sky_day(day: date, latitude: float, longitude: float) -> tuple[float, ...]:
    # Sites within ~10 km share a table (rounded coordinates): solar geometry barely differs.
    return tuple(clear_sky_pv_kw_per_kw(_day_slots(day), latitude, longitude).tolist())


@lru_cache(maxsize=512)
def _clear_ghi_day(day: date, latitude: float, longitude: float) -> tuple[float, ...]:
    return tuple(clear_sky_ghi_w_m2(_day_slots(day), latitude, longitude).tolist())


def _location(site: SiteDr) -> tuple[float, float]:
    if site.latitude is None or site.longitude is None:
        return _DEFAULT_LOCATION
    return round(site.latitude, 1), round(site.longitude, 1)


def forecast_from_history(conn: psycopg.Connection, site: SiteDr, day: date) -> SiteDayForecast:
    """Forecast ``day`` for ``site``; raises :class:`vpp.domain.forecast.ForecastError` without history."""
    first = day - timedelta(days=LOAD_LOOKBACK_DAYS)
    last = day - timedelta(days=1)
    load = daily_slots(conn, site.site_pk, first, last, "load_kwh")
    ev = daily_slots(conn, site.site_pk, first, last, "ev_kwh")
    non_ev: dict[date, list[float]] = {}
    for d, values in load.items():
        ev_values = ev.get(d, [0.0] * SLOTS_PER_DAY)
        if all(v is not None for v in values):
            non_ev[d] = [max(float(v or 0.0) - float(e or 0.0), 0.0) for v, e in zip(values, ev_values, strict=True)]
    lat, lon = _location(site)
    # The last week's PV for the index, and before it the weather forecast's record (each record day's own
    # last week included, for the index it would have used instead).
    history_days = [day - timedelta(days=k) for k in range(RECORD_DAYS + CLEAR_SKY_INDEX_DAYS, 0, -1)]
    pv = daily_slots(conn, site.site_pk, history_days[0], history_days[-1], "pv_kwh")
    measured = {d: np.array(pv.get(d, [None] * SLOTS_PER_DAY), dtype=float) for d in history_days}
    clear_kwh = {d: np.array(_clear_sky_day(d, lat, lon)) * site.pv_kw * PERFORMANCE_RATIO * 0.5 for d in history_days}
    pv_days = history_days[-CLEAR_SKY_INDEX_DAYS:]
    forecast = forecast_site_day(
        non_ev, day, np.array(_clear_sky_day(day, lat, lon)), site.pv_kw,
        np.concatenate([measured[d] for d in pv_days]), np.concatenate([clear_kwh[d] for d in pv_days]),
        PERFORMANCE_RATIO,
    )  # fmt: skip
    evs = ev_demands(ev, day)
    if site.pv_kw > 0:
        weather = _weather_forecast(conn, forecast, day, lat, lon, site.pv_kw, measured, clear_kwh)
        if weather is not None:
            return replace(weather, evs=evs)
    return SiteDayForecast(forecast, evs)


def _weather_forecast(
    conn: psycopg.Connection,
    forecast: SiteForecast,
    day: date,
    lat: float,
    lon: float,
    pv_kw: float,
    measured: dict[date, FloatArray],
    clear_kwh: dict[date, FloatArray],
) -> SiteDayForecast | None:
    """The day's forecast with PV from the day-ahead irradiance forecast, when its record at the site says so."""
    record_days = [day - timedelta(days=k) for k in range(RECORD_DAYS, 0, -1)]
    _point, ghi = day_ahead_ghi(conn, lat, lon, [*record_days, day])
    if day not in ghi:
        return None
    indices = slot_indices(ghi[day], np.array(_clear_ghi_day(day, lat, lon)))
    if indices is None:
        return None

    def metered(days: list[date]) -> float | None:
        index = clear_sky_index(np.concatenate([measured[d] for d in days]),
                                np.concatenate([clear_kwh[d] for d in days]), default=float("nan"))  # fmt: skip
        return None if np.isnan(index) else index

    record = forecast_record(
        [day_index(ghi[d], np.array(_clear_ghi_day(d, lat, lon))) if d in ghi else None for d in record_days],
        [metered([d - timedelta(days=k) for k in range(CLEAR_SKY_INDEX_DAYS, 0, -1)]) for d in record_days],
        [metered([d]) for d in record_days],
    )
    if record is None or not record.usable:
        return None
    site_indices = np.clip(indices * record.bias, 0.0, CLEAR_SKY_INDEX_MAX)
    pv = pv_kw * PERFORMANCE_RATIO * site_indices * np.array(_clear_sky_day(day, lat, lon))
    index = day_index(ghi[day], np.array(_clear_ghi_day(day, lat, lon)))
    assert index is not None  # slot_indices is not None
    site_forecast = replace(forecast, pv_kw=pv, clear_sky_index=min(index * record.bias, CLEAR_SKY_INDEX_MAX))
    return SiteDayForecast(site_forecast, (), PV_FROM_WEATHER_FORECAST, record.error_sd)


def ev_demands(ev: dict[date, list[float | None]], day: date) -> tuple[EvDemand, ...]:
    similar = [
        np.array(values, dtype=float) for d, values in sorted(ev.items(), reverse=True)
        if day_type(d) == day_type(day) and all(v is not None for v in values)
    ][:5]  # fmt: skip
    if not similar:
        return ()
    mean_kwh = np.mean(similar, axis=0)
    power_kw = float(np.max(similar)) / 0.5
    if power_kw <= 0:
        return ()
    morning = float(mean_kwh[:EV_MORNING_DEADLINE_SLOT].sum())
    evening = float(mean_kwh[EV_EVENING_FIRST_SLOT:].sum())
    out = []
    if morning > 0:
        out.append(EvDemand(min(morning, power_kw * 0.5 * EV_MORNING_DEADLINE_SLOT), power_kw, 0,
                            EV_MORNING_DEADLINE_SLOT, "morning"))  # fmt: skip
    if evening > 0:
        slots = SLOTS_PER_DAY - EV_EVENING_FIRST_SLOT
        out.append(EvDemand(min(evening, power_kw * 0.5 * slots), power_kw, EV_EVENING_FIRST_SLOT, SLOTS_PER_DAY,
                            "evening"))  # fmt: skip
    return tuple(out)
