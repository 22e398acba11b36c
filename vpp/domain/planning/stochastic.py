"""Peak-cut for a battery site as a stochastic dynamic programme: each slot's import limit under uncertainty.

The LP re-planner (:func:`vpp.domain.planning.execution.receding_horizon_import_kw`) plans the rest of the day as
if the corrected forecast were certain, so it spends the battery down to exactly what that forecast needs. The
errors, though, persist: a site's load drifts around its similar-day forecast (AR(1), ρ = 0.9 per 30 minutes)
and a cloudy morning tends to stay cloudy, so an afternoon or evening that starts above forecast tends to stay
above it, and a battery run empty then puts the whole shortfall into the last slots' peak at once. Holding back
costs little (a slightly higher level spread over many slots); running short costs much. The programme weighs
the two for the residual model (:class:`ResidualModel`).

State: (state of charge, the day's peak so far, the persistent net-load error of the last slot in sd units).
Each slot, before its load is seen, the decision is the slot's import limit q ≥ the peak so far; the EMS then
holds import at q as far as the battery's power and energy allow, discharging above it and charging below it
(a fuller battery is never worse), exactly as :class:`~vpp.domain.planning.execution.EmsTracker` does:

    V_t(s, p, z) = min_{q ≥ p} E[V_{t+1}(s', max(q, import), z')],   V_end = peak + a penalty below the end SoC rule

with net load = forecast + σ_t·z' + white noise, z' = ρ_t·z + √(1−ρ_t²)·ξ, the expectation on Gauss–Hermite
nodes and V interpolated on uniform grids. The minimum over q ≥ p for every p at once is a suffix minimum along
the peak grid. The error state is estimated each slot from the measured net load by a Kalman filter
(:func:`net_error_estimate`). Battery-only sites: the programme has no EV state (sites with vans keep the LP
re-planner, which already reaches 0.95 of perfect foresight there).

Measured on `vpp bench dr` (docs/performance.md). Pure numpy, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from vpp.domain.planning.execution import (
    LOAD_ERROR_DECAY_PER_SLOT,
    LOAD_RESIDUAL_NOISE_SD,
    LOAD_RESIDUAL_PERSISTENT_SD,
    EmsTracker,
)
from vpp.domain.planning.model import SLOT_HOURS, SiteFlex

__all__ = [
    "PeakValues",
    "ResidualModel",
    "net_error_estimate",
    "peak_range_kw",
    "solve_peak_values",
    "stochastic_import_kw",
]

FloatArray = npt.NDArray[np.float64]

# Grid sizes, measured on the DR bench's first 200 battery-only site-days (share of the perfect-foresight
# reduction): 31 SoC × 61 peak points 0.837 (1.0 s per site-day); 45 SoC 0.841; 91 peak 0.839; 13 drift points
# +0.001; these sizes (41 × 71 × 9) 0.841 at 1.8 s. Finer grids gain little. (Since session 28 `value` gathers
# from the flattened array: the same values to 1e-11, a solve 2.9× faster, 6.0 s → 2.1 s on a slow machine.)
SOC_POINTS = 41
PEAK_POINTS = 71
DRIFT_POINTS = 9  # the persistent error's grid spans ±3.5 sd
NOISE_NODES = 4  # Gauss–Hermite nodes for each of the slot's two surprises (innovation, white noise)
# kW of peak per kWh short of the end-of-day SoC: refilling 1 kWh within one slot costs at most ~2 kW of
# import, so a penalty of 20 is never worth paying and the rule binds as a constraint would.
TERMINAL_PENALTY_KW_PER_KWH = 20.0
_TIE_BREAK_PER_KWH = 1e-6
# The day-ahead PV forecast (clear sky × last week's index) misses the day's PV energy with an sd of 22% on the
# DR bench (docs/performance.md); the error is mostly the day's cloudiness, so it persists from slot to slot.
# The programme is given 0.3: a cloudy day is the costly case (the battery was spent expecting PV to refill it),
# and on the bench's first 200 battery-only site-days 0.3 did best (0.15: 0.824, 0.22: 0.829, 0.3: 0.837,
# 0.4: 0.817 of perfect foresight).
PV_ERROR_SD = 0.3
PV_ERROR_PERSISTENCE_PER_SLOT = 0.97
_RANGE_BOTTOM_PEAK, _RANGE_TOP_PEAK, _RANGE_TOP_LOAD, _RANGE_TOP_PV = 0.6, 1.3, 1.4, 0.5


@dataclass(frozen=True)
class ResidualModel:
    """The net load's error around its forecast, per 30-minute slot.

    Load: a persistent relative error (AR(1)) plus white noise, as the re-planner's Kalman filter models it. PV:
    a relative error that persists through the day (a cloudy morning tends to stay cloudy). The programme carries
    one state for both: the net error divided by its sd, an AR(1) whose persistence per slot is the two
    errors' persistence weighted by their variances in that slot (PV's by day, the load's at night).
    """

    load_persistence_per_slot: float = LOAD_ERROR_DECAY_PER_SLOT
    load_persistent_sd: float = LOAD_RESIDUAL_PERSISTENT_SD
    load_white_sd: float = LOAD_RESIDUAL_NOISE_SD
    pv_persistence_per_slot: float = PV_ERROR_PERSISTENCE_PER_SLOT
    pv_sd: float = PV_ERROR_SD

    def slots(self, load_kw: FloatArray, pv_kw: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Per forecast slot: the persistent net error's sd (kW), its persistence from the slot before, and the
        white noise's sd (kW)."""
        load_var = (self.load_persistent_sd * load_kw) ** 2
        pv_var = (self.pv_sd * pv_kw) ** 2
        total = np.maximum(load_var + pv_var, 1e-12)
        rho = (load_var * self.load_persistence_per_slot + pv_var * self.pv_persistence_per_slot) / total
        return np.sqrt(total), rho, self.load_white_sd * np.maximum(load_kw, 0.0) + 1e-9


