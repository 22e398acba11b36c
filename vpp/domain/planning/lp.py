"""The site scheduling linear programme shared by the site planners (peak-cut, peak-shift, import floor).

Variables per slot t (kW unless stated): charge c_t, discharge d_t, import i_t, export e_t,
curtailed PV u_t, the SoC s_0..s_T (kWh), EV charging v_{k,t} for each EV k only inside its window,
and, for peak-cut, one excess variable x (kW above the target). With Δ = 0.5 h:

    balance    i_t − e_t − c_t + d_t − u_t − Σ_k v_{k,t} = load_t − pv_t
    SoC        s_{t+1} − s_t − Δ η_c c_t + Δ d_t / η_d = 0,     s_0 = initial,  s_T ≥ terminal
    EV energy  Σ_t Δ v_{k,t} = E_k
    peak cut   i_t − x ≤ target                                 (only with a target)
    floor      i_t ≥ floor_t and e_t = 0                        (only in slots with an import floor)
    bounds     0 ≤ c_t, d_t ≤ P;  soc_min ≤ s_t ≤ soc_max;  0 ≤ v_{k,t} ≤ P_k;
               e_t = 0 when export is not allowed, else u_t = 0;  u_t ≤ pv_t

A floor forbids export in its slot because one meter cannot import and export at the same instant: without
that, the LP could meet a floor by importing and exporting the same kilowatts.

Objective: Σ_t Δ (import_cost_t i_t + export_cost e_t + curtail_cost u_t + cycle_cost (c_t + d_t))
+ excess_cost x + a tiny preference for early EV charging (so EVs are ready as soon as possible
among equally good plans).

An LP cannot forbid charging and discharging in the same slot. Doing both wastes energy, which is
only worth it when disposing of energy is rewarded (avoiding an export or curtailment penalty, or a
negative price). Burning 1 kWh that way takes (1 + η)/(1 − η) kWh of throughput (η = η_c η_d),
so the cycle cost is raised to at least 2 × that reward × (1 − η)/(1 + η): exporting or curtailing
is then always cheaper than burning, and the optimum never charges and discharges at once.

Speed (day-ahead planning runs this for every site): the constraint matrix depends only on the problem's
*shape* (horizon, EV windows, whether there is a target) and the two efficiencies, so its column-wise
pattern is built once per shape and cached; a solve fills in the efficiencies, bounds, right-hand sides
and costs with array operations and hands them to HiGHS (``highspy``) directly. Presolve is off and the
dual simplex is chosen: on these small LPs (~400 columns) presolve and the solver choice cost more than
they save, and scipy's ``linprog`` front end spent three quarters of the time checking its inputs. Each
solve starts from scratch (no warm start from the previous site), so a plan does not depend on which
site was planned before it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache

import highspy
import numpy as np
import numpy.typing as npt

from vpp.domain.planning.highs_solver import QuietHighs, new_quiet_solver
from vpp.domain.planning.model import SLOT_HOURS, InfeasiblePlan, SiteProblem

__all__ = ["LpCosts", "LpSolution", "solve_site_lp"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# Cost per kWh of charging an EV in the last slot instead of the first: small enough never to
# compete with any real cost or penalty, large enough to break ties above the solver tolerance.
_EV_EARLINESS_COST_PER_KWH = 1e-3
_INF = highspy.kHighsInf


@dataclass(frozen=True)
class LpCosts:
    """Objective coefficients, per kWh (per kW for ``peak_excess``), in the planner's units."""

    import_per_kwh: FloatArray  # one per slot
    export_per_kwh: float
    curtail_per_kwh: float
    cycle_per_kwh: float
    peak_excess_per_kw: float = 0.0
    # Credit per kWh held in the battery, averaged over the slot boundaries: among otherwise equal plans,
    # charge early and discharge late, keeping a reserve against a forecast that turns out too low.
    reserve_value_per_kwh: float = 0.0


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


@dataclass(frozen=True)
class _Layout:
    """Where each variable and row of one problem shape lives, and the matrix pattern (CSC).

    Columns: charge, discharge, import, export, curtail (``horizon`` each), SoC (``horizon + 1``), each
    EV's in-window slots, then the peak excess when there is a target. Rows: balance (``horizon``), SoC
    (``horizon``), EV energy (one per EV), then the target rows.
    """

    horizon: int
    n_cols: int
    n_rows: int
    col_ev: int
    col_x: int
    ev_slot_all: IntArray  # the slot of each EV column
    ev_index_all: IntArray  # the EV of each EV column
    ev_windows: tuple[tuple[int, int], ...]
    has_target: bool
    a_start: npt.NDArray[np.int32]
    a_index: npt.NDArray[np.int32]
    a_value: FloatArray  # with the efficiency-dependent entries still to be filled in
    charge_soc_entries: IntArray  # positions in a_value of −Δ η_c
    discharge_soc_entries: IntArray  # positions in a_value of Δ / η_d
    integrality: npt.NDArray[np.int32]  # all continuous; HiGHS's array interface wants it spelled out


