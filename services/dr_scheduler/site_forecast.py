"""Forecast a site's JST day from its metered history (the database side of :mod:`.day_ahead`).

Load: similar days of the site's non-EV load (``load_kwh − ev_kwh``). PV: clear sky at the site's
coordinates × capacity × performance ratio × the clear-sky index of the last week's metered PV. EVs: the
fleet's need by departure, forecast as the mean energy of similar days in the morning session
(00:00–06:30 JST) and the evening session (18:00–24:00 JST), at the highest charging power seen.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache

import numpy as np
import psycopg

from vpp.domain.calendar import day_type
from vpp.domain.forecast import clear_sky_pv_kw_per_kw
from vpp.domain.planning import EvDemand
from vpp.domain.slots import SLOT, SLOTS_PER_DAY
from vpp.postgres.energy_history import SiteDr, daily_slots, jst_midnight

from .day_ahead import (
    EV_EVENING_FIRST_SLOT,
    EV_MORNING_DEADLINE_SLOT,
    LOAD_LOOKBACK_DAYS,
    SiteForecast,
    forecast_site_day,
)

__all__ = ["SiteDayForecast", "ev_demands", "forecast_from_history"]

PERFORMANCE_RATIO = 0.8
CLEAR_SKY_INDEX_DAYS = 7
_DEFAULT_LOCATION = (35.57, 139.6)  # Kawasaki, for sites registered without coordinates


@dataclass(frozen=True)
class SiteDayForecast:
    forecast: SiteForecast
    evs: tuple[EvDemand, ...]


@lru_cache(maxsize=512)
def _clear_sky_day(day: date, latitude: float, longitude: float) -> tuple[float, ...]:
    # Sites within ~10 km share a table (rounded coordinates): solar geometry barely differs.
    start = jst_midnight(day)
    slots = [start + k * SLOT for k in range(SLOTS_PER_DAY)]
    return tuple(clear_sky_pv_kw_per_kw(slots, latitude, longitude).tolist())


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
    pv_days = [day - timedelta(days=k) for k in range(CLEAR_SKY_INDEX_DAYS, 0, -1)]
    pv = daily_slots(conn, site.site_pk, pv_days[0], pv_days[-1], "pv_kwh")
    measured = np.array([pv.get(d, [None] * SLOTS_PER_DAY) for d in pv_days], dtype=float).ravel()
    clear_kwh = np.array([_clear_sky_day(d, lat, lon) for d in pv_days]).ravel() * site.pv_kw * PERFORMANCE_RATIO * 0.5
    forecast = forecast_site_day(
        non_ev, day, np.array(_clear_sky_day(day, lat, lon)), site.pv_kw, measured, clear_kwh, PERFORMANCE_RATIO
    )
    return SiteDayForecast(forecast, ev_demands(ev, day))


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
