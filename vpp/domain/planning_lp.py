"""The site scheduling linear programme shared by the peak-cut and peak-shift planners.

Variables per slot t (kW unless stated): charge c_t, discharge d_t, import i_t, export e_t,
curtailed PV u_t, the SoC s_0..s_T (kWh), EV charging v_{k,t} for each EV k only inside its window,
and, for peak-cut, one excess variable x (kW above the target). With Δ = 0.5 h:

    balance    i_t − e_t − c_t + d_t − u_t − Σ_k v_{k,t} = load_t − pv_t
    SoC        s_{t+1} − s_t − Δ η_c c_t + Δ d_t / η_d = 0,     s_0 = initial,  s_T ≥ terminal
    EV energy  Σ_t Δ v_{k,t} = E_k
    peak cut   i_t − x ≤ target                                 (only with a target)
    bounds     0 ≤ c_t, d_t ≤ P;  soc_min ≤ s_t ≤ soc_max;  0 ≤ v_{k,t} ≤ P_k;
               e_t = 0 when export is not allowed, else u_t = 0;  u_t ≤ pv_t

Objective: Σ_t Δ (import_cost_t i_t + export_cost e_t + curtail_cost u_t + cycle_cost (c_t + d_t))
+ excess_cost x + a tiny preference for early EV charging (so EVs are ready as soon as possible
among equally good plans).

An LP cannot forbid charging and discharging in the same slot. Doing both wastes energy, which is
only worth it when disposing of energy is rewarded (avoiding an export or curtailment penalty, or a
negative price). Burning 1 kWh that way takes (1 + η)/(1 − η) kWh of throughput (η = η_c η_d),
so the cycle cost is raised to at least 2 × that reward × (1 − η)/(1 + η): exporting or curtailing
is then always cheaper than burning, and the optimum never charges and discharges at once.

The matrices are built with vectorised index arithmetic into scipy sparse form and solved with
HiGHS through ``scipy.optimize.linprog(method="highs")``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from scipy.optimize import linprog

from vpp.domain.planning_model import SLOT_HOURS, InfeasiblePlan, SiteProblem

__all__ = ["LpCosts", "LpSolution", "solve_site_lp"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# Cost per kWh of charging an EV in the last slot instead of the first: small enough never to
# compete with any real cost or penalty, large enough to break ties above the solver tolerance.
_EV_EARLINESS_COST_PER_KWH = 1e-3


@dataclass(frozen=True)
class LpCosts:
    """Objective coefficients, per kWh (per kW for ``peak_excess``), in the planner's units."""

    import_per_kwh: FloatArray  # one per slot
    export_per_kwh: float
    curtail_per_kwh: float
    cycle_per_kwh: float
    peak_excess_per_kw: float = 0.0


@dataclass(frozen=True)
class LpSolution:
    charge_kw: FloatArray
    discharge_kw: FloatArray
    import_kw: FloatArray
    export_kw: FloatArray
    curtailed_kw: FloatArray
    ev_kw_by_demand: tuple[FloatArray, ...]
    soc_kwh: FloatArray
    excess_kw: float
    objective: float


