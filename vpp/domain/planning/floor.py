"""Why an import floor cannot be met, in numbers an operator can act on (for :func:`plan_import_floor`).

A floor asks a site to draw at least ``floor_t`` kW from the grid in slot t. It can do so only by
consuming more than its load minus PV: charging the battery and bringing EV charging forward into the
slot (and, where export is not allowed, by curtailing PV). Two limits can make that impossible:

- power, slot by slot: the most a site can draw is load − PV (or load alone when PV may be curtailed)
  + the battery's power + every EV charger whose window covers the slot;
- energy, over the floored slots: the battery can only take what fits between its SoC limits and the
  EVs only the energy they still need, all while the battery still ends the day at its terminal SoC.

:func:`check_import_floor` tests the first before any LP is built; the second is what remains when the
LP is infeasible, and :func:`floor_energy_reason` reports it.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from vpp.domain.planning.model import SLOT_HOURS, InfeasiblePlan, SiteProblem

__all__ = ["check_import_floor", "floor_energy_reason"]

FloatArray = npt.NDArray[np.float64]
_TOLERANCE_KW = 1e-6


def _ev_power_kw(problem: SiteProblem) -> FloatArray:
    power = np.zeros(problem.horizon)
    for ev in problem.evs:
        if ev.energy_kwh > 0:
            power[ev.available_from_slot : ev.deadline_slot] += ev.max_power_kw
    return power


def check_import_floor(problem: SiteProblem, floor_kw: FloatArray) -> None:
    """Raise :class:`InfeasiblePlan` naming the first slot whose floor is above the most the site can draw."""
    if (floor_kw < 0).any():
        raise ValueError(f"import floors must be ≥ 0 kW (first negative at slot {int(np.argmax(floor_kw < 0))})")
    pv_kw = np.zeros(problem.horizon) if not problem.flex.export_allowed else problem.pv_kw
    ev_kw = _ev_power_kw(problem)
    most_kw = problem.base_load_kw - pv_kw + problem.flex.battery_power_kw + ev_kw
    short = np.flatnonzero((floor_kw > 0) & (floor_kw > most_kw + _TOLERANCE_KW))
    if short.size:
        t = int(short[0])
        raise InfeasiblePlan(
            f"slot {t}: import floor {floor_kw[t]:.3f} kW is above the most the site can draw, {most_kw[t]:.3f} kW "
            f"(load {problem.base_load_kw[t]:.3f} − PV {pv_kw[t]:.3f} + battery {problem.flex.battery_power_kw:g} "
            f"+ EV chargers {ev_kw[t]:g} kW)"
        )


def floor_energy_reason(problem: SiteProblem, floor_kw: FloatArray) -> str:
    """The energy account of floors the LP could not meet: what they need against what can absorb it."""
    floored = np.flatnonzero(floor_kw > 0)
    if floored.size == 0:
        return "HiGHS found no plan, and no slot has an import floor"
    net_kw = problem.base_load_kw - problem.pv_kw
    need_kwh = float(np.maximum(floor_kw[floored] - net_kw[floored], 0.0).sum()) * SLOT_HOURS
    flex = problem.flex
    room_kwh = (flex.soc_max_kwh - flex.soc_min_kwh) / flex.charge_efficiency
    mask = np.zeros(problem.horizon, dtype=bool)
    mask[floored] = True
    ev_kwh = sum(
        min(ev.energy_kwh, ev.max_power_kw * SLOT_HOURS * int(mask[ev.available_from_slot : ev.deadline_slot].sum()))
        for ev in problem.evs
    )
    return (
        f"import floors need {need_kwh:.2f} kWh of consumption above load − PV in slots {int(floored[0])}–"
        f"{int(floored[-1])}, but the battery can take at most {room_kwh:.2f} kWh between its SoC limits "
        f"({flex.soc_min_kwh:g}–{flex.soc_max_kwh:g} kWh, starting at {flex.soc_kwh_initial:g}, ending at "
        f"≥ {problem.terminal_soc_kwh:g}) and the EVs {ev_kwh:.2f} kWh in those slots"
    )
