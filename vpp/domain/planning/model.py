"""Inputs, outputs and input checks shared by the site planners (:mod:`vpp.domain.planning`).

Conventions for every planner:

- A horizon of ``len(base_load_kw)`` slots of 30 minutes (48 for a day-ahead plan), slot 0 first.
- Power in kW averaged over a slot, energy in kWh; a slot holds ``power_kw × 0.5 h`` of energy.
- Grid power = base load + EV charging + battery charging − battery discharging − used PV;
  import is its positive part, export its negative part.
- Battery power is + discharge / − charge (the MQTT contract's sign). The state of charge moves
  by ``0.5 h × (charge_efficiency × charge_kw − discharge_kw / discharge_efficiency)`` per slot.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import numpy.typing as npt

from vpp.domain.slots import SLOT

__all__ = [
    "SLOT_HOURS",
    "EvDemand",
    "InfeasiblePlan",
    "Plan",
    "SiteFlex",
    "SiteProblem",
    "make_plan",
    "site_problem",
]

FloatArray = npt.NDArray[np.float64]

SLOT_HOURS = SLOT / timedelta(hours=1)  # 0.5 h: kW × SLOT_HOURS = kWh per slot
# Slack for comparing energies that went through floating-point sums (kWh or kW).
_TOLERANCE = 1e-9


class InfeasiblePlan(ValueError):  # noqa: N818 - name fixed by the product vocabulary
    """The request cannot be planned; ``reason`` says why in words an operator can act on."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class SiteFlex:
    """A site's battery and grid-export permission.

    Attributes
    ----------
    battery_kwh : float
        Nameplate energy capacity, kWh.
    battery_power_kw : float
        Charge and discharge power limit at the AC side, kW.
    soc_kwh_initial, soc_min_kwh, soc_max_kwh : float
        State of charge at the start of slot 0 and its allowed range, kWh.
    charge_efficiency, discharge_efficiency : float
        One-way efficiencies in (0, 1].
    export_allowed : bool
        False for sites behind a reverse-power relay: surplus PV must then be absorbed or curtailed.
    """

    battery_kwh: float
    battery_power_kw: float
    soc_kwh_initial: float
    soc_min_kwh: float
    soc_max_kwh: float
    charge_efficiency: float = 0.95
    discharge_efficiency: float = 0.95
    export_allowed: bool = True

    @classmethod
    def without_battery(cls, export_allowed: bool = True) -> SiteFlex:
        """A site with no battery (EV deferral is then the only flexibility)."""
        return cls(0.0, 0.0, 0.0, 0.0, 0.0, export_allowed=export_allowed)


@dataclass(frozen=True)
class EvDemand:
    """Deferrable EV charging: deliver ``energy_kwh`` in slots [available_from_slot, deadline_slot).

    ``max_power_kw`` is the charger's (or vehicle's) limit; ``ev_id`` only labels error messages.
    """

    energy_kwh: float
    max_power_kw: float
    available_from_slot: int
    deadline_slot: int
    ev_id: str = ""


@dataclass(frozen=True)
class Plan:
    """A site schedule over the horizon; every series has one value per slot unless stated.

    Attributes
    ----------
    strategy : str
        ``"peak_cut"``, ``"peak_shift"``, ``"import_floor"`` or ``"threshold"``.
    import_kw, export_kw : tuple of float
        Grid import and export, kW (both ≥ 0).
    battery_kw : tuple of float
        + discharge / − charge, kW.
    ev_kw : tuple of float
        Total EV charging, kW; ``ev_kw_by_demand`` splits it per :class:`EvDemand`, in input order.
    curtailed_kw : tuple of float
        PV curtailed because export is not allowed and the surplus could not be absorbed, kW.
    soc_kwh : tuple of float
        State of charge at every slot boundary (horizon + 1 values), kWh.
    peak_import_kw : float
        Highest slot import, kW.
    target_met : bool or None
        Whether every slot's import is within the target (None when the planner has no target).
    objective : float
        The optimiser's objective value (units depend on the planner; NaN for the reactive one).
    status : str
        Human-readable outcome.
    """

    strategy: str
    import_kw: tuple[float, ...]
    export_kw: tuple[float, ...]
    battery_kw: tuple[float, ...]
    ev_kw: tuple[float, ...]
    ev_kw_by_demand: tuple[tuple[float, ...], ...]
    curtailed_kw: tuple[float, ...]
    soc_kwh: tuple[float, ...]
    peak_import_kw: float
    target_met: bool | None
    objective: float
    status: str


@dataclass(frozen=True)
class SiteProblem:
    """Checked planner inputs as arrays (kW), shared by the LP and the reactive controller."""

    base_load_kw: FloatArray
    pv_kw: FloatArray
    flex: SiteFlex
    evs: tuple[EvDemand, ...]
    terminal_soc_kwh: float

    @property
    def horizon(self) -> int:
        return int(self.base_load_kw.shape[0])