@lru_cache(maxsize=64)
def _layout(horizon: int, ev_windows: tuple[tuple[int, int], ...], has_target: bool) -> _Layout:
    dt = SLOT_HOURS
    slots = np.arange(horizon)
    ones = np.ones(horizon)
    col_c, col_d, col_i, col_e, col_u, col_s = (block * horizon for block in range(6))
    col_ev = 6 * horizon + 1
    ev_slots = [np.arange(first, deadline) for first, deadline in ev_windows]
    ev_sizes = np.array([len(window) for window in ev_slots], dtype=np.int64)
    ev_slot_all: IntArray = np.concatenate(ev_slots) if ev_slots else np.zeros(0, dtype=np.int64)
    ev_index_all = np.repeat(np.arange(len(ev_slots)), ev_sizes)
    ev_cols = col_ev + np.arange(ev_slot_all.size)
    col_x = col_ev + ev_slot_all.size
    n_cols = col_x + (1 if has_target else 0)
    n_eq = 2 * horizon + len(ev_windows)

    soc_rows = horizon + slots
    ev_rows = 2 * horizon + ev_index_all
    charge_marker, discharge_marker = -2.0, 3.0  # replaced per solve; any value not used elsewhere
    # (rows, columns, coefficients) of each term.
    terms = [
        (slots, col_i + slots, ones),  # balance rows 0 .. T-1
        (slots, col_e + slots, -ones),
        (slots, col_c + slots, -ones),
        (slots, col_d + slots, ones),
        (slots, col_u + slots, -ones),
        (ev_slot_all, ev_cols, -np.ones(ev_cols.size)),
        (soc_rows, col_s + slots + 1, ones),  # SoC rows T .. 2T-1
        (soc_rows, col_s + slots, -ones),
        (soc_rows, col_c + slots, np.full(horizon, charge_marker)),
        (soc_rows, col_d + slots, np.full(horizon, discharge_marker)),
        (ev_rows, ev_cols, np.full(ev_cols.size, dt)),  # EV energy rows 2T .. 2T+K-1
    ]
    if has_target:  # target rows: i_t − x ≤ target
        terms += [(n_eq + slots, col_i + slots, ones), (n_eq + slots, np.full(horizon, col_x), -ones)]
    rows = np.concatenate([term[0] for term in terms])
    cols = np.concatenate([term[1] for term in terms])
    values = np.concatenate([term[2] for term in terms])
    # Column-major order, rows ascending within a column: what HiGHS's column-wise format expects.
    order = np.lexsort((rows, cols))
    rows, cols, values = rows[order], cols[order], values[order]
    soc_entry = rows >= horizon
    soc_entry &= rows < 2 * horizon
    return _Layout(
        horizon=horizon,
        n_cols=n_cols,
        n_rows=n_eq + (horizon if has_target else 0),
        col_ev=col_ev,
        col_x=col_x,
        ev_slot_all=ev_slot_all,
        ev_index_all=ev_index_all,
        ev_windows=ev_windows,
        has_target=has_target,
        a_start=np.searchsorted(cols, np.arange(n_cols + 1)).astype(np.int32),
        a_index=rows.astype(np.int32),
        a_value=values,
        charge_soc_entries=np.flatnonzero(soc_entry & (cols < col_d)),
        discharge_soc_entries=np.flatnonzero(soc_entry & (cols >= col_d) & (cols < col_i)),
        integrality=np.zeros(n_cols, dtype=np.int32),
    )


_solvers = threading.local()


def _solver() -> QuietHighs:
    """This thread's HiGHS instance (one is not thread-safe; creating one per solve costs ~15%)."""
    solver: QuietHighs | None = getattr(_solvers, "highs", None)
    if solver is None:
        solver = new_quiet_solver()
        _solvers.highs = solver
    return solver


