"""Clear-sky plane-of-array irradiance, shared across simulators, and a stochastic clear-sky index.

pvlib is slow per call (pandas, a Linke turbidity lookup from an HDF5 file) and fast per element, so the
clear-sky irradiance is computed once per UTC day and rounded location at one-minute resolution and then
read by interpolation. Twenty thousand simulated sites in one region share a handful of tables.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import ClassVar

__all__ = [
    "ARRAY_AZIMUTH_DEG",
    "ARRAY_TILT_DEG",
    "CloudModel",
    "clear_sky_poa_table",
    "location_key",
]

# A typical Japanese rooftop array: low tilt facing south. Not per site: the platform cannot know it.
ARRAY_TILT_DEG = 15.0
ARRAY_AZIMUTH_DEG = 180.0

_MINUTES_PER_DAY = 1440
_SECONDS_PER_DAY = 86_400
# 0.1 degree is ~11 km: solar noon moves by < 30 s, far below what a site's weather noise hides.
_LOCATION_DECIMALS = 1
# Tables hold 1,441 floats (~46 kB as a list); a region over two days needs a few dozen.
_CACHE_MAX_TABLES = 128

_cache: OrderedDict[tuple[int, float, float], list[float]] = OrderedDict()
_cache_lock = threading.Lock()


def location_key(latitude: float, longitude: float) -> tuple[float, float]:
    """Rounded location under which clear-sky tables are shared."""
    return round(latitude, _LOCATION_DECIMALS), round(longitude, _LOCATION_DECIMALS)


def clear_sky_poa_table(day_index: int, latitude: float, longitude: float) -> list[float]:
    """Clear-sky plane-of-array irradiance (W/m²) for each minute of one UTC day, 1,441 values.

    Parameters
    ----------
    day_index : int
        Days since 1970-01-01 UTC; element ``m`` is the irradiance at ``day_index * 86400 + 60 m`` seconds,
        so the last element is the next midnight and interpolation never needs the next day's table.
    latitude, longitude : float
        Degrees; rounded with :func:`location_key` before computing, so every caller gets the same table.

    Notes
    -----
    Ineichen-Perez clear sky with pvlib's Linke turbidity climatology, transposed to a south-facing
    array tilted :data:`ARRAY_TILT_DEG` with the isotropic sky model (Liu and Jordan, 1963).
    """
    lat, lon = location_key(latitude, longitude)
    key = (day_index, lat, lon)
    with _cache_lock:
        table = _cache.get(key)
        if table is not None:
            _cache.move_to_end(key)
            return table
    table = _compute_table(day_index, lat, lon)
    with _cache_lock:
        _cache[key] = table
        while len(_cache) > _CACHE_MAX_TABLES:
            _cache.popitem(last=False)
    return table


def _compute_table(day_index: int, latitude: float, longitude: float) -> list[float]:
    # Imported here: pandas and pvlib cost ~0.6 s to import and only the first table needs them.
    import pandas as pd
    import pvlib

    start = pd.Timestamp(day_index * _SECONDS_PER_DAY, unit="s", tz="UTC")
    times = pd.date_range(start, periods=_MINUTES_PER_DAY + 1, freq="1min")
    location = pvlib.location.Location(latitude, longitude, tz="UTC")
    solar_position = location.get_solarposition(times)
    clear_sky = location.get_clearsky(times, model="ineichen", solar_position=solar_position)
    poa = pvlib.irradiance.get_total_irradiance(
        ARRAY_TILT_DEG,
        ARRAY_AZIMUTH_DEG,
        solar_position["apparent_zenith"],
        solar_position["azimuth"],
        clear_sky["dni"],
        clear_sky["ghi"],
        clear_sky["dhi"],
        model="isotropic",
    )["poa_global"]
    return [max(0.0, float(value)) for value in poa.fillna(0.0).to_numpy()]


@dataclass(frozen=True, slots=True)
class CloudModel:
    """Clear-sky index k in [0.1, 1.0] (measured over clear-sky irradiance) from two latent N(0, 1) states.

    The caller evolves the states as Ornstein-Uhlenbeck processes (continuous AR(1), so any step length
    keeps the same statistics): a slow one with time constant :attr:`SLOW_TAU_S` for the day-to-day
    weather and a fast one with :attr:`FAST_TAU_S` for passing clouds. ``cloudiness`` c in [0, 1] sets the
    mean (1 - 0.85 c) and spreads that vanish at both ends: c = 0 is clear sky with faint haze, c = 1 a
    steady overcast. At c = 0.3 the mean index is ~0.7, which puts a Kawasaki array near its measured
    ~1,160 kWh/kW/yr.
    """

    mean: float
    spread_slow: float
    spread_fast: float

    SLOW_TAU_S: ClassVar[float] = 86_400.0
    FAST_TAU_S: ClassVar[float] = 900.0
    K_MIN: ClassVar[float] = 0.1
    K_MAX: ClassVar[float] = 1.0

    @classmethod
    def from_cloudiness(cls, cloudiness: float) -> CloudModel:
        if not 0.0 <= cloudiness <= 1.0:
            raise ValueError(f"cloudiness must be in [0, 1], got {cloudiness}")
        variability = math.sqrt(cloudiness * (1.0 - cloudiness))
        return cls(0.15 + 0.85 * (1.0 - cloudiness) ** 1.5, 0.6 * variability, 0.03 + 0.3 * variability)

    def index(self, slow_z: float, fast_z: float) -> float:
        k = self.mean + self.spread_slow * slow_z + self.spread_fast * fast_z
        return self.K_MIN if k < self.K_MIN else self.K_MAX if k > self.K_MAX else k
