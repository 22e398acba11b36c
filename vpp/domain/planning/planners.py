"""Day-ahead site planners for demand response: peak-cut, peak-shift and import floor as linear programmes.

All take a site's forecasts (non-EV load and PV, kW per 30-minute slot), its battery
(:class:`SiteFlex`) and deferrable EV charging (:class:`EvDemand`), and return a :class:`Plan`.
The LP itself is in :mod:`vpp.domain.planning.lp`; the reactive benchmark controller in
:mod:`vpp.domain.planning.reactive`; inputs, outputs and checks in :mod:`vpp.domain.planning.model`.

Decisions shared by the planners:

- The battery ends the horizon at least as full as it started (``terminal_soc_kwh`` overrides),
  so a plan never borrows the next day's energy to look good today.
- EVs charge as early as possible among otherwise equally good plans (a tiny tie-break cost),
  so vehicles are ready early and the plan is reproducible.
- Requests that cannot be met raise :class:`InfeasiblePlan` with the reason; no silent plan.
- Sites that may not export curtail PV they cannot absorb; curtailment is penalised like export.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace

import numpy as np

from vpp.domain.planning.floor import check_import_floor, floor_energy_reason
from vpp.domain.planning.lp import LpCosts, LpSolution, solve_site_lp
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
from vpp.domain.planning.reactive import threshold_controller

__all__ = [
    "EvDemand",
    "InfeasiblePlan",
    "PeakShiftWeights",
    "Plan",
    "SiteFlex",
    "plan_import_floor",
    "plan_peak_cut",
    "plan_peak_shift",
    "threshold_controller",
]

# Peak-cut objective weights, in "penalty units". 1 kW of peak above the target costs far more than
# any achievable saving elsewhere (moving 1 kW for a whole day is 24 kWh × ~0.3 units), so the
# peak is minimised first; then grid import (self-consumption), then battery throughput (wear).
_PEAK_EXCESS_PER_KW = 1_000.0
_IMPORT_PER_KWH = 1.0
_CURTAIL_PER_KWH = 1.0  # curtailed PV is energy that could have displaced an import
_CYCLE_PER_KWH = 0.1


@dataclass(frozen=True)
class PeakShiftWeights:
    """Penalties of the peak-shift objective, JPY per kWh.

    Attributes
    ----------
    peak_import_penalty_jpy_per_kwh : float
        Added to the price in the peak slots; "strong" means well above any price spread, so import
        leaves the peak whenever the site can move it.
    export_penalty_jpy_per_kwh : float
        Per kWh exported (or curtailed at sites that may not export): absorbing the PV surplus on
        site (battery, EVs) is preferred to sending it to a grid that is curtailing renewables.
    cycle_cost_jpy_per_kwh : float
        Battery wear per kWh charged or discharged; raised automatically when needed so the plan
        never charges and discharges at once (see :mod:`vpp.domain.planning.lp`).
    window_peak_penalty_jpy_per_kw : float
        Per kW of window import above its target: far above what moving a kW for a whole day costs in
        energy (48 × 0.5 h × ~150 JPY/kWh), so the window's kW comes first, then the energy terms.
    """

    peak_import_penalty_jpy_per_kwh: float = 100.0
    export_penalty_jpy_per_kwh: float = 30.0
    cycle_cost_jpy_per_kwh: float = 3.0
    window_peak_penalty_jpy_per_kw: float = 10_000.0


def _plan_of(strategy: str, problem: SiteProblem, solution: LpSolution, target_kw: float | None, status: str) -> Plan:
    """The plan an LP solution describes."""
    return make_plan(
        strategy,
        problem,
        charge_kw=solution.charge_kw,
        discharge_kw=solution.discharge_kw,
        import_kw=solution.import_kw,
        export_kw=solution.export_kw,
        curtailed_kw=solution.curtailed_kw,
        ev_kw_by_demand=solution.ev_kw_by_demand,
        soc_kwh=solution.soc_kwh,
        target_kw=target_kw,
        objective=solution.objective,
        status=status,
    )


def plan_peak_cut(
    base_load_kw: Sequence[float],
    pv_kw: Sequence[float],
    flex: SiteFlex,
    evs: Sequence[EvDemand],
    target_kw: float,
    *,
    terminal_soc_kwh: float | None = None,
    reserve_value_per_kwh: float = 0.0,
) -> Plan:
    """Keep every slot's import at or under ``target_kw``; if impossible, minimise the peak.

    Min-max form: import_t ≤ target_kw + x for all t, x ≥ 0, minimise 1000·x + Σ Δ·import_t
    + 0.1·Σ Δ·(charge_t + discharge_t) (+ curtailment and the EV tie-break), Δ = 0.5 h.
    When x > 0 the target was out of reach: ``target_met`` is False and ``peak_import_kw`` is the
    lowest achievable peak (kW). The secondary terms make the battery absorb PV that would
    otherwise be exported and keep its throughput low.

    Parameters
    ----------
    base_load_kw, pv_kw : sequence of float
        Forecast non-EV load and PV output per slot, kW.
    flex : SiteFlex
    evs : sequence of EvDemand
    target_kw : float
        Import limit per slot (demand, kW), ≥ 0.
    terminal_soc_kwh : float, optional
        Minimum SoC at the end of the horizon, kWh; defaults to the initial SoC.
    reserve_value_per_kwh : float
        Credit per kWh in the battery, averaged over the horizon (0: none). Among plans with the same peak,
        energy is then stored early and spent late instead of just in time: what an intraday re-plan
        wants, since the rest of the day may bring more load than forecast and a full battery is the
        reserve against it. Keep it below the import cost (1 per kWh) so the peak and the energy still
        come first.

    Raises
    ------
    InfeasiblePlan
        Inconsistent battery limits, EV energy that does not fit its window, or a solver failure.
    """
    if not target_kw >= 0:
        raise InfeasiblePlan(f"peak-cut target must be a number ≥ 0 kW, got {target_kw}")
    problem = site_problem(base_load_kw, pv_kw, flex, evs, terminal_soc_kwh)
    costs = LpCosts(
        import_per_kwh=np.full(problem.horizon, _IMPORT_PER_KWH),
        export_per_kwh=0.0,
        curtail_per_kwh=_CURTAIL_PER_KWH,
        cycle_per_kwh=_CYCLE_PER_KWH,
        peak_excess_per_kw=_PEAK_EXCESS_PER_KW,
        reserve_value_per_kwh=reserve_value_per_kwh,
    )
    solution = solve_site_lp(problem, costs, target_kw=target_kw)
    peak_kw = float(solution.import_kw.max())
    status = (
        f"target {target_kw:g} kW met (peak {peak_kw:.3f} kW)"
        if peak_kw <= target_kw + 1e-6
        else f"target {target_kw:g} kW out of reach; lowest achievable peak {peak_kw:.3f} kW"
    )
    return _plan_of("peak_cut", problem, solution, target_kw, status)


def plan_peak_shift(
    base_load_kw: Sequence[float],
    pv_kw: Sequence[float],
    flex: SiteFlex,
    evs: Sequence[EvDemand],
    price_jpy_per_kwh: Sequence[float],
    peak_slots: Collection[int],
    *,
    terminal_soc_kwh: float | None = None,
    weights: PeakShiftWeights = PeakShiftWeights(),
    window_target_kw: float | None = None,
    outside_cap_kw: float | None = None,
) -> Plan:
    """Move consumption out of the peak slots and into cheap or PV-surplus slots, without a new peak.

    Operators mean two things by a peak-shift: the import in the peak slots (the window) comes down to
    a kW figure, and the energy moved does not make a new peak elsewhere: every slot outside the window
    stays at or under ``outside_cap_kw``, normally the site's current monthly maximum demand, because
    under the 12-month ratchet one higher half-hour raises the contract demand for a year.

    The LP, in order of priority:

    1. import_t ≤ ``outside_cap_kw`` in every slot outside the window (a hard bound);
    2. import_t ≤ ``window_target_kw`` + x in every window slot, minimising x at
       ``window_peak_penalty_jpy_per_kw`` per kW (no target: target 0, so x is the window peak and the
       plan brings it as low as the site can);
    3. Σ_t Δ·(price_t + peak penalty·[t ∈ peak])·import_t + export penalty·Σ Δ·(export_t + curtailed_t)
       + cycle cost·Σ Δ·(charge_t + discharge_t) (+ the EV tie-break), Δ = 0.5 h, in JPY.

    When the cap cannot hold on its own (the forecast load and the EV energy owed already exceed it
    outside the window), the plan is re-solved with the cap as a soft target sharing the window's excess
    variable, and ``status`` says that both could not hold and by how much. ``target_met`` is True when the
    window is at or under its target *and* no slot outside exceeds the cap (None without a target).

    Parameters
    ----------
    base_load_kw, pv_kw : sequence of float
        Forecast non-EV load and PV output per slot, kW.
    flex : SiteFlex
    evs : sequence of EvDemand
    price_jpy_per_kwh : sequence of float
        Import price per slot, JPY/kWh (e.g. JEPX plus network charges).
    peak_slots : collection of int
        0-based slots of the window, whose import is penalised.
    terminal_soc_kwh : float, optional
        Minimum SoC at the end of the horizon, kWh; defaults to the initial SoC.
    weights : PeakShiftWeights
    window_target_kw : float, optional
        Import limit in the window, kW (≥ 0).
    outside_cap_kw : float, optional
        Import limit in every slot outside the window, kW (≥ 0); none when omitted.

    Raises
    ------
    InfeasiblePlan
        Inconsistent battery limits, EV energy that does not fit its window, or a solver failure.
    """
    problem = site_problem(base_load_kw, pv_kw, flex, evs, terminal_soc_kwh)
    price = np.asarray(price_jpy_per_kwh, dtype=float)
    if price.shape != (problem.horizon,) or not np.isfinite(price).all():
        raise ValueError(f"price_jpy_per_kwh must hold {problem.horizon} finite values")
    for name, value in (("window_target_kw", window_target_kw), ("outside_cap_kw", outside_cap_kw)):
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise InfeasiblePlan(f"{name} must be a finite number ≥ 0 kW, got {value}")
    peak = np.zeros(problem.horizon, dtype=bool)
    for slot in peak_slots:
        if not 0 <= slot < problem.horizon:
            raise ValueError(f"peak slot {slot} is outside the horizon [0, {problem.horizon})")
        peak[slot] = True
    costs = LpCosts(
        import_per_kwh=price + weights.peak_import_penalty_jpy_per_kwh * peak,
        export_per_kwh=weights.export_penalty_jpy_per_kwh,
        curtail_per_kwh=weights.export_penalty_jpy_per_kwh,
        cycle_per_kwh=weights.cycle_cost_jpy_per_kwh,
        peak_excess_per_kw=weights.window_peak_penalty_jpy_per_kw,
    )
    window_kw = 0.0 if window_target_kw is None else window_target_kw
    targets = np.where(peak, window_kw, np.inf) if peak.any() else None
    cap = np.where(peak, np.inf, np.inf if outside_cap_kw is None else outside_cap_kw)
    cap_note = ""
    try:
        solution = solve_site_lp(problem, costs, target_kw=targets, import_cap_kw=cap)
    except InfeasiblePlan:
        if outside_cap_kw is None:
            raise
        # The cap alone cannot hold: share one excess between the window and the rest of the day.
        both = np.where(peak, window_kw, outside_cap_kw)
        solution = solve_site_lp(problem, replace(costs, peak_excess_per_kw=_PEAK_EXCESS_PER_KW * 100), target_kw=both)
        cap_note = (
            f"; window target {window_kw:g} kW and outside cap {outside_cap_kw:g} kW cannot both hold on this "
            f"forecast (load and EV energy owed outside the window exceed the cap): worst slot "
            f"{solution.excess_kw:.3f} kW over"
        )
    window_peak_kw = float(solution.import_kw[peak].max()) if peak.any() else 0.0
    outside_peak_kw = float(solution.import_kw[~peak].max()) if (~peak).any() else 0.0
    peak_import_kwh = float(solution.import_kw[peak].sum()) * SLOT_HOURS
    exported_kwh = float(solution.export_kw.sum() + solution.curtailed_kw.sum()) * SLOT_HOURS
    target_met: bool | None = None
    if window_target_kw is not None:
        cap_ok = outside_cap_kw is None or outside_peak_kw <= outside_cap_kw + 1e-6
        target_met = window_peak_kw <= window_target_kw + 1e-6 and cap_ok
    target_text = "" if window_target_kw is None else f" (target {window_target_kw:g} kW)"
    cap_text = "" if outside_cap_kw is None else f" (cap {outside_cap_kw:g} kW)"
    plan = _plan_of(
        "peak_shift",
        problem,
        solution,
        None,
        f"optimal: window peak {window_peak_kw:.3f} kW{target_text}, peak outside it "
        f"{outside_peak_kw:.3f} kW{cap_text}, {peak_import_kwh:.3f} kWh imported in peak slots, "
        f"{exported_kwh:.3f} kWh exported or curtailed{cap_note}",
    )
    return replace(plan, target_met=target_met)


def plan_import_floor(
    base_load_kw: Sequence[float],
    pv_kw: Sequence[float],
    flex: SiteFlex,
    evs: Sequence[EvDemand],
    import_floor_kw: Sequence[float],
    price_jpy_per_kwh: Sequence[float],
    *,
    terminal_soc_kwh: float | None = None,
    weights: PeakShiftWeights = PeakShiftWeights(),
) -> Plan:
    """Import at least ``import_floor_kw[t]`` in every slot where it is positive ("X kW more" events).

    The same LP as :func:`plan_peak_shift` without peak slots, plus ``import_t ≥ floor_t`` and no export in
    the floored slots: the battery charges and EV charging is brought forward into them, and the energy
    stored is used later to displace import. Minimises, in JPY, Σ_t Δ·price_t·import_t + export penalty
    ·Σ Δ·(export_t + curtailed_t) + cycle cost·Σ Δ·(charge_t + discharge_t) (+ the EV tie-break).

    Parameters
    ----------
    base_load_kw, pv_kw : sequence of float
        Forecast non-EV load and PV output per slot, kW.
    flex : SiteFlex
    evs : sequence of EvDemand
    import_floor_kw : sequence of float
        Minimum import per slot, kW (0 = no floor in that slot).
    price_jpy_per_kwh : sequence of float
        Import price per slot, JPY/kWh.
    terminal_soc_kwh : float, optional
        Minimum SoC at the end of the horizon, kWh; defaults to the initial SoC.
    weights : PeakShiftWeights
        Its peak penalty is unused (there are no peak slots).

    Raises
    ------
    InfeasiblePlan
        A floor above what the site can draw in its slot (load − PV + battery and EV charger power), or
        more energy than the battery and the EVs can take over the floored slots, with the numbers; also
        inconsistent battery limits and EV energy that does not fit its window.
    """
    problem = site_problem(base_load_kw, pv_kw, flex, evs, terminal_soc_kwh)
    price = np.asarray(price_jpy_per_kwh, dtype=float)
    floor = np.asarray(import_floor_kw, dtype=float)
    for name, series in (("price_jpy_per_kwh", price), ("import_floor_kw", floor)):
        if series.shape != (problem.horizon,) or not np.isfinite(series).all():
            raise ValueError(f"{name} must hold {problem.horizon} finite values")
    check_import_floor(problem, floor)
    costs = LpCosts(
        import_per_kwh=price,
        export_per_kwh=weights.export_penalty_jpy_per_kwh,
        curtail_per_kwh=weights.export_penalty_jpy_per_kwh,
        cycle_per_kwh=weights.cycle_cost_jpy_per_kwh,
    )
    try:
        solution = solve_site_lp(problem, costs, import_floor_kw=floor)
    except InfeasiblePlan:
        raise InfeasiblePlan(floor_energy_reason(problem, floor)) from None
    floored = floor > 0
    extra_kwh = float((solution.import_kw[floored] - problem.base_load_kw[floored] + problem.pv_kw[floored]).sum())
    return _plan_of(
        "import_floor",
        problem,
        solution,
        None,
        f"optimal: floors met in {int(floored.sum())} slots, "
        f"{extra_kwh * SLOT_HOURS:.3f} kWh consumed there above load − PV",
    )