def site_problem(
    base_load_kw: Sequence[float],
    pv_kw: Sequence[float],
    flex: SiteFlex,
    evs: Sequence[EvDemand],
    terminal_soc_kwh: float | None = None,
) -> SiteProblem:
    """Check the inputs and return them as a :class:`SiteProblem`.

    Malformed series (wrong length, NaN, negative) raise ``ValueError``; requests that cannot be
    met (inconsistent battery limits, EV energy that does not fit its window) raise
    :class:`InfeasiblePlan`. ``terminal_soc_kwh`` defaults to the initial SoC.
    """
    load = _series(base_load_kw, "base_load_kw")
    pv = _series(pv_kw, "pv_kw")
    if load.shape != pv.shape or load.size == 0:
        raise ValueError(f"base_load_kw and pv_kw must be equally long and non-empty: {load.size}, {pv.size}")
    _check_flex(flex)
    terminal = flex.soc_kwh_initial if terminal_soc_kwh is None else terminal_soc_kwh
    if not flex.soc_min_kwh - _TOLERANCE <= terminal <= flex.soc_max_kwh + _TOLERANCE:
        raise InfeasiblePlan(
            f"terminal SoC {terminal} kWh is outside the battery's range [{flex.soc_min_kwh}, {flex.soc_max_kwh}] kWh"
        )
    for index, ev in enumerate(evs):
        _check_ev(index, ev, load.size)
    return SiteProblem(load, pv, flex, tuple(evs), min(max(terminal, flex.soc_min_kwh), flex.soc_max_kwh))


def make_plan(
    strategy: str,
    problem: SiteProblem,
    *,
    charge_kw: FloatArray,
    discharge_kw: FloatArray,
    import_kw: FloatArray,
    export_kw: FloatArray,
    curtailed_kw: FloatArray,
    ev_kw_by_demand: Sequence[FloatArray],
    soc_kwh: FloatArray,
    target_kw: float | None,
    objective: float,
    status: str,
) -> Plan:
    """Assemble a :class:`Plan`, clearing solver noise (|x| < 1e-9) so zeros read as zeros."""
    ev_total = np.sum(ev_kw_by_demand, axis=0) if ev_kw_by_demand else np.zeros(problem.horizon)
    peak_kw = float(import_kw.max())
    return Plan(
        strategy=strategy,
        import_kw=_clean(import_kw),
        export_kw=_clean(export_kw),
        battery_kw=_clean(discharge_kw - charge_kw),
        ev_kw=_clean(ev_total),
        ev_kw_by_demand=tuple(_clean(series) for series in ev_kw_by_demand),
        curtailed_kw=_clean(curtailed_kw),
        soc_kwh=tuple(soc_kwh.tolist()),
        peak_import_kw=peak_kw,
        target_met=None if target_kw is None else peak_kw <= target_kw + 1e-6,
        objective=objective,
        status=status,
    )


def _series(values: Sequence[float], name: str) -> FloatArray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 1 or not np.isfinite(array).all():
        raise ValueError(f"{name} must be a flat series of finite numbers")
    if (array < 0).any():
        raise ValueError(f"{name} must not be negative (first at slot {int(np.argmax(array < 0))})")
    return array


def _check_flex(flex: SiteFlex) -> None:
    fields = (flex.battery_kwh, flex.battery_power_kw, flex.soc_kwh_initial, flex.soc_min_kwh, flex.soc_max_kwh)
    if not all(math.isfinite(value) for value in fields):
        raise InfeasiblePlan(f"battery figures must be finite numbers: {flex}")
    if flex.battery_kwh < 0 or flex.battery_power_kw < 0:
        raise InfeasiblePlan(
            f"battery capacity {flex.battery_kwh} kWh and power {flex.battery_power_kw} kW must be ≥ 0"
        )
    if not 0 <= flex.soc_min_kwh <= flex.soc_max_kwh <= flex.battery_kwh + _TOLERANCE:
        raise InfeasiblePlan(
            f"SoC bounds inconsistent: need 0 ≤ soc_min ({flex.soc_min_kwh}) ≤ soc_max "
            f"({flex.soc_max_kwh}) ≤ capacity ({flex.battery_kwh}) kWh"
        )
    if not flex.soc_min_kwh - _TOLERANCE <= flex.soc_kwh_initial <= flex.soc_max_kwh + _TOLERANCE:
        raise InfeasiblePlan(
            f"initial SoC {flex.soc_kwh_initial} kWh is outside [{flex.soc_min_kwh}, {flex.soc_max_kwh}] kWh"
        )
    for name, value in (("charge", flex.charge_efficiency), ("discharge", flex.discharge_efficiency)):
        if not 0 < value <= 1:
            raise InfeasiblePlan(f"{name} efficiency must be in (0, 1], got {value}")


def _check_ev(index: int, ev: EvDemand, horizon: int) -> None:
    label = f"EV demand #{index}" + (f" ({ev.ev_id})" if ev.ev_id else "")
    if not 0 <= ev.available_from_slot < ev.deadline_slot <= horizon:
        raise InfeasiblePlan(
            f"{label}: window [{ev.available_from_slot}, {ev.deadline_slot}) must satisfy "
            f"0 ≤ from < deadline ≤ {horizon}"
        )
    if not (math.isfinite(ev.energy_kwh) and math.isfinite(ev.max_power_kw)):
        raise InfeasiblePlan(f"{label}: energy and power must be finite numbers")
    if ev.energy_kwh < 0 or ev.max_power_kw < 0:
        raise InfeasiblePlan(f"{label}: energy {ev.energy_kwh} kWh and power {ev.max_power_kw} kW must be ≥ 0")
    slots = ev.deadline_slot - ev.available_from_slot
    deliverable_kwh = ev.max_power_kw * slots * SLOT_HOURS
    if ev.energy_kwh > deliverable_kwh + _TOLERANCE:
        raise InfeasiblePlan(
            f"{label} needs {ev.energy_kwh:g} kWh between slot {ev.available_from_slot} and slot "
            f"{ev.deadline_slot} but at most {slots} slots × {SLOT_HOURS:g} h × {ev.max_power_kw:g} kW "
            f"= {deliverable_kwh:g} kWh can be delivered"
        )


def _clean(values: FloatArray) -> tuple[float, ...]:
    return tuple(np.where(np.abs(values) < 1e-9, 0.0, values).tolist())
