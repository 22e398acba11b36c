"""A reactive threshold controller, simulated slot by slot, as the benchmark for the LP planners.

It behaves like a common site demand controller with no forecast: EVs charge at full power from the
moment they are available until full; the battery discharges when import would exceed the threshold
and recharges (from PV surplus first, then from the grid) whenever that keeps import at or under
the threshold. It sees each slot's average load exactly, which flatters it slightly compared with
a real controller that reacts within the slot.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vpp.domain.planning.model import (
    SLOT_HOURS,
    EvDemand,
    InfeasiblePlan,
    Plan,
    SiteFlex,
    SiteProblem,
    make_plan,
    site_problem,
)

__all__ = ["threshold_controller"]


def threshold_controller(
    base_load_kw: Sequence[float],
    pv_kw: Sequence[float],
    flex: SiteFlex,
    evs: Sequence[EvDemand],
    threshold_kw: float,
) -> Plan:
    """Simulate the reactive controller over the horizon.

    Per slot t (kW, Δ = 0.5 h): net_t = load_t + ev_t − pv_t. If net_t > threshold, discharge
    min(P, net_t − threshold, (s_t − soc_min)·η_d/Δ); otherwise charge
    min(P, threshold − net_t, (soc_max − s_t)/(η_c·Δ)). Surplus that is neither absorbed nor
    exportable is curtailed. The terminal SoC is whatever results (no terminal constraint).

    ``objective`` is NaN (nothing is optimised); ``target_met`` compares the peak with the
    threshold.

    Raises
    ------
    InfeasiblePlan
        Inconsistent battery limits or EV energy that does not fit its window (checked as for the
        LP planners, so the comparison uses the same inputs).
    """
    if not threshold_kw >= 0:
        raise InfeasiblePlan(f"threshold must be a number ≥ 0 kW, got {threshold_kw}")
    problem = site_problem(base_load_kw, pv_kw, flex, evs)
    ev_by_demand = [_as_soon_as_possible(ev, problem.horizon) for ev in problem.evs]
    ev_total = np.sum(ev_by_demand, axis=0) if ev_by_demand else np.zeros(problem.horizon)
    net_kw = problem.base_load_kw + ev_total - problem.pv_kw
    charge_kw, discharge_kw, soc_kwh = _run_battery(problem, net_kw, threshold_kw)

    grid_kw = net_kw + charge_kw - discharge_kw
    surplus_kw = np.maximum(-grid_kw, 0.0)
    export_kw = surplus_kw if flex.export_allowed else np.zeros(problem.horizon)
    curtailed_kw = np.zeros(problem.horizon) if flex.export_allowed else surplus_kw
    return make_plan(
        "threshold",
        problem,
        charge_kw=charge_kw,
        discharge_kw=discharge_kw,
        import_kw=np.maximum(grid_kw, 0.0),
        export_kw=export_kw,
        curtailed_kw=curtailed_kw,
        ev_kw_by_demand=ev_by_demand,
        soc_kwh=soc_kwh,
        target_kw=threshold_kw,
        objective=float("nan"),
        status=f"reactive threshold controller at {threshold_kw:g} kW",
    )


def _as_soon_as_possible(ev: EvDemand, horizon: int) -> np.ndarray:
    """Full power from the first available slot until the energy is delivered, kW per slot."""
    series = np.zeros(horizon)
    remaining_kwh = ev.energy_kwh
    for slot in range(ev.available_from_slot, ev.deadline_slot):
        power_kw = min(ev.max_power_kw, remaining_kwh / SLOT_HOURS)
        series[slot] = power_kw
        remaining_kwh -= power_kw * SLOT_HOURS
        if remaining_kwh <= 0:
            break
    return series


def _run_battery(
    problem: SiteProblem, net_kw: np.ndarray, threshold_kw: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    flex = problem.flex
    dt = SLOT_HOURS
    eta_c, eta_d = flex.charge_efficiency, flex.discharge_efficiency
    charge_kw = np.zeros(problem.horizon)
    discharge_kw = np.zeros(problem.horizon)
    soc_kwh = np.empty(problem.horizon + 1)
    soc_kwh[0] = soc = flex.soc_kwh_initial
    # The state carries from one slot to the next, so this loop is inherent to a reactive controller.
    for slot, net in enumerate(net_kw.tolist()):
        if net > threshold_kw:
            available_kw = max(soc - flex.soc_min_kwh, 0.0) * eta_d / dt
            discharge_kw[slot] = min(flex.battery_power_kw, net - threshold_kw, available_kw)
        else:
            room_kw = max(flex.soc_max_kwh - soc, 0.0) / (eta_c * dt)
            charge_kw[slot] = min(flex.battery_power_kw, threshold_kw - net, room_kw)
        soc += dt * (eta_c * charge_kw[slot] - discharge_kw[slot] / eta_d)
        # Keep rounding from drifting a hair outside the limits the controller just respected.
        soc = min(max(soc, flex.soc_min_kwh), flex.soc_max_kwh)
        soc_kwh[slot + 1] = soc
    return charge_kw, discharge_kw, soc_kwh
