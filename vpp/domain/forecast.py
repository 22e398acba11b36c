"""Next-48-slot forecasts for a site: PV output, load and the energy EVs need before they leave.

All functions are pure: weather and history come in as arguments, arrays go out. Results are
average power per slot in kW (slot energy in kWh = kW x 0.5).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
import pandas as pd
import pvlib

from vpp.domain.calendar import day_type
from vpp.domain.slots import SLOT, SLOTS_PER_DAY, require_aware, slot_start

__all__ = [
    "CLEAR_SKY_INDEX_MAX",
    "EvChargeRequest",
    "EvEnergyNeed",
    "ForecastError",
    "clear_sky_ghi_w_m2",
    "clear_sky_index",
    "clear_sky_pv_kw_per_kw",
    "ev_energy_needed_kwh",
    "pv_forecast_kw",
    "similar_day_load_forecast",
]

FloatArray = npt.NDArray[np.float64]

CLEAR_SKY_INDEX_MAX = 1.2
"""Cloud-edge enhancement can lift output above clear sky for minutes, not for a whole window."""

_STC_IRRADIANCE_W_M2 = 1000.0
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SLOT_US = SLOT // timedelta(microseconds=1)
_SLOT_HOURS = SLOT / timedelta(hours=1)


class ForecastError(ValueError):
    """Not enough data to forecast."""


def _epoch_us(moments: Sequence[datetime], name: str) -> npt.NDArray[np.int64]:
    # Exact integer microseconds: float timestamps would blur sub-second offsets.
    return np.fromiter(
        ((require_aware(m, name) - _EPOCH) // timedelta(microseconds=1) for m in moments),
        dtype=np.int64,
        count=len(moments),
    )


# --------------------------------------------------------------------------------------------- PV


def clear_sky_ghi_w_m2(
    slot_starts: Sequence[datetime],
    latitude: float,
    longitude: float,
    *,
    altitude_m: float = 0.0,
    linke_turbidity: float | Sequence[float] = 3.2,
    samples_per_slot: int = 6,
) -> FloatArray:
    """Clear-sky global horizontal irradiance per slot, W/m² (mean over the slot, 0 at night).

    The reference a weather forecast's GHI is divided by to give the slot's clear-sky index
    (:mod:`vpp.domain.weather_forecast`); same model and sampling as :func:`clear_sky_pv_kw_per_kw`.
    """
    return _clear_sky_w_m2(slot_starts, latitude, longitude, 20.0, 180.0, altitude_m, linke_turbidity, 0.2,
                           samples_per_slot)[1]  # fmt: skip


def clear_sky_pv_kw_per_kw(
    slot_starts: Sequence[datetime],
    latitude: float,
    longitude: float,
    *,
    surface_tilt_deg: float = 20.0,
    surface_azimuth_deg: float = 180.0,
    altitude_m: float = 0.0,
    linke_turbidity: float | Sequence[float] = 3.2,
    albedo: float = 0.2,
    samples_per_slot: int = 6,
) -> FloatArray:
    """Clear-sky plane-of-array irradiance per slot as kW per kW of PV capacity (before losses).

    Mean over each slot of POA irradiance / 1000 W/m², sampled at the midpoints of
    ``samples_per_slot`` equal sub-intervals (6 -> every 5 minutes). Computing this once and
    scaling it is how to forecast many sites at one location: the result is linear in capacity.

    Parameters
    ----------
    slot_starts : sequence of datetime
        Aware starts of the 30-minute windows to forecast.
    latitude, longitude : float
        Degrees north and east (Kawasaki: 35.57, 139.6).
    surface_tilt_deg, surface_azimuth_deg : float
        Module tilt from horizontal and azimuth clockwise from north (180 = facing south), degrees.
    altitude_m : float
        Site altitude above sea level, m.
    linke_turbidity : float or sequence of 12 floats
        Linke turbidity, or a monthly climatology (January first). The default 3.2 is the annual mean
        of ``pvlib.clearsky.lookup_linke_turbidity`` at Kawasaki (monthly 2.1 in winter to 4.5 in
        July); that lookup reads a data file, so it belongs in an adapter, not here.
    albedo : float
        Ground reflectance, 0..1.
    samples_per_slot : int
        Solar-position samples per slot.

    Returns
    -------
    numpy.ndarray
        kW/kWp per slot, 0 at night.

    Notes
    -----
    Solar position by the NREL SPA (``pvlib.solarposition.get_solarposition``), clear-sky GHI/DNI/DHI
    by Ineichen & Perez (2002) and POA by the isotropic sky model (``pvlib.irradiance``).
    """
    poa_w_m2 = _clear_sky_w_m2(slot_starts, latitude, longitude, surface_tilt_deg, surface_azimuth_deg, altitude_m,
                               linke_turbidity, albedo, samples_per_slot)[0]  # fmt: skip
    return poa_w_m2 / _STC_IRRADIANCE_W_M2


def _clear_sky_w_m2(
    slot_starts: Sequence[datetime],
    latitude: float,
    longitude: float,
    surface_tilt_deg: float,
    surface_azimuth_deg: float,
    altitude_m: float,
    linke_turbidity: float | Sequence[float],
    albedo: float,
    samples_per_slot: int,
) -> tuple[FloatArray, FloatArray]:
    """Per slot: clear-sky plane-of-array and global horizontal irradiance, W/m²."""
    if samples_per_slot < 1:
        raise ValueError("samples_per_slot must be >= 1")
    if len(slot_starts) == 0:
        return np.zeros(0), np.zeros(0)
    step_us = _SLOT_US // samples_per_slot
    offsets_us = step_us // 2 + step_us * np.arange(samples_per_slot, dtype=np.int64)
    sample_us = (_epoch_us(slot_starts, "slot start")[:, None] + offsets_us[None, :]).ravel()
    times = pd.DatetimeIndex(sample_us.astype("datetime64[us]"), tz="UTC")

    turbidity_values = np.asarray(linke_turbidity, dtype=np.float64)
    if turbidity_values.ndim == 0:
        turbidity: float | FloatArray = float(turbidity_values)
    elif turbidity_values.shape == (12,):
        turbidity = turbidity_values[np.asarray(times.month) - 1]
    else:
        raise ValueError("linke_turbidity must be one value or 12 monthly values, January first")

    position = pvlib.solarposition.get_solarposition(times, latitude, longitude, altitude=altitude_m)
    apparent_zenith = position["apparent_zenith"].to_numpy()
    # Below the horizon the airmass and Ineichen terms divide by zero; those samples come out as
    # NaN or 0 and are zeroed below, so numpy's warnings there are expected noise.
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        airmass = pvlib.atmosphere.get_absolute_airmass(
            pvlib.atmosphere.get_relative_airmass(apparent_zenith), pvlib.atmosphere.alt2pres(altitude_m)
        )
        dni_extra = pvlib.irradiance.get_extra_radiation(np.asarray(times.day_of_year))
        clear = pvlib.clearsky.ineichen(apparent_zenith, airmass, turbidity, altitude_m, dni_extra)
        poa = pvlib.irradiance.get_total_irradiance(
            surface_tilt_deg,
            surface_azimuth_deg,
            position["zenith"].to_numpy(),
            position["azimuth"].to_numpy(),
            clear["dni"],
            clear["ghi"],
            clear["dhi"],
            albedo=albedo,
        )
    poa_w_m2 = np.clip(np.nan_to_num(np.asarray(poa["poa_global"], dtype=np.float64), nan=0.0), 0.0, None)
    ghi_w_m2 = np.clip(np.nan_to_num(np.asarray(clear["ghi"], dtype=np.float64), nan=0.0), 0.0, None)
    shape = (len(slot_starts), samples_per_slot)
    return poa_w_m2.reshape(shape).mean(axis=1), ghi_w_m2.reshape(shape).mean(axis=1)


def pv_forecast_kw(
    slot_starts: Sequence[datetime],
    latitude: float,
    longitude: float,
    pv_kw: float,
    clear_sky_index: float,
    performance_ratio: float = 0.8,
    *,
    surface_tilt_deg: float = 20.0,
    surface_azimuth_deg: float = 180.0,
    altitude_m: float = 0.0,
    linke_turbidity: float | Sequence[float] = 3.2,
) -> FloatArray:
    """Forecast PV output per slot, kW (average over each slot).

    ``pv_kw x clear-sky POA/1000 W/m² x performance_ratio x clear_sky_index``.

    Parameters
    ----------
    pv_kw : float
        Installed PV capacity, kWp.
    clear_sky_index : float
        Expected ratio of actual to clear-sky output (see :func:`clear_sky_index`), >= 0.
    performance_ratio : float
        System losses (temperature, inverter, wiring, soiling), 0..1.

    Other parameters are those of :func:`clear_sky_pv_kw_per_kw`.
    """
    if not (pv_kw >= 0 and math.isfinite(pv_kw)):
        raise ValueError(f"pv_kw must be finite and >= 0; got {pv_kw!r}")
    if not (clear_sky_index >= 0 and math.isfinite(clear_sky_index)):
        raise ValueError(f"clear_sky_index must be finite and >= 0; got {clear_sky_index!r}")
    if not 0 < performance_ratio <= 1:
        raise ValueError(f"performance_ratio must be within (0, 1]; got {performance_ratio!r}")
    per_kw = clear_sky_pv_kw_per_kw(
        slot_starts,
        latitude,
        longitude,
        surface_tilt_deg=surface_tilt_deg,
        surface_azimuth_deg=surface_azimuth_deg,
        altitude_m=altitude_m,
        linke_turbidity=linke_turbidity,
    )
    return per_kw * (pv_kw * performance_ratio * clear_sky_index)


def clear_sky_index(
    measured_pv_kwh: npt.ArrayLike,
    clear_sky_pv_kwh: npt.ArrayLike,
    *,
    min_clear_sky_fraction: float = 0.1,
    default: float = 1.0,
) -> float:
    """Ratio of measured to clear-sky PV energy over a recent window, clipped to [0, 1.2].

    A ratio of sums over daylight slots: night, dawn and dusk (clear-sky energy below
    ``min_clear_sky_fraction`` of the window's peak), where tiny denominators would make per-slot
    ratios explode, are left out, as are slots where either value is missing (NaN). Negative
    measurements (inverter standby draw) count as 0. Pass clear-sky energy from the same model and
    performance ratio used to forecast (``pv_forecast_kw(..., clear_sky_index=1.0)``) so the index
    also absorbs the model's bias for that site.

    Returns
    -------
    float
        The index, or `default` when the window holds no usable daylight slot.
    """
    measured = np.asarray(measured_pv_kwh, dtype=np.float64)
    clear = np.asarray(clear_sky_pv_kwh, dtype=np.float64)
    if measured.shape != clear.shape:
        raise ValueError(f"measured {measured.shape} and clear-sky {clear.shape} windows differ in shape")
    usable = np.isfinite(measured) & np.isfinite(clear)
    if not usable.any():
        return default
    peak_kwh = float(clear[usable].max())
    if peak_kwh <= 0:
        return default
    daylight = usable & (clear >= min_clear_sky_fraction * peak_kwh)
    ratio = float(np.clip(measured[daylight], 0.0, None).sum() / clear[daylight].sum())
    return min(max(ratio, 0.0), CLEAR_SKY_INDEX_MAX)


# ------------------------------------------------------------------------------------------- load


def similar_day_load_forecast(
    history: Mapping[date, Sequence[float]],
    target_day: date,
    n_days: int = 5,
    *,
    lookback_days: int | None = None,
) -> FloatArray:
    """Forecast a JST day's load per slot, kW, as the mean of recent days of the same type.

    Parameters
    ----------
    history : mapping of date to 48 floats
        Load energy per slot, kWh, for past JST days (slot 1 = 00:00-00:30).
    target_day : date
        Day to forecast. Only earlier days are used.
    n_days : int
        How many of the most recent same-type days to average (fewer if fewer exist).
    lookback_days : int or None
        Ignore days more than this many days before `target_day` (None: no limit).

    Returns
    -------
    numpy.ndarray
        48 average powers, kW (mean slot kWh x 2).

    Raises
    ------
    ForecastError
        When no earlier complete day of the same type exists.

    Notes
    -----
    Day types follow :func:`vpp.domain.calendar.day_type`: weekdays versus weekends and Japanese
    public holidays. A day is skipped when it does not hold exactly 48 finite, non-negative values.
    """
    if n_days < 1:
        raise ValueError("n_days must be >= 1")
    wanted = day_type(target_day)
    earliest = date.min if lookback_days is None else target_day - timedelta(days=lookback_days)
    chosen: list[FloatArray] = []
    for day in sorted((d for d in history if earliest <= d < target_day), reverse=True):
        if day_type(day) != wanted:
            continue
        values = np.asarray(history[day], dtype=np.float64)
        if values.shape != (SLOTS_PER_DAY,) or not np.all(np.isfinite(values)) or np.any(values < 0):
            continue
        chosen.append(values)
        if len(chosen) == n_days:
            break
    if not chosen:
        raise ForecastError(f"no complete {wanted} day before {target_day.isoformat()} in the load history")
    mean_kwh: FloatArray = np.mean(chosen, axis=0)
    return mean_kwh / _SLOT_HOURS


# --------------------------------------------------------------------------------------------- EV


class EvChargeRequest(NamedTuple):
    """A vehicle plugged in now: state of charge, battery size, wanted charge and departure."""

    soc_pct: float
    battery_kwh: float
    target_soc_pct: float
    departure: datetime


@dataclass(frozen=True, slots=True)
class EvEnergyNeed:
    """Energy a fleet must receive, and by when.

    Attributes
    ----------
    total_kwh : float
        Energy to deliver to all vehicles, kWh (grid side, after charger efficiency).
    per_vehicle_kwh : tuple of float
        Same, per vehicle, in input order.
    deadlines : tuple of datetime
        Distinct deadlines (UTC slot starts), ascending. A vehicle's deadline is the start of the
        slot in which it departs: the departure slot itself is not counted as charging time.
    energy_due_kwh : tuple of float
        Energy due at each deadline, kWh.
    """

    total_kwh: float
    per_vehicle_kwh: tuple[float, ...]
    deadlines: tuple[datetime, ...]
    energy_due_kwh: tuple[float, ...]

    def required_by_kwh(self, slot_starts: Sequence[datetime]) -> FloatArray:
        """Cumulative energy that must have been delivered by the end of each slot, kWh.

        The constraint a planner needs: ``cumsum(charging_kwh)[i] >= required_by_kwh(slots)[i]``.
        Energy due at or before the end of the first slot shows up in the first element; a plan that
        cannot meet it is infeasible, which is for the planner to report.
        """
        if not self.deadlines:
            return np.zeros(len(slot_starts))
        slot_end_us = _epoch_us(slot_starts, "slot start") + _SLOT_US
        deadline_us = _epoch_us(self.deadlines, "deadline")
        cumulative_kwh = np.concatenate(([0.0], np.cumsum(self.energy_due_kwh)))
        return cumulative_kwh[np.searchsorted(deadline_us, slot_end_us, side="right")]


def ev_energy_needed_kwh(
    vehicles: Sequence[EvChargeRequest | tuple[float, float, float, datetime]],
    *,
    charge_efficiency: float = 1.0,
) -> EvEnergyNeed:
    """Energy each plugged-in vehicle needs to reach its target state of charge before departure.

    Per vehicle: ``max(target_soc_pct - soc_pct, 0) / 100 x battery_kwh / charge_efficiency``.

    Parameters
    ----------
    vehicles : sequence of (soc_pct, battery_kwh, target_soc_pct, departure)
        Percentages 0..100, battery capacity in kWh, departure an aware datetime.
    charge_efficiency : float
        Battery energy gained per kWh drawn, (0, 1]; 1.0 reports battery-side energy.

    Raises
    ------
    ValueError
        For percentages outside 0..100, non-positive capacity or a naive departure.
    """
    if not 0 < charge_efficiency <= 1:
        raise ValueError(f"charge_efficiency must be within (0, 1]; got {charge_efficiency!r}")
    per_vehicle: list[float] = []
    due: dict[datetime, float] = {}
    for index, raw in enumerate(vehicles):
        request = EvChargeRequest(*raw)
        if not (0 <= request.soc_pct <= 100 and 0 <= request.target_soc_pct <= 100):
            raise ValueError(f"vehicle {index}: soc_pct and target_soc_pct must be within 0..100")
        if not (request.battery_kwh > 0 and math.isfinite(request.battery_kwh)):
            raise ValueError(f"vehicle {index}: battery_kwh must be positive; got {request.battery_kwh!r}")
        require_aware(request.departure, f"vehicle {index} departure")
        energy_kwh = max(request.target_soc_pct - request.soc_pct, 0.0) / 100 * request.battery_kwh / charge_efficiency
        per_vehicle.append(energy_kwh)
        if energy_kwh > 0:
            deadline = slot_start(request.departure)
            due[deadline] = due.get(deadline, 0.0) + energy_kwh
    deadlines = tuple(sorted(due))
    return EvEnergyNeed(
        total_kwh=math.fsum(per_vehicle),
        per_vehicle_kwh=tuple(per_vehicle),
        deadlines=deadlines,
        energy_due_kwh=tuple(due[d] for d in deadlines),
    )