def _nodes() -> tuple[FloatArray, FloatArray, FloatArray]:
    """Standard normal (innovation, white noise) on joint Gauss–Hermite nodes, and their weights."""
    points, weights = np.polynomial.hermite_e.hermegauss(NOISE_NODES)
    weights = weights / weights.sum()
    return (
        np.repeat(points, NOISE_NODES),
        np.tile(points, NOISE_NODES),
        np.repeat(weights, NOISE_NODES) * np.tile(weights, NOISE_NODES),
    )


def net_error_estimate(
    load_forecast_kw: FloatArray,
    pv_forecast_kw: FloatArray,
    load_kw: FloatArray,
    pv_kw: FloatArray,
    t: int,
    model: ResidualModel,
) -> float:
    """The persistent net error in slot t−1 in sd units, from the measured slots 0..t−1 (Kalman filter); 0 at t=0.

    A slot not metered (NaN load or PV) carries no evidence: the estimate only decays through it.
    """
    scale, rho, white = model.slots(load_forecast_kw, pv_forecast_kw)
    mean, variance = 0.0, 1.0
    for k in range(t):
        if k:
            mean, variance = rho[k] * mean, rho[k] ** 2 * variance + 1.0 - rho[k] ** 2
        residual_kw = float((load_kw[k] - pv_kw[k]) - (load_forecast_kw[k] - pv_forecast_kw[k]))
        if np.isnan(residual_kw):
            continue
        gain = variance * scale[k] / (scale[k] ** 2 * variance + white[k] ** 2)
        mean += gain * (residual_kw - scale[k] * mean)
        variance *= 1.0 - gain * scale[k]
    return mean


