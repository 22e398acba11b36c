"""Simulated 30-minute history for the DR benchmark: per site, load, PV and EV energy for every JST day.

No database: arrays are synthesised from the fleet the depot simulator defines
(:func:`vpp.simulation.spec.fleet_specs`) with the simulator's load shape (working versus off days,
Japanese holidays included) and a clear-sky PV model scaled by a cloud index that has a regional
day-to-day component, a site component and passing clouds. Every site's data depend only on
(seed, site index), so any process can rebuild exactly the same arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
import numpy.typing as npt

from services.dr_scheduler.day_ahead import EV_EVENING_FIRST_SLOT, EV_MORNING_DEADLINE_SLOT
from vpp.domain.forecast import clear_sky_pv_kw_per_kw
from vpp.domain.slots import JST, SLOTS_PER_DAY
from vpp.simulation.load import is_off_day, load_factor
from vpp.simulation.spec import SiteSpec, fleet_specs

__all__ = ["EV_EVENING_FIRST_SLOT", "EV_MORNING_DEADLINE_SLOT", "FleetHistory", "simulate_fleet"]

FloatArray = npt.NDArray[np.float64]

PERFORMANCE_RATIO = 0.8
# Of an overnight session (18:00 to 06:30, 25 slots), the part before midnight falls in the evening's day.
EV_EVENING_SHARE = (SLOTS_PER_DAY - EV_EVENING_FIRST_SLOT) / (
    SLOTS_PER_DAY - EV_EVENING_FIRST_SLOT + EV_MORNING_DEADLINE_SLOT
)
_KAWASAKI = (35.57, 139.6)
# Load noise: a persistent part (AR(1) per 30-minute slot) and slot-to-slot white noise.
LOAD_PERSISTENT_SD = 0.08
LOAD_PERSISTENCE_PER_SLOT = 0.9
LOAD_NOISE_SD = 0.06
# PV: clear sky × a site's clear-sky index, which is its mean + the day's weather (shared by the region in part)
# + passing clouds (clear-sky index units, AR(1) per slot).
PASSING_CLOUD_SD = 0.08
PASSING_CLOUD_PERSISTENCE_PER_SLOT = 0.6


@dataclass(frozen=True)
class FleetHistory:
    """Per site (axis 0) and JST day (axis 1): 48 slot values, kW (slot average).

    ``ev_kwh[s, d]`` is the energy the site's vans need for the session starting on the evening of
    day ``d``; ``clear_sky_kw_per_kw[d]`` is shared by every site (they lie within ~30 km).
    """

    specs: tuple[SiteSpec, ...]
    days: tuple[date, ...]
    load_kw: FloatArray  # (sites, days, 48)
    pv_kw: FloatArray  # (sites, days, 48)
    ev_kwh: FloatArray  # (sites, days)
    clear_sky_kw_per_kw: FloatArray  # (days, 48), before the performance ratio
    # The simulator's own load model, for the benchmark's forecast ceiling (never seen by the forecasts):
    # the expected load (base × shape) and the persistent relative error (the AR(1) part of the noise).
    expected_load_kw: FloatArray  # (sites, days, 48)
    load_persistent_error: FloatArray  # (sites, days, 48)


def _load_shapes(days: tuple[date, ...]) -> FloatArray:
    epoch = date(1970, 1, 1)
    hours = (np.arange(SLOTS_PER_DAY) + 0.5) / 2.0
    shapes = np.empty((len(days), SLOTS_PER_DAY))
    for index, day in enumerate(days):
        off_day = is_off_day((day - epoch).days)
        shapes[index] = [load_factor(float(hour), off_day) for hour in hours]
    return shapes


def _ar1(rng: np.random.Generator, shape: tuple[int, ...], rho: float) -> FloatArray:
    """Unit-variance AR(1) noise along the last axis."""
    shocks = rng.standard_normal(shape)
    out = np.empty(shape)
    out[..., 0] = shocks[..., 0]
    scale = np.sqrt(1 - rho * rho)
    for t in range(1, shape[-1]):
        out[..., t] = rho * out[..., t - 1] + scale * shocks[..., t]
    return out


def simulate_fleet(sites: int, first_day: date, days: int, seed: int = 0) -> FleetHistory:
    """Synthesise ``days`` JST days from ``first_day`` for the first ``sites`` sites of the fleet."""
    specs = tuple(fleet_specs(sites, seed))
    day_list = tuple(first_day + timedelta(days=k) for k in range(days))
    start = datetime.combine(first_day, datetime.min.time(), JST).astimezone(UTC)
    slot_starts = [start + timedelta(minutes=30 * k) for k in range(days * SLOTS_PER_DAY)]
    clear = clear_sky_pv_kw_per_kw(slot_starts, *_KAWASAKI).reshape(days, SLOTS_PER_DAY)
    shapes = _load_shapes(day_list)

    rng = np.random.default_rng([seed, 0xDA7A])
    regional_weather = _ar1(rng, (days,), 0.5)  # day-to-day cloudiness shared by the region
    n = len(specs)
    base = np.array([s.base_load_kw for s in specs])
    persistent = LOAD_PERSISTENT_SD * _ar1(rng, (n, days * SLOTS_PER_DAY), LOAD_PERSISTENCE_PER_SLOT)
    load_noise = 1.0 + persistent + LOAD_NOISE_SD * rng.standard_normal((n, days * SLOTS_PER_DAY))
    expected_load_kw = base[:, None, None] * shapes[None]
    load_kw = expected_load_kw * np.clip(load_noise, 0.2, None).reshape(n, days, SLOTS_PER_DAY)

    cloudiness = np.array([s.cloudiness for s in specs])
    mean_index = 0.15 + 0.85 * (1.0 - cloudiness) ** 1.5
    site_daily = 0.6 * regional_weather[None, :] + 0.4 * rng.standard_normal((n, days))
    passing = _ar1(rng, (n, days * SLOTS_PER_DAY), PASSING_CLOUD_PERSISTENCE_PER_SLOT).reshape(n, days, SLOTS_PER_DAY)
    index = mean_index[:, None, None] + 0.25 * site_daily[..., None] + PASSING_CLOUD_SD * passing
    pv_capacity = np.array([s.pv_kw for s in specs])
    pv_kw = pv_capacity[:, None, None] * PERFORMANCE_RATIO * clear[None] * np.clip(index, 0.1, 1.0)

    fleet_kwh = np.array([s.ev_count * s.ev_daily_kwh for s in specs])
    vans = np.maximum([s.ev_count for s in specs], 1)
    # Each van's need is uniform in ±40% of the mean; the fleet's spread shrinks with its size.
    ev_spread = 0.4 / np.sqrt(3 * vans)
    ev_kwh = fleet_kwh[:, None] * np.clip(1 + ev_spread[:, None] * rng.standard_normal((n, days)), 0.2, None)
    return FleetHistory(
        specs, day_list, load_kw, pv_kw, ev_kwh, clear, expected_load_kw, persistent.reshape(n, days, SLOTS_PER_DAY)
    )
