"""The Yamato Takatsu depot's day as the scheduler sees it, from the simulator the integration tests run.

Ten JST days of the simulated depot (seed 3, as in the DR loop tests) are rolled up into 30-minute slots;
the event day's non-EV load and PV serve as its forecast, and its EV sessions are forecast from the days
before exactly as :func:`services.dr_scheduler.site_forecast.ev_demands` does from metered history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from services.dr_scheduler.site_forecast import ev_demands
from vpp.domain.planning import EvDemand
from vpp.domain.slots import JST
from vpp.simulation.model import SiteSimulator, SiteSpec

EVENT_DAY = date(2026, 11, 20)
_DAYS = 10
_STEP_S = 300
_STEPS_PER_SLOT = 1800 // _STEP_S


@dataclass(frozen=True)
class DepotDay:
    load_kw: npt.NDArray[np.float64]  # non-EV load, 48 slots
    pv_kw: npt.NDArray[np.float64]
    evs: tuple[EvDemand, ...]


@lru_cache(maxsize=1)
def depot_day() -> DepotDay:
    start = datetime.combine(EVENT_DAY - timedelta(days=_DAYS - 1), time(0, 0), JST)
    sim = SiteSimulator(SiteSpec(site_id="depot-a"), start, seed=3)
    rows = []
    for k in range(1, _DAYS * 48 * _STEPS_PER_SLOT + 1):
        sim.step(start + timedelta(seconds=_STEP_S * k))
        state = sim.state
        rows.append((state.ev_energy_kwh, state.pv_energy_kwh, state.base_load_kw))
    series = np.array(rows)
    per_slot = np.diff(np.vstack([np.zeros(3), series]), axis=0).reshape(_DAYS, 48, _STEPS_PER_SLOT, 3).sum(axis=2)
    base_load_kw = series[:, 2].reshape(_DAYS, 48, _STEPS_PER_SLOT).mean(axis=2)
    days = [EVENT_DAY - timedelta(days=_DAYS - 1 - k) for k in range(_DAYS)]
    ev_history: dict[date, list[float | None]] = {day: per_slot[k, :, 0].tolist() for k, day in enumerate(days[:-1])}
    return DepotDay(base_load_kw[-1], per_slot[-1, :, 1] * 2, ev_demands(ev_history, EVENT_DAY))
