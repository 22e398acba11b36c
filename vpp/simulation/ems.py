"""The site EMS's dispatch rule: one decision per step, for EV charging and the battery.

A demand controller in the Japanese sense (DOMAIN.md, 30-minute slots): the quantity it protects is the
slot's average import, so it reasons about the energy already imported in the slot plus the current
power held over the rest of it. Holding import at or below

    allowed_import_kw = (target_kw × 0.5 h − slot_import_kwh) / remaining_h

for the rest of the slot ends the slot at or under the target, whatever happened earlier in it. The
same formula with a DR import floor gives the import the rest of the slot needs to end at or above it.
"""

from __future__ import annotations

from vpp.simulation.ev import EvPlan

__all__ = ["SLOT_H", "allowed_import_kw", "dispatch"]

SLOT_H = 0.5


def allowed_import_kw(target_kw: float, slot_import_kwh: float, remaining_h: float) -> float:
    """Highest constant import (kW) for the rest of the slot that keeps the slot average <= target_kw."""
    return (target_kw * SLOT_H - slot_import_kwh) / remaining_h


def dispatch(
    other_kw: float,
    ev: EvPlan,
    allowed_kw: float,
    discharge_max_kw: float,
    charge_max_kw: float,
    discharge_free_kw: float,
    grid_charge_kw: float,
    required_kw: float | None = None,
) -> tuple[float, float]:
    """Choose EV charging and battery power for one step; return ``(ev_kw, battery_kw)``.

    Parameters
    ----------
    other_kw : float
        Non-EV load minus PV generation (kW); negative when PV is in surplus.
    ev : EvPlan
        The vans' must/flat/cap charging powers (kW).
    allowed_kw : float
        Import the demand controller allows this step (see :func:`allowed_import_kw`).
    discharge_max_kw, charge_max_kw : float
        Battery limits for this step from its rating and state of charge (kW, AC side, both >= 0).
    discharge_free_kw : float
        Discharge available above the reserve state of charge, used for self-consumption.
    grid_charge_kw : float
        Charging from the grid permitted now (refilling the reserve off-peak or before a DR event).
    required_kw : float, optional
        Import a DR floor needs this step (see :func:`allowed_import_kw`); never above ``allowed_kw``.

    Returns
    -------
    ev_kw : float
        EV charging power, within [ev.must_kw, ev.cap_kw].
    battery_kw : float
        + discharge, - charge. The battery never discharges into an export.

    Notes
    -----
    Priorities, cheapest first: soak PV surplus into vans then the battery; cover import with stored
    energy above the reserve; when the slot would exceed its target, defer EV charging down to the
    vans' least-laxity point and only then dig into the battery's reserve; with headroom left, refill
    the reserve from the grid without crossing the target. Under a floor, import is raised to it after
    that: stop discharging, bring EV charging forward up to the chargers' cap, then charge the battery
    (within its power and state of charge, and never past the allowed import).
    """
    ev_kw, battery_kw = _within_target(other_kw, ev, allowed_kw, discharge_max_kw, charge_max_kw,
                                       discharge_free_kw, grid_charge_kw)  # fmt: skip
    if required_kw is None:
        return ev_kw, battery_kw
    short_kw = min(required_kw, max(allowed_kw, 0.0)) - (other_kw + ev_kw - battery_kw)
    if short_kw <= 0.0:
        return ev_kw, battery_kw
    if battery_kw > 0.0:
        undo_kw = min(battery_kw, short_kw)
        battery_kw -= undo_kw
        short_kw -= undo_kw
    more_ev_kw = min(ev.cap_kw - ev_kw, short_kw)
    ev_kw += more_ev_kw
    short_kw -= more_ev_kw
    battery_kw -= max(0.0, min(charge_max_kw + battery_kw, short_kw))
    return ev_kw, battery_kw


def _within_target(
    other_kw: float,
    ev: EvPlan,
    allowed_kw: float,
    discharge_max_kw: float,
    charge_max_kw: float,
    discharge_free_kw: float,
    grid_charge_kw: float,
) -> tuple[float, float]:
    """:func:`dispatch` without a floor: EV and battery power that keep import within ``allowed_kw``."""
    ev_kw = ev.flat_kw
    net_kw = other_kw + ev_kw
    if net_kw < 0.0:
        soak_kw = min(ev.cap_kw - ev_kw, -net_kw)
        ev_kw += soak_kw
        net_kw += soak_kw
        battery_kw = -min(charge_max_kw, -net_kw) if net_kw < 0.0 else 0.0
        return ev_kw, battery_kw

    battery_kw = min(discharge_free_kw, net_kw)
    grid_kw = net_kw - battery_kw
    headroom_kw = allowed_kw if allowed_kw > 0.0 else 0.0
    if grid_kw > headroom_kw:
        excess_kw = grid_kw - headroom_kw
        defer_kw = min(ev_kw - ev.must_kw, excess_kw)
        ev_kw -= defer_kw
        excess_kw -= defer_kw
        battery_kw += max(0.0, min(discharge_max_kw - battery_kw, excess_kw))
    elif battery_kw <= 0.0 and grid_charge_kw > 0.0:
        battery_kw = -min(grid_charge_kw, headroom_kw - grid_kw)
    return ev_kw, battery_kw
