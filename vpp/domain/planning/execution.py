"""Run a day-ahead plan against what actually happened, as a site EMS following a DR signal does.

A plan is made on forecasts; the day then brings a different load and PV. The EMS receives the plan as
an import limit per slot (the signal's ``IMPORT_CAPACITY_LIMIT``) plus its battery and EV schedule, and
corrects in each slot: when import would cross the limit it discharges more (or charges less) within the
battery's power and state of charge, then defers flexible EV charging; when there is headroom and the
battery is behind its planned state of charge it catches up without crossing the limit. EV energy owed by
a deadline is always delivered (a van must leave charged), so deferral only moves it later. Once the
day's peak is set, the EMS stops defending anything below it: that would only spend energy needed later.

:func:`receding_horizon_import_kw` adds the scheduler's intraday re-runs (model-predictive control): every
slot (or every few) the rest of the day is re-planned from the measured state (SoC, EV energy still owed,
the peak already set) with forecasts corrected by what the day has shown so far
(:func:`corrected_forecast`). A re-plan may look past midnight (:class:`Lookahead`): a day-end state-of-charge
rule at 24:00 makes the last evening slots recharge the battery at whatever import it takes, and that
recharge sets the day's peak whenever the day used more energy than forecast. With the next morning in the
horizon, the battery is refilled overnight under the same peak instead, and the end-of-horizon rule applies
there; the imports of the lookahead's slots count against the same peak (a monthly demand charge sees them).
The price is a lower planned level with less held back for an evening that runs above forecast: on the DR
benchmark the two came out about even (docs/performance.md), so the benchmark leaves it off by default.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from vpp.domain.planning.model import SLOT_HOURS, EvDemand, Plan, SiteFlex

__all__ = [
    "REPLAN_RESERVE_VALUE_PER_KWH",
    "EmsTracker",
    "Forecaster",
    "Lookahead",
    "corrected_forecast",
    "executed_import_kw",
    "load_residual_estimate",
    "receding_horizon_import_kw",
    "replan_terminal_soc_kwh",
]

FloatArray = npt.NDArray[np.float64]
Planner = Callable[[FloatArray, FloatArray, SiteFlex, list[EvDemand], float, float], Plan]
# (t, load forecast, PV forecast, measured load, measured PV) -> the rest of the day's load and PV from slot t, kW.
Forecaster = Callable[[int, FloatArray, FloatArray, FloatArray, FloatArray], tuple[FloatArray, FloatArray]]

_EPS = 1e-9
# Re-plans value stored energy a little (planning.plan_peak_cut): charge early, spend late, keep a reserve.
REPLAN_RESERVE_VALUE_PER_KWH = 0.3
# Load forecast residuals (measured / forecast − 1) are modelled as a persistent AR(1) part plus white noise,
# and the persistent part is estimated from every slot measured so far with a Kalman filter
# (:func:`load_residual_estimate`), then carried forward fading by ρ per slot. Weighing each slot by how much of
# it is noise stops one noisy slot from bending the rest of the day (the single last-slot carry-forward did),
# and lets a residual that persists for several slots count fully. The figures are those of a site's load
# around a similar-day forecast: weather and occupancy drift with a correlation time of a few hours
# (ρ = 0.9 per 30 minutes, about 9% of the load, the similar-day average's own error included) under
# slot-to-slot noise of about 7%.
LOAD_ERROR_DECAY_PER_SLOT = 0.9
LOAD_RESIDUAL_PERSISTENT_SD = 0.088
LOAD_RESIDUAL_NOISE_SD = 0.066
_LOAD_ERROR_RANGE = (-0.6, 0.6)
# PV: a cloudy or clear day tends to stay so; the ratio of measured to forecast PV over the slots with real
# sun so far (early-morning slivers say nothing), the recent ones weighted most, bounded.
PV_RATIO_RANGE = (0.3, 1.3)
_PV_RECENT_WEIGHT_PER_SLOT = 0.8
_PV_SIGNIFICANT_SHARE = 0.2


@dataclass(frozen=True)
class Lookahead:
    """The forecast of the slots after the day, appended to every re-plan's horizon.

    ``load_kw`` and ``pv_kw`` hold the same number of slots (kW, from the next day's 00:00); ``evs`` are the EV
    demands of those slots, their windows counted from the first of them. The end-of-day state-of-charge rule
    then applies at the end of these slots, and their imports count against the same peak.
    """

    load_kw: FloatArray
    pv_kw: FloatArray
    evs: tuple[EvDemand, ...] = ()

    def __post_init__(self) -> None:
        if self.load_kw.shape != self.pv_kw.shape or self.load_kw.ndim != 1:
            raise ValueError("lookahead load and PV must be 1-D series of the same length")
        for ev in self.evs:
            if not 0 <= ev.available_from_slot < ev.deadline_slot <= self.load_kw.size:
                raise ValueError(f"lookahead EV demand {ev.ev_id!r} lies outside the lookahead's slots")


@dataclass
class EmsTracker:
    """The EMS's state through a day: battery SoC, EV energy still owed, the day's peak so far."""

    flex: SiteFlex
    evs: Sequence[EvDemand]
    soc_kwh: float = 0.0
    ev_remaining_kwh: list[float] = field(default_factory=list)
    peak_kw: float = 0.0
    fill_battery: bool = True
    hold_peak: bool = True  # False: defend each slot's own limit even below the day's peak (window limits)

    def __post_init__(self) -> None:
        self.soc_kwh = self.flex.soc_kwh_initial
        self.ev_remaining_kwh = [ev.energy_kwh for ev in self.evs]

    def _ev_must_kw(self, k: int, t: int) -> float:
        ev = self.evs[k]
        later_kwh = (ev.deadline_slot - t - 1) * SLOT_HOURS * ev.max_power_kw
        return min(ev.max_power_kw, max(self.ev_remaining_kwh[k] - later_kwh, 0.0) / SLOT_HOURS)

    def step(
        self,
        t: int,
        load_kw: float,
        pv_kw: float,
        battery_kw: float,
        ev_kw: Sequence[float],
        soc_target: float,
        limit_kw: float,
    ) -> float:
        """Run slot ``t`` following the planned powers with the corrections above; return import, kW."""
        flex, dt = self.flex, SLOT_HOURS
        eta_c, eta_d = flex.charge_efficiency, flex.discharge_efficiency
        ev_now, ev_must = [], []
        for k, ev in enumerate(self.evs):
            active = ev.available_from_slot <= t < ev.deadline_slot and self.ev_remaining_kwh[k] > _EPS
            must = self._ev_must_kw(k, t) if active else 0.0
            want = min(max(ev_kw[k], must), self.ev_remaining_kwh[k] / dt, ev.max_power_kw) if active else 0.0
            ev_now.append(want)
            ev_must.append(must)
        discharge_max = min(flex.battery_power_kw, max(self.soc_kwh - flex.soc_min_kwh, 0.0) * eta_d / dt)
        charge_max = min(flex.battery_power_kw, max(flex.soc_max_kwh - self.soc_kwh, 0.0) / (eta_c * dt))
        battery = min(max(battery_kw, -charge_max), discharge_max)
        limit = max(limit_kw, self.peak_kw) if self.hold_peak else limit_kw
        net = load_kw + sum(ev_now) - pv_kw
        behind_kwh = soc_target - self._soc_after(battery)
        if behind_kwh > _EPS and battery <= 0:
            room = max(limit - (net - battery), 0.0)
            battery -= min(room, behind_kwh / (eta_c * dt), charge_max + battery)
        excess = net - battery - limit
        if excess > 0:
            extra = min(excess, discharge_max - battery)
            battery += extra
            excess -= extra
        flexible = sum(ev_now) - sum(ev_must)
        if excess > 0 and flexible > _EPS:
            scale = max(flexible - excess, 0.0) / flexible
            ev_now = [m + (p - m) * scale for p, m in zip(ev_now, ev_must, strict=True)]
        # Headroom under the limit is used to charge vans ahead of plan: energy delivered now cannot
        # be forced into a later slot whose load turns out higher than forecast.
        room = limit - (load_kw + sum(ev_now) - pv_kw - battery)
        for k, ev in enumerate(self.evs):
            if room <= _EPS:
                break
            if ev.available_from_slot <= t < ev.deadline_slot:
                more = min(room, ev.max_power_kw - ev_now[k], self.ev_remaining_kwh[k] / dt - ev_now[k])
                if more > 0:
                    ev_now[k] += more
                    room -= more
        if self.fill_battery and room > _EPS and battery <= 0:
            battery -= min(room, charge_max + battery)
        for k, power in enumerate(ev_now):
            self.ev_remaining_kwh[k] -= power * dt
        self.soc_kwh = min(max(self._soc_after(battery), flex.soc_min_kwh), flex.soc_max_kwh)
        import_kw = max(load_kw + sum(ev_now) - pv_kw - battery, 0.0)
        self.peak_kw = max(self.peak_kw, import_kw)
        return import_kw

    def _soc_after(self, battery_kw: float) -> float:
        flex = self.flex
        return self.soc_kwh + SLOT_HOURS * (
            flex.charge_efficiency * max(-battery_kw, 0.0) - max(battery_kw, 0.0) / flex.discharge_efficiency
        )


def executed_import_kw(
    plan: Plan,
    load_kw: Sequence[float] | FloatArray,
    pv_kw: Sequence[float] | FloatArray,
    flex: SiteFlex,
    evs: Sequence[EvDemand],
    limit_kw: float,
) -> FloatArray:
    """Grid import per slot (kW) when the EMS follows ``plan`` on the actual load and PV.

    ``evs`` are the actual EV demands (same windows as planned, actual energy); ``limit_kw`` is the
    import limit the EMS protects (usually the plan's peak, as the DR signal carries it).
    """
    tracker = EmsTracker(flex, evs)
    return np.array(
        [
            tracker.step(
                t,
                float(load_kw[t]),
                float(pv_kw[t]),
                plan.battery_kw[t],
                [series[t] for series in plan.ev_kw_by_demand],
                plan.soc_kwh[t + 1],
                limit_kw,
            )
            for t in range(len(load_kw))
        ]
    )


def receding_horizon_import_kw(
    load_forecast_kw: FloatArray,
    pv_forecast_kw: FloatArray,
    load_kw: FloatArray,
    pv_kw: FloatArray,
    flex: SiteFlex,
    evs: Sequence[EvDemand],
    first_plan: Plan,
    planner: Planner,
    replan_every_slots: int,
    tracker: EmsTracker | None = None,
    forecaster: Forecaster | None = None,
    lookahead: Lookahead | None = None,
    replan_at_start: bool = False,
) -> FloatArray:
    """Import per slot (kW) with the day-ahead plan re-run every ``replan_every_slots`` slots.

    At each re-run the remaining slots' forecasts are corrected (:func:`corrected_forecast`), and
    ``planner(load, pv, flex, evs, target_kw, terminal_soc_kwh)`` plans
    the rest of the day from the measured SoC and EV energy still owed, with the peak already set as
    its target (lower is no longer worth anything). Pass ``tracker`` to read the end state afterwards;
    ``forecaster`` replaces :func:`corrected_forecast` (the benchmark's forecast ceiling uses it).
    ``lookahead`` extends every re-plan past the day's end (:class:`Lookahead`); ``replan_at_start`` re-plans
    in slot 0 too, so the first slot already follows the longer horizon rather than ``first_plan``.
    """
    horizon = load_kw.size
    tracker = tracker or EmsTracker(flex, evs)
    plan, offset = first_plan, 0
    imports = np.zeros(horizon)
    for t in range(horizon):
        if replan_every_slots and t % replan_every_slots == 0 and (t or replan_at_start):
            replanned = _replan(
                t, load_forecast_kw, pv_forecast_kw, load_kw, pv_kw, tracker, planner,
                forecaster or corrected_forecast, lookahead,
            )  # fmt: skip
            if replanned is not None:
                plan, offset = replanned, t
        i = t - offset
        imports[t] = tracker.step(
            t, float(load_kw[t]), float(pv_kw[t]), plan.battery_kw[i],
            [series[i] for series in plan.ev_kw_by_demand], plan.soc_kwh[i + 1], plan.peak_import_kw,
        )  # fmt: skip
    return imports


def load_residual_estimate(load_forecast_kw: FloatArray, load_kw: FloatArray, t: int) -> tuple[float, float]:
    """The persistent relative load error in slot t−1 from the measured slots 0..t−1: (mean, variance).

    Kalman filter over r_k = load_k / forecast_k − 1 (bounded to ±60%; slots forecast at zero are skipped):
    state x_k = ρ·x_{k−1} + innovation (stationary variance σ_p²), observation r_k = x_k + noise (σ_n²), with
    ρ = :data:`LOAD_ERROR_DECAY_PER_SLOT`, σ_p = :data:`LOAD_RESIDUAL_PERSISTENT_SD`,
    σ_n = :data:`LOAD_RESIDUAL_NOISE_SD`. Before any measurement: (0, σ_p²).
    """
    rho, q, r = LOAD_ERROR_DECAY_PER_SLOT, LOAD_RESIDUAL_PERSISTENT_SD**2, LOAD_RESIDUAL_NOISE_SD**2
    mean, variance = 0.0, q
    for k in range(t):
        if k:
            mean, variance = rho * mean, rho * rho * variance + (1.0 - rho * rho) * q
        if load_forecast_kw[k] > _EPS:
            residual = min(
                max(float(load_kw[k] / load_forecast_kw[k]) - 1.0, _LOAD_ERROR_RANGE[0]), _LOAD_ERROR_RANGE[1]
            )
            gain = variance / (variance + r)
            mean += gain * (residual - mean)
            variance *= 1.0 - gain
    return mean, variance


def corrected_forecast(
    t: int, load_forecast_kw: FloatArray, pv_forecast_kw: FloatArray, load_kw: FloatArray, pv_kw: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """The forecast of slots t.. corrected by the measured slots ..t−1, kW (load, PV).

    Load: forecast × (1 + x·ρ^(k+1)) for the k-th slot ahead, x the persistent relative error estimated in
    slot t−1 (:func:`load_residual_estimate`), ρ = :data:`LOAD_ERROR_DECAY_PER_SLOT`. PV: forecast × the
    ratio of measured to forecast PV over the slots whose forecast exceeded 20% of the day's so far, each
    weighted 0.8^age, bounded to :data:`PV_RATIO_RANGE`; 1 before the sun is up.
    """
    ahead = np.arange(load_forecast_kw.size - t)
    error = load_residual_estimate(load_forecast_kw, load_kw, t)[0] if t else 0.0
    load_rest = np.maximum(load_forecast_kw[t:] * (1.0 + error * LOAD_ERROR_DECAY_PER_SLOT ** (ahead + 1)), 0.0)
    past_fc, past = pv_forecast_kw[:t], pv_kw[:t]
    sunny = past_fc > _PV_SIGNIFICANT_SHARE * float(past_fc.max(initial=0.0))
    ratio = 1.0
    if sunny.any() and float(past_fc[sunny].sum()) > _EPS:
        weights = _PV_RECENT_WEIGHT_PER_SLOT ** (t - 1 - np.flatnonzero(sunny))
        measured = float((past[sunny] * weights).sum()) / float((past_fc[sunny] * weights).sum())
        ratio = min(max(measured, PV_RATIO_RANGE[0]), PV_RATIO_RANGE[1])
    return load_rest, pv_forecast_kw[t:] * ratio


def replan_terminal_soc_kwh(flex: SiteFlex, soc_kwh: float, slots: int, rule_kwh: float) -> float:
    """The end-of-horizon SoC a re-plan from ``soc_kwh`` with ``slots`` to go must reach: the day's rule
    (``rule_kwh``), or as near as charging at full power can still bring it, within the battery's range."""
    reachable_kwh = soc_kwh + flex.charge_efficiency * flex.battery_power_kw * SLOT_HOURS * slots
    return max(min(rule_kwh, reachable_kwh, flex.soc_max_kwh), flex.soc_min_kwh)


def _replan(
    t: int,
    load_fc: FloatArray,
    pv_fc: FloatArray,
    load: FloatArray,
    pv: FloatArray,
    tracker: EmsTracker,
    planner: Planner,
    forecaster: Forecaster,
    lookahead: Lookahead | None = None,
) -> Plan | None:
    flex, rest = tracker.flex, load.size - t
    load_rest, pv_rest = forecaster(t, load_fc, pv_fc, load, pv)
    evs: list[EvDemand] = []
    ev_map: list[int] = []
    for k, ev in enumerate(tracker.evs):
        if ev.deadline_slot > t and tracker.ev_remaining_kwh[k] > _EPS:
            start = max(ev.available_from_slot - t, 0)
            window_kwh = (ev.deadline_slot - t - start) * SLOT_HOURS * ev.max_power_kw
            evs.append(EvDemand(min(tracker.ev_remaining_kwh[k], window_kwh), ev.max_power_kw, start,
                                ev.deadline_slot - t, ev.ev_id))  # fmt: skip
            ev_map.append(k)
    if lookahead is not None:
        load_rest = np.concatenate([load_rest, lookahead.load_kw])
        pv_rest = np.concatenate([pv_rest, lookahead.pv_kw])
        evs += [replace(ev, available_from_slot=ev.available_from_slot + rest, deadline_slot=ev.deadline_slot + rest)
                for ev in lookahead.evs]  # fmt: skip
    planned_slots = load_rest.size
    terminal = replan_terminal_soc_kwh(flex, tracker.soc_kwh, planned_slots, flex.soc_kwh_initial)
    now_flex = replace(flex, soc_kwh_initial=min(max(tracker.soc_kwh, flex.soc_min_kwh), flex.soc_max_kwh))
    try:
        plan = planner(load_rest, pv_rest, now_flex, evs, tracker.peak_kw, terminal)
    except ValueError:  # InfeasiblePlan included: keep following the previous plan
        return None
    # Map the re-plan's EV series back onto every demand of the day (finished ones get zeros); the
    # lookahead's demands come after the day's and are not executed today.
    series = [tuple(0.0 for _ in range(planned_slots))] * len(tracker.evs)
    for position, k in enumerate(ev_map):
        series[k] = plan.ev_kw_by_demand[position]
    return replace(plan, ev_kw_by_demand=tuple(series))