def solve_site_lp(
    problem: SiteProblem,
    costs: LpCosts,
    target_kw: float | FloatArray | None = None,
    import_floor_kw: FloatArray | None = None,
    import_cap_kw: FloatArray | None = None,
) -> LpSolution:
    """Build and solve the site LP; raise :class:`InfeasiblePlan` if HiGHS finds no optimum.

    ``target_kw`` is one soft limit for every slot, or one per slot (``inf`` = no target in that slot;
    the excess x is shared, so it measures the worst slot). ``import_floor_kw`` (one value per slot, kW;
    0 = no floor) makes the plan import at least that much in every slot where it is positive.
    ``import_cap_kw`` (one value per slot, ``inf`` = none) is a hard upper bound on import.
    """
    horizon = problem.horizon
    flex = problem.flex
    dt = SLOT_HOURS
    windows = tuple((ev.available_from_slot, ev.deadline_slot) for ev in problem.evs)
    layout = _layout(horizon, windows, target_kw is not None)
    col_c, col_d, col_i, col_e, col_u, col_s = (block * horizon for block in range(6))
    col_ev, col_x, n_cols = layout.col_ev, layout.col_x, layout.n_cols

    eta_c, eta_d = flex.charge_efficiency, flex.discharge_efficiency
    a_value = layout.a_value.copy()
    a_value[layout.charge_soc_entries] = -dt * eta_c
    a_value[layout.discharge_soc_entries] = dt / eta_d

    b_eq = np.concatenate(
        [problem.base_load_kw - problem.pv_kw, np.zeros(horizon), [ev.energy_kwh for ev in problem.evs]]
    )
    row_lower, row_upper = b_eq, b_eq
    if target_kw is not None:
        row_lower = np.concatenate([b_eq, np.full(horizon, -_INF)])
        row_upper = np.concatenate([b_eq, np.broadcast_to(np.asarray(target_kw, dtype=float), (horizon,))])

    lower = np.zeros(n_cols)
    upper = np.full(n_cols, _INF)
    upper[col_c:col_i] = flex.battery_power_kw  # charge and discharge blocks
    if flex.export_allowed:
        upper[col_u:col_s] = 0.0
    else:
        upper[col_e:col_u] = 0.0
        upper[col_u:col_s] = problem.pv_kw
    if import_floor_kw is not None:
        floored = import_floor_kw > 0
        lower[col_i:col_e] = np.where(floored, import_floor_kw, 0.0)
        upper[col_e:col_u][floored] = 0.0
    if import_cap_kw is not None:
        upper[col_i:col_e] = np.minimum(upper[col_i:col_e], import_cap_kw)
    lower[col_s:col_ev] = flex.soc_min_kwh
    upper[col_s:col_ev] = flex.soc_max_kwh
    lower[col_s] = upper[col_s] = flex.soc_kwh_initial
    lower[col_ev - 1] = problem.terminal_soc_kwh
    upper[col_ev:col_x] = np.array([ev.max_power_kw for ev in problem.evs])[layout.ev_index_all]

    objective = np.zeros(n_cols)
    objective[col_i:col_e] = dt * costs.import_per_kwh
    objective[col_e:col_u] = dt * costs.export_per_kwh
    objective[col_u:col_s] = dt * costs.curtail_per_kwh
    objective[col_c:col_i] = dt * _anti_burn_cycle_cost(costs, eta_c * eta_d)
    objective[col_ev:col_x] = dt * _EV_EARLINESS_COST_PER_KWH * layout.ev_slot_all / horizon
    objective[col_s:col_ev] = -costs.reserve_value_per_kwh / (horizon + 1)
    if target_kw is not None:
        objective[col_x] = costs.peak_excess_per_kw

    highs = _solver()
    status = highs.passModel(
        n_cols, layout.n_rows, int(layout.a_value.size), int(highspy.MatrixFormat.kColwise),
        int(highspy.ObjSense.kMinimize), 0.0, objective, lower, upper, row_lower, row_upper,
        layout.a_start, layout.a_index, a_value, layout.integrality,
    )  # fmt: skip
    if status == highspy.HighsStatus.kError:
        raise InfeasiblePlan("HiGHS refused the plan's model (inconsistent bounds)")
    highs.run()
    model_status = highs.getModelStatus()
    if model_status != highspy.HighsModelStatus.kOptimal:
        raise InfeasiblePlan(f"HiGHS found no optimal plan: {highs.modelStatusToString(model_status)}")
    raw: FloatArray = np.array(highs.getSolution().col_value)
    x: FloatArray = np.maximum(raw, 0.0)  # every variable is ≥ 0; drop solver noise below it
    return LpSolution(
        charge_kw=x[col_c:col_d],
        discharge_kw=x[col_d:col_i],
        import_kw=x[col_i:col_e],
        export_kw=x[col_e:col_u],
        curtailed_kw=x[col_u:col_s],
        ev_kw_by_demand=_ev_series(x[col_ev:col_x], layout, horizon),
        soc_kwh=raw[col_s:col_ev],
        excess_kw=float(x[col_x]) if target_kw is not None else 0.0,
        objective=float(highs.getInfo().objective_function_value),
    )


def _anti_burn_cycle_cost(costs: LpCosts, round_trip: float) -> float:
    """Cycle cost high enough that charging and discharging at once never pays (module docstring)."""
    disposal_reward = max(
        costs.export_per_kwh, costs.curtail_per_kwh, float(np.max(-costs.import_per_kwh, initial=0.0))
    )
    return max(costs.cycle_per_kwh, 2.0 * disposal_reward * (1.0 - round_trip) / (1.0 + round_trip))


def _ev_series(values: FloatArray, layout: _Layout, horizon: int) -> tuple[FloatArray, ...]:
    out: list[FloatArray] = []
    start = 0
    for first, deadline in layout.ev_windows:
        series = np.zeros(horizon)
        series[first:deadline] = values[start : start + deadline - first]
        out.append(series)
        start += deadline - first
    return tuple(out)
