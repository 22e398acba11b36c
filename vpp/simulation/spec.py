"""Site specifications, the simulator's state snapshot, and a varied fleet of sites for load tests."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

import numpy as np

__all__ = ["SiteSpec", "SiteState", "fleet_specs"]


@dataclass(frozen=True)
class SiteSpec:
    """A site's equipment and EMS settings; defaults are the Yamato Takatsu depot (DOMAIN.md)."""

    site_id: str = "yamato-takatsu"
    latitude: float = 35.57
    longitude: float = 139.6
    pv_kw: float = 45.0
    battery_kwh: float = 61.0
    battery_power_kw: float = 20.0  # not published: a setting
    ev_count: int = 25
    ev_charger_kw: float = 6.0  # per vehicle, not published
    ev_daily_kwh: float = 7.0  # per vehicle per day, not published; gives the ~23 kW site mean of the depot notes
    base_load_kw: float = 16.0  # mean non-EV load
    demand_target_kw: float = 60.0  # the EMS's maximum-demand target (30-min average import, kW)
    cloudiness: float = 0.3  # 0 clear .. 1 overcast; drives the stochastic clear-sky index


@dataclass(frozen=True, slots=True)
class SiteState:
    """A snapshot after the latest step. Powers (kW) are that step's averages; counters (kWh) are totals."""

    ts: datetime
    soc_pct: float
    battery_stored_kwh: float
    load_kw: float
    base_load_kw: float
    pv_kw: float
    battery_kw: float
    ev_kw: float
    grid_kw: float
    import_kwh: float
    export_kwh: float
    pv_energy_kwh: float
    battery_charge_kwh: float
    battery_discharge_kwh: float
    ev_energy_kwh: float
    vehicles: int
    ev_needed_kwh: float  # still owed to the plugged-in vans
    ev_unmet_kwh: float  # owed to vans that have already left, summed since start
    slot_import_kwh: float  # imported so far in the current 30-minute slot
    import_limit_kw: float | None  # DR limit in force at ts
    import_floor_kw: float | None  # DR floor ("increase" event) in force at ts
    clear_sky_index: float


def fleet_specs(n: int, seed: int = 0) -> list[SiteSpec]:
    """`n` varied sites: the default depot first, then ``site-00001``... across Kawasaki.

    Site k depends only on (seed, k), so a larger fleet extends a smaller one. About a third of the
    extra sites have no battery and half have no EVs; sizes are log-uniform from small public
    facilities (5 kW mean load) to large ones (200 kW), each with a demand target it can meet.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = np.random.default_rng([seed, 0x5EED])
    specs = [SiteSpec()] if n > 0 else []
    for k in range(1, n):
        u = rng.random(10).tolist()
        base_kw = round(5.0 * 40.0 ** u[0], 1)
        pv_kw = round(base_kw * (0.5 + 2.5 * u[1]), 1)
        battery_kwh = 0.0 if u[2] < 0.35 else round(pv_kw * (0.5 + 1.5 * u[3]), 1)
        ev_count = 0 if u[4] < 0.5 else 1 + int(base_kw / 4.0 * (0.2 + 1.3 * u[5]))
        ev_daily_kwh = round(8.0 + 10.0 * u[6], 1)
        night_kw = 0.6 * base_kw + ev_count * ev_daily_kwh / 11.0
        target_kw = 5.0 * math.ceil(max(1.9 * base_kw, 1.25 * night_kw) / 5.0)
        specs.append(
            SiteSpec(
                site_id=f"site-{k:05d}",
                latitude=round(35.53 + 0.09 * u[7], 4),
                longitude=round(139.47 + 0.30 * u[8], 4),
                pv_kw=pv_kw,
                battery_kwh=battery_kwh,
                battery_power_kw=round(battery_kwh * 0.33, 1),
                ev_count=ev_count,
                ev_charger_kw=6.0,
                ev_daily_kwh=ev_daily_kwh,
                base_load_kw=base_kw,
                demand_target_kw=target_kw,
                cloudiness=round(0.2 + 0.2 * u[9], 3),
            )
        )
    return specs