def solve_site_lp(problem: SiteProblem, costs: LpCosts, target_kw: float | None = None) -> LpSolution:
    """Build and solve the site LP; raise :class:`InfeasiblePlan` if HiGHS finds no optimum."""
    horizon = problem.horizon
    flex = problem.flex
    dt = SLOT_HOURS
    slots = np.arange(horizon)
    ones = np.ones(horizon)

    # Column blocks: charge, discharge, import, export, curtail (horizon each), SoC (horizon + 1),
    # then each EV's in-window slots, then the peak excess when there is a target.
    col_c, col_d, col_i, col_e, col_u, col_s = (block * horizon for block in range(6))
    col_ev = 6 * horizon + 1
    ev_slots = [np.arange(ev.available_from_slot, ev.deadline_slot) for ev in problem.evs]
    ev_sizes = np.array([len(window) for window in ev_slots], dtype=np.int64)
    ev_slot_all: IntArray = np.concatenate(ev_slots) if ev_slots else np.zeros(0, dtype=np.int64)
    ev_index_all = np.repeat(np.arange(len(ev_slots)), ev_sizes)
    ev_cols = col_ev + np.arange(ev_slot_all.size)
    col_x = col_ev + ev_slot_all.size
    n_cols = col_x + (1 if target_kw is not None else 0)

    eta_c, eta_d = flex.charge_efficiency, flex.discharge_efficiency
    soc_rows = horizon + slots
    ev_rows = 2 * horizon + ev_index_all
    # (rows, columns, coefficients) of each term of the equality constraints.
    terms = [
        (slots, col_i + slots, ones),  # balance rows 0 .. T-1
        (slots, col_e + slots, -ones),
        (slots, col_c + slots, -ones),
        (slots, col_d + slots, ones),
        (slots, col_u + slots, -ones),
        (ev_slot_all, ev_cols, -np.ones(ev_cols.size)),
        (soc_rows, col_s + slots + 1, ones),  # SoC rows T .. 2T-1
        (soc_rows, col_s + slots, -ones),
        (soc_rows, col_c + slots, -dt * eta_c * ones),
        (soc_rows, col_d + slots, (dt / eta_d) * ones),
        (ev_rows, ev_cols, np.full(ev_cols.size, dt)),  # EV energy rows 2T .. 2T+K-1
    ]
    rows = np.concatenate([term[0] for term in terms])
    cols = np.concatenate([term[1] for term in terms])
    values = np.concatenate([term[2] for term in terms])
    n_eq = 2 * horizon + len(problem.evs)
    a_eq = sp.csr_array((values, (rows, cols)), shape=(n_eq, n_cols))
    b_eq = np.concatenate(
        [problem.base_load_kw - problem.pv_kw, np.zeros(horizon), [ev.energy_kwh for ev in problem.evs]]
    )

    lower = np.zeros(n_cols)
    upper = np.full(n_cols, np.inf)
    upper[col_c:col_i] = flex.battery_power_kw  # charge and discharge blocks
    if flex.export_allowed:
        upper[col_u:col_s] = 0.0
    else:
        upper[col_e:col_u] = 0.0
        upper[col_u:col_s] = problem.pv_kw
    lower[col_s:col_ev] = flex.soc_min_kwh
    upper[col_s:col_ev] = flex.soc_max_kwh
    lower[col_s] = upper[col_s] = flex.soc_kwh_initial
    lower[col_ev - 1] = problem.terminal_soc_kwh
    upper[col_ev:col_x] = np.array([ev.max_power_kw for ev in problem.evs])[ev_index_all]

    objective = np.zeros(n_cols)
    objective[col_i:col_e] = dt * costs.import_per_kwh
    objective[col_e:col_u] = dt * costs.export_per_kwh
    objective[col_u:col_s] = dt * costs.curtail_per_kwh
    objective[col_c:col_i] = dt * _anti_burn_cycle_cost(costs, eta_c * eta_d)
    objective[col_ev:col_x] = dt * _EV_EARLINESS_COST_PER_KWH * ev_slot_all / horizon

    a_ub = b_ub = None
    if target_kw is not None:
        objective[col_x] = costs.peak_excess_per_kw
        ub_entries = (np.concatenate([slots, slots]), np.concatenate([col_i + slots, np.full(horizon, col_x)]))
        a_ub = sp.csr_array((np.concatenate([ones, -ones]), ub_entries), shape=(horizon, n_cols))
        b_ub = np.full(horizon, target_kw)

    result = linprog(
        objective,
        A_ub=a_ub,
        b_ub=b_ub,
        A_eq=a_eq,
        b_eq=b_eq,
        bounds=np.column_stack([lower, upper]),
        method="highs",
    )
    if result.status != 0 or result.x is None:
        raise InfeasiblePlan(f"HiGHS found no optimal plan (status {result.status}): {result.message}")
    x: FloatArray = np.maximum(result.x, 0.0)  # every variable is ≥ 0; drop solver noise below it
    return LpSolution(
        charge_kw=x[col_c:col_d],
        discharge_kw=x[col_d:col_i],
        import_kw=x[col_i:col_e],
        export_kw=x[col_e:col_u],
        curtailed_kw=x[col_u:col_s],
        ev_kw_by_demand=_ev_series(x[col_ev:col_x], ev_slots, ev_sizes, horizon),
        soc_kwh=result.x[col_s:col_ev],
        excess_kw=float(x[col_x]) if target_kw is not None else 0.0,
        objective=float(result.fun),
    )


def _anti_burn_cycle_cost(costs: LpCosts, round_trip: float) -> float:
    """Cycle cost high enough that charging and discharging at once never pays (module docstring)."""
    disposal_reward = max(
        costs.export_per_kwh, costs.curtail_per_kwh, float(np.max(-costs.import_per_kwh, initial=0.0))
    )
    return max(costs.cycle_per_kwh, 2.0 * disposal_reward * (1.0 - round_trip) / (1.0 + round_trip))


def _ev_series(
    values: FloatArray, ev_slots: list[IntArray], ev_sizes: IntArray, horizon: int
) -> tuple[FloatArray, ...]:
    out: list[FloatArray] = []
    start = 0
    for window, size in zip(ev_slots, ev_sizes, strict=True):
        series = np.zeros(horizon)
        series[window] = values[start : start + size]
        out.append(series)
        start += int(size)
    return tuple(out)
