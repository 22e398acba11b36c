"""Day-ahead forecast → plan for one site, the step the scheduler and the benchmark share.

Forecasts (:mod:`vpp.domain.forecast`): load from similar days (weekday versus weekend/holiday), PV as
clear sky × capacity × performance ratio × the site's recent clear-sky index; EV fleet energy needed by
departure as :class:`EvDemand` windows. The planner is :func:`vpp.domain.planning.plan_peak_cut`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt

from vpp.domain.forecast import clear_sky_index, similar_day_load_forecast
from vpp.domain.planning import EvDemand, Plan, SiteFlex, plan_peak_cut

__all__ = ["SiteForecast", "forecast_site_day", "plan_site_day", "site_flex"]

FloatArray = npt.NDArray[np.float64]

SIMILAR_DAYS = 5
LOAD_LOOKBACK_DAYS = 21
SOC_MIN_FRACTION, SOC_MAX_FRACTION, SOC_START_FRACTION = 0.10, 0.95, 0.50
BATTERY_EFFICIENCY = 0.92
# Depot EV sessions (vans back from 18:00 JST, charged by 06:30 JST): a JST day holds the morning part of
# last night's session and the evening part of tonight's.
EV_MORNING_DEADLINE_SLOT = 13
EV_EVENING_FIRST_SLOT = 36


@dataclass(frozen=True)
class SiteForecast:
    load_kw: FloatArray  # non-EV load, 48 slots
    pv_kw: FloatArray
    clear_sky_index: float


def site_flex(battery_kwh: float, battery_kw: float, soc_kwh: float | None = None) -> SiteFlex:
    """The battery as the planner sees it: 10–95% usable, starting at ``soc_kwh`` (default 50%)."""
    if battery_kwh <= 0 or battery_kw <= 0:
        return SiteFlex.without_battery()
    soc_min, soc_max = SOC_MIN_FRACTION * battery_kwh, SOC_MAX_FRACTION * battery_kwh
    start = SOC_START_FRACTION * battery_kwh if soc_kwh is None else min(max(soc_kwh, soc_min), soc_max)
    return SiteFlex(
        battery_kwh,
        battery_kw,
        start,
        soc_min,
        soc_max,
        charge_efficiency=BATTERY_EFFICIENCY,
        discharge_efficiency=BATTERY_EFFICIENCY,
    )


def forecast_site_day(
    load_history_kwh: Mapping[date, Sequence[float]],
    day: date,
    clear_sky_kw_per_kw: FloatArray,
    pv_capacity_kw: float,
    recent_pv_kwh: npt.ArrayLike,
    recent_clear_sky_kwh: npt.ArrayLike,
    performance_ratio: float = 0.8,
) -> SiteForecast:
    """Forecast one JST day (48 slots) for a site.

    ``clear_sky_kw_per_kw`` is :func:`vpp.domain.forecast.clear_sky_pv_kw_per_kw` for the day's slots,
    computed once for the region (the result is linear in capacity); ``recent_*`` are the last day(s)
    of measured PV and the matching clear-sky energy, kWh, for the clear-sky index.
    """
    load_kw = similar_day_load_forecast(load_history_kwh, day, SIMILAR_DAYS, lookback_days=LOAD_LOOKBACK_DAYS)
    index = clear_sky_index(recent_pv_kwh, recent_clear_sky_kwh)
    pv_kw = pv_capacity_kw * performance_ratio * index * np.asarray(clear_sky_kw_per_kw, dtype=float)
    return SiteForecast(load_kw, pv_kw, index)


def plan_site_day(
    forecast: SiteForecast,
    flex: SiteFlex,
    evs: Sequence[EvDemand],
    target_kw: float = 0.0,
) -> Plan:
    """Peak-cut plan for the day: keep import ≤ ``target_kw``; at 0 this is the lowest achievable peak."""
    return plan_peak_cut(forecast.load_kw.tolist(), forecast.pv_kw.tolist(), flex, evs, target_kw)