class _Grid:
    def __init__(self, lo: float, hi: float, points: int) -> None:
        self.lo, self.step, self.points = lo, (hi - lo) / (points - 1), points
        self.values: FloatArray = lo + self.step * np.arange(points, dtype=np.float64)

    def locate(self, x: FloatArray) -> tuple[npt.NDArray[np.intp], FloatArray]:
        """Lower cell index and the fraction into the cell, x clamped into the grid."""
        f = np.clip((x - self.lo) / self.step, 0.0, self.points - 1 - 1e-9)
        i = f.astype(np.intp)
        return i, f - i


def _soc_grid(flex: SiteFlex, terminal_soc_kwh: float) -> _Grid:
    """About SOC_POINTS points from the lowest SoC, one of them exactly at the end-of-day rule: the penalty's
    kink there would otherwise be smeared over a grid cell and make the policy keep up to a cell's worth extra."""
    span_kwh = flex.soc_max_kwh - flex.soc_min_kwh
    to_terminal_kwh = min(max(terminal_soc_kwh - flex.soc_min_kwh, 0.0), span_kwh)
    nominal_kwh = span_kwh / (SOC_POINTS - 1)
    cells = max(round(to_terminal_kwh / nominal_kwh), 1)
    step_kwh = to_terminal_kwh / cells if to_terminal_kwh > 0 else nominal_kwh
    points = int(np.ceil(span_kwh / step_kwh - 1e-9)) + 1
    return _Grid(flex.soc_min_kwh, flex.soc_min_kwh + step_kwh * (points - 1), points)


