"""The benchmark's fair reactive controller: a threshold demand controller that treats EVs as the site EMS does.

The simulated site EMS (:func:`vpp.simulation.ems.dispatch`) spreads each van's charging evenly over the
time left to its deadline, soaks PV surplus into the vans first, and defers charging down to the vans'
least-laxity point before it touches the battery. A reactive controller that instead charges vans at full
power on arrival makes every forecast-based planner look good on EV sites for a reason that has nothing to
do with forecasting. This one runs the EMS's own dispatch rule slot by slot with the threshold as its
target: no forecast, no schedule; the battery discharges above the threshold and recharges from the grid
whenever that keeps import at or under it (no reserve, no self-consumption discharge below it).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from vpp.domain.planning import EvDemand, SiteFlex
from vpp.simulation.ems import dispatch
from vpp.simulation.ev import EvPlan

__all__ = ["fair_reactive_import_kw"]

FloatArray = npt.NDArray[np.float64]
_SLOT_H = 0.5
_EPS = 1e-9


def _ev_bounds(ev: EvDemand, remaining_kwh: float, t: int) -> tuple[float, float, float]:
    """(must, flat, cap) kW for one EV demand in slot t, as :meth:`vpp.simulation.ev.EvFleet.plan` computes."""
    if not ev.available_from_slot <= t < ev.deadline_slot or remaining_kwh <= _EPS:
        return 0.0, 0.0, 0.0
    cap = min(ev.max_power_kw, remaining_kwh / _SLOT_H)
    left_h = (ev.deadline_slot - t) * _SLOT_H
    if left_h <= _SLOT_H:
        return cap, cap, cap
    flat = min(remaining_kwh / left_h, cap)
    must = min(max((remaining_kwh - ev.max_power_kw * (left_h - _SLOT_H)) / _SLOT_H, 0.0), cap)
    return must, flat, cap


def fair_reactive_import_kw(
    load_kw: FloatArray, pv_kw: FloatArray, flex: SiteFlex, evs: Sequence[EvDemand], threshold_kw: float
) -> tuple[FloatArray, float]:
    """Import per slot (kW) and the final SoC (kWh) of the threshold controller with EMS-style EV charging."""
    remaining = [ev.energy_kwh for ev in evs]
    soc = flex.soc_kwh_initial
    eta_c, eta_d = flex.charge_efficiency, flex.discharge_efficiency
    imports = np.zeros(load_kw.size)
    for t in range(load_kw.size):
        bounds = [_ev_bounds(ev, remaining[k], t) for k, ev in enumerate(evs)]
        plan = EvPlan(sum(b[0] for b in bounds), sum(b[1] for b in bounds), sum(b[2] for b in bounds))
        discharge_max = min(flex.battery_power_kw, max(soc - flex.soc_min_kwh, 0.0) * eta_d / _SLOT_H)
        charge_max = min(flex.battery_power_kw, max(flex.soc_max_kwh - soc, 0.0) / (eta_c * _SLOT_H))
        ev_kw, battery_kw = dispatch(
            float(load_kw[t] - pv_kw[t]), plan, threshold_kw, discharge_max, charge_max, 0.0, charge_max
        )
        # Share the fleet's power among the demands as the fleet shares it among vans (EvFleet.charge).
        low, high = (0, 1) if ev_kw <= plan.flat_kw else (1, 2)
        span = sum(b[high] - b[low] for b in bounds)
        fraction = (ev_kw - sum(b[low] for b in bounds)) / span if span > _EPS else 0.0
        fraction = min(max(fraction, 0.0), 1.0)
        delivered = 0.0
        for k, b in enumerate(bounds):
            power = b[low] + fraction * (b[high] - b[low])
            remaining[k] = max(remaining[k] - power * _SLOT_H, 0.0)
            delivered += power
        soc += _SLOT_H * (eta_c * max(-battery_kw, 0.0) - max(battery_kw, 0.0) / eta_d)
        soc = min(max(soc, flex.soc_min_kwh), flex.soc_max_kwh)
        imports[t] = max(float(load_kw[t]) + delivered - float(pv_kw[t]) - battery_kw, 0.0)
    return imports, soc
