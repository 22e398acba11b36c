"""A site's rest of the day from slot t, as the intraday re-plans see it: the forecast corrected by the day's
metered load and PV so far, the EV energy still owed (each forecast charging need less the EV energy metered
since it became available), and the battery at its live state of charge."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import psycopg

from vpp.domain.planning import EvDemand, SiteFlex
from vpp.domain.planning.execution import corrected_forecast
from vpp.domain.planning.limit_replan import owed_ev_demands
from vpp.domain.slots import JST, SLOTS_PER_DAY
from vpp.postgres.energy_history import SiteDr, daily_slots

from .event_planning import dr_site_flex
from .site_forecast import forecast_from_history

__all__ = ["rest_of_day"]


def _measured(values: list[float | None] | None, fallback: np.ndarray, t: int) -> np.ndarray:
    """The day's measured kW per slot for slots < t (kWh × 2), the forecast where a slot is missing."""
    out = fallback.copy()
    for slot, value in enumerate((values or [None] * SLOTS_PER_DAY)[:t]):
        if value is not None:
            out[slot] = float(value) * 2
    return out


def rest_of_day(
    conn: psycopg.Connection, site: SiteDr, t: int, day_start: datetime
) -> tuple[np.ndarray, np.ndarray, list[EvDemand], SiteFlex]:
    """Load, PV (kW, slots t..47), EV energy still owed and the battery from slot t on."""
    day = day_start.astimezone(JST).date()
    forecast = forecast_from_history(conn, site, day)
    load_fc, pv_fc = forecast.forecast.load_kw, forecast.forecast.pv_kw
    rows = {flow: daily_slots(conn, site.site_pk, day, day, flow).get(day) for flow in ("load_kwh", "ev_kwh", "pv_kwh")}
    ev_kw = _measured(rows["ev_kwh"], np.zeros(SLOTS_PER_DAY), t)
    load_kw = np.maximum(_measured(rows["load_kwh"], load_fc + ev_kw, t) - ev_kw, 0.0)
    pv_kw = _measured(rows["pv_kwh"], pv_fc, t)
    load_rest, pv_rest = corrected_forecast(t, load_fc, pv_fc, load_kw, pv_kw)
    evs = owed_ev_demands(forecast.evs, ev_kw, t)
    flex = dr_site_flex(site)  # the live SoC; the end-of-day rule from here on: at least as full as now
    return np.maximum(load_rest, 0.0), np.maximum(pv_rest, 0.0), evs, flex