def _after(
    flex: SiteFlex, soc_kwh: FloatArray, net_kw: FloatArray, limit_kw: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """(next SoC, import) when the battery holds import at ``limit_kw`` as far as it can (the EMS's rule)."""
    dt = SLOT_HOURS
    discharge_max = np.minimum(
        flex.battery_power_kw, np.maximum(soc_kwh - flex.soc_min_kwh, 0.0) * flex.discharge_efficiency / dt
    )
    charge_max = np.minimum(
        flex.battery_power_kw, np.maximum(flex.soc_max_kwh - soc_kwh, 0.0) / (flex.charge_efficiency * dt)
    )
    battery_kw = np.clip(net_kw - limit_kw, -charge_max, discharge_max)
    soc_next = soc_kwh - dt * np.where(
        battery_kw > 0, battery_kw / flex.discharge_efficiency, battery_kw * flex.charge_efficiency
    )
    return np.clip(soc_next, flex.soc_min_kwh, flex.soc_max_kwh), np.maximum(net_kw - battery_kw, 0.0)


@dataclass(frozen=True)
class PeakValues:
    """The solved programme: ``values[t]`` is V before slot t (the last one, the end-of-day value)."""

    values: tuple[FloatArray, ...]  # each (soc, peak, drift)
    grids: tuple[_Grid, _Grid, _Grid]
    load_kw: FloatArray  # the forecasts it was solved on
    pv_kw: FloatArray
    flex: SiteFlex
    model: ResidualModel

    def released_before(self, k: int) -> PeakValues:
        """The same programme without V before slot ``k`` (a slot's limit reads V of the slot after it): a
        service that has passed slot k−1 keeps about half the day's arrays on average instead of all of them."""
        kept = tuple(np.empty(0) if i < k else v for i, v in enumerate(self.values))
        return replace(self, values=kept)

    def value(self, k: int, soc_kwh: FloatArray, peak_kw: FloatArray, drift: FloatArray) -> FloatArray:
        """Trilinear V_k; above the peak grid V grows one for one with the peak (there it is the peak)."""
        if self.values[k].size == 0:
            raise ValueError(f"V before slot {k} was released (released_before): the programme has passed it")
        soc, peak, drift_grid = self.grids
        i, a = soc.locate(soc_kwh)
        j, b = peak.locate(peak_kw)
        m, c = drift_grid.locate(drift)
        # One flat index per point and lerps axis by axis (drift, then peak, then SoC): the solve spends most of
        # its time here, and gathering from the flattened array is several times faster than indexing it by
        # three index arrays per corner.
        flat = np.ascontiguousarray(self.values[k]).reshape(-1)
        drifts = drift_grid.points
        rows = peak.points * drifts
        base = i * rows + j * drifts + m
        corners: list[FloatArray] = []
        for offset in (0, drifts, rows, rows + drifts):  # (SoC, peak) corners, each lerped along the drift
            low = flat[base + offset]
            corners.append(low + c * (flat[base + offset + 1] - low))
        soc_low = corners[0] + b * (corners[1] - corners[0])
        soc_high = corners[2] + b * (corners[3] - corners[2])
        above: FloatArray = np.maximum(peak_kw - peak.values[-1], 0.0)
        out: FloatArray = soc_low + a * (soc_high - soc_low) + above
        return out

    def limit_kw(self, t: int, soc_kwh: float, peak_so_far_kw: float, drift_before: float) -> float:
        """The import limit for slot ``t`` (≥ the peak so far) minimising the expected peak of the day;
        ``drift_before``: the persistent net error of the slot before, in sd units (:func:`net_error_estimate`)."""
        innovation, white, weights = _nodes()
        scale, rho, white_kw = self.model.slots(self.load_kw[t : t + 1], self.pv_kw[t : t + 1])
        drift_next = rho[0] * drift_before + np.sqrt(1.0 - rho[0] ** 2) * innovation[:, None]
        net_kw = self.load_kw[t] - self.pv_kw[t] + scale[0] * drift_next + white_kw[0] * white[:, None]
        # Candidates 4× finer than the grid V is solved on (V is linear between its points): the limit is not
        # rounded up to the grid, which would cost up to a grid step (~2% of a peak) on every day.
        peak = self.grids[1]
        fine = np.linspace(peak.lo, peak.values[-1], 4 * (peak.points - 1) + 1)
        limits = np.concatenate([[peak_so_far_kw], fine[fine > peak_so_far_kw]])[None, :]
        soc_next, import_kw = _after(self.flex, np.asarray(soc_kwh), net_kw, limits)
        expected = weights @ self.value(t + 1, soc_next, np.maximum(limits, import_kw), drift_next)
        # Ties (a limit under the grid's bottom changes nothing the programme can tell) go to the fuller battery:
        # energy spent for no gain is energy missing later.
        expected -= _TIE_BREAK_PER_KWH * (weights @ soc_next)
        return float(limits[0, int(np.argmin(expected))])


def peak_range_kw(
    load_forecast_kw: FloatArray, pv_forecast_kw: FloatArray, planned_peak_kw: float
) -> tuple[float, float]:
    """The peaks the grid resolves: from well under the day-ahead plan's peak (a day rarely ends 40% below it;
    below the grid the programme cannot tell peaks apart) to well over the forecast's highest net load."""
    top = max(
        float((_RANGE_TOP_LOAD * load_forecast_kw - _RANGE_TOP_PV * pv_forecast_kw).max(initial=0.0)),
        _RANGE_TOP_PEAK * planned_peak_kw,
    )
    return _RANGE_BOTTOM_PEAK * planned_peak_kw, max(top, _RANGE_BOTTOM_PEAK * planned_peak_kw + 1.0)


def solve_peak_values(
    load_forecast_kw: FloatArray,
    pv_forecast_kw: FloatArray,
    flex: SiteFlex,
    peak_kw_range: tuple[float, float],
    terminal_soc_kwh: float,
    model: ResidualModel = ResidualModel(),
) -> PeakValues:
    """Solve the programme over the given forecast slots.

    ``flex`` is the battery (its ``soc_kwh_initial`` is not used: every SoC is solved for); the day must end
    at ``terminal_soc_kwh`` or above.
    """
    if flex.battery_kwh <= 0 or flex.battery_power_kw <= 0:
        raise ValueError("the stochastic peak-cut needs a battery")
    soc = _soc_grid(flex, terminal_soc_kwh)
    peak = _Grid(peak_kw_range[0], peak_kw_range[1], PEAK_POINTS)
    drift = _Grid(-3.5, 3.5, DRIFT_POINTS)
    innovation, white, weights = _nodes()
    scale, rho, white_kw = model.slots(load_forecast_kw, pv_forecast_kw)
    short_kwh = np.maximum(terminal_soc_kwh - soc.values, 0.0)
    end = peak.values[None, :, None] + TERMINAL_PENALTY_KW_PER_KWH * short_kwh[:, None, None]
    horizon = load_forecast_kw.size
    values: list[FloatArray] = [np.empty(0)] * horizon + [np.broadcast_to(end, (soc.points, peak.points, drift.points))]
    solved = PeakValues((), (soc, peak, drift), load_forecast_kw, pv_forecast_kw, flex, model)
    s: FloatArray = soc.values[:, None, None, None]  # axes: soc, drift now, node, limit
    limits: FloatArray = peak.values[None, None, None, :]
    for k in range(horizon - 1, -1, -1):
        drift_next = rho[k] * drift.values[:, None] + np.sqrt(1.0 - rho[k] ** 2) * innovation[None, :]
        net_kw = load_forecast_kw[k] - pv_forecast_kw[k] + scale[k] * drift_next + white_kw[k] * white[None, :]
        soc_next, import_kw = _after(flex, s, net_kw[None, :, :, None], limits)
        step = replace(solved, values=tuple(values))
        after = step.value(k + 1, soc_next, np.maximum(limits, import_kw), drift_next[None, :, :, None])
        expected = np.einsum("sdnq,n->sdq", after, weights)  # (soc, drift, limit)
        # Best limit q ≥ p for every peak so far p: the minimum over the grid from p up.
        best = np.minimum.accumulate(expected[..., ::-1], axis=-1)[..., ::-1]
        values[k] = np.ascontiguousarray(best.transpose(0, 2, 1))
    return replace(solved, values=tuple(values))


def stochastic_import_kw(
    load_forecast_kw: FloatArray,
    pv_forecast_kw: FloatArray,
    load_kw: FloatArray,
    pv_kw: FloatArray,
    flex: SiteFlex,
    planned_peak_kw: float,
    tracker: EmsTracker | None = None,
    model: ResidualModel = ResidualModel(),
) -> FloatArray:
    """Import per slot (kW) when each slot's limit comes from the programme and the EMS holds it.

    The programme is solved once, on the day-ahead forecasts; before each slot the persistent net-load error is
    estimated from the slots measured so far (:func:`net_error_estimate`) and the limit read from the solved
    programme at the tracker's SoC and peak so far. The day must end at least as full as it started.
    ``planned_peak_kw`` (the day-ahead plan's peak) sets the peaks the grid resolves. Pass ``tracker`` to read
    the end state afterwards.
    """
    tracker = tracker or EmsTracker(flex, [])
    if tracker.evs:
        raise ValueError("the stochastic peak-cut has no EV state: plan sites with EVs with the LP re-planner")
    peaks = peak_range_kw(load_forecast_kw, pv_forecast_kw, planned_peak_kw)
    solved = solve_peak_values(load_forecast_kw, pv_forecast_kw, flex, peaks, flex.soc_kwh_initial, model)
    imports = np.zeros(load_kw.size)
    for t in range(load_kw.size):
        drift = net_error_estimate(load_forecast_kw, pv_forecast_kw, load_kw, pv_kw, t, model)
        limit = solved.limit_kw(t, tracker.soc_kwh, tracker.peak_kw, drift)
        imports[t] = tracker.step(t, float(load_kw[t]), float(pv_kw[t]), 0.0, [], flex.soc_max_kwh, limit)
    return imports
