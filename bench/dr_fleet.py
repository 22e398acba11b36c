"""`vpp bench dr`: day-ahead forecast → plan → run on actual data for a simulated fleet, on all cores.

Planning time is measured per day for the whole fleet (forecasts included, sites split across worker
processes). Peak reduction is evaluated on a sample of the sites with a battery (every
``eval_every``-th site; rolling re-planning solves an LP per slot, too many for the whole fleet in a few
minutes), separately for battery-only and battery+EV sites, for every sampled site-day:

- *open loop*: the site EMS follows the day-ahead plan on the actual day, with the plan's peak as its
  import limit (:class:`vpp.domain.planning.execution.EmsTracker`), no re-plans;
- *re-planned*: the same, with the rest of the day re-planned every slot from the measured state
  (model-predictive control, :func:`vpp.domain.planning.execution.receding_horizon_import_kw`); with
  ``lookahead_slots`` > 0, from slot 0 on and each re-plan looking that many slots past midnight into the next
  day's forecast (:class:`vpp.domain.planning.execution.Lookahead`);
- *perfect foresight*: the peak-cut LP on the actual data with the same end-of-day SoC rule as the run
  it is compared with (ending at least as full as that run ended, or as it started if that is lower), so
  no run can beat it;
- *stochastic programme* (battery-only sites): each slot's import limit from a dynamic programme over (SoC,
  peak so far, persistent load error) that weighs holding energy back against running short
  (:mod:`vpp.domain.planning.stochastic`), on the same forecasts and residual model as the re-planner;
- *reactive*: a threshold controller with the forecast plan's peak as threshold that charges EVs as the
  site EMS does (:mod:`bench.dr_reactive`);
- *uncontrolled*: no battery, EVs charging at full power on arrival;
- *forecast ceiling*: the re-planned run once more, with the simulator's own load model as forecast (the
  expected load for the day-ahead plan, and the persistent part of the day's load error known up to the
  last measured slot for every re-plan): what no load forecaster can beat, since only the slot-to-slot
  noise and the persistent error's future innovations are left unknown. It is compared with perfect
  foresight and with a reactive controller using its own plan's peak, as above;
- *stochastic programme, forecast ceiling* (``stochastic_ceiling``, battery-only sites): the programme once
  more, on the simulator's expected load and with the residual model the load was drawn from, so that its load
  forecast and its picture of the load's errors are the best there can be: how far a better load forecaster
  could take the programme.

With ``pv_day_index_known`` the stochastic rows model PV's error as the simulator's passing clouds only (the
day's weather being known), in place of the day-ahead error (:data:`PV_KNOWN_DAY_ERROR`). With
``pv_forecast_error`` σ the PV forecast is a day-ahead weather forecast of that skill (the day's actual
clear-sky index × (1 + N(0, σ)), seeded per site and day), and the stochastic rows price in what the scheduler
learns of such a forecast from its record (:mod:`vpp.domain.weather_forecast`): PV's error sd σ, at least
:data:`~vpp.domain.weather_forecast.MIN_PV_ERROR_SD`.

Peak reduction = uncontrolled peak − achieved peak, kW, summed over site-days.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from datetime import date, timedelta

import numpy as np
import numpy.typing as npt

from bench.dr_data import (
    EV_EVENING_FIRST_SLOT,
    EV_EVENING_SHARE,
    EV_MORNING_DEADLINE_SLOT,
    LOAD_NOISE_SD,
    LOAD_PERSISTENCE_PER_SLOT,
    LOAD_PERSISTENT_SD,
    PASSING_CLOUD_PERSISTENCE_PER_SLOT,
    PASSING_CLOUD_SD,
    PERFORMANCE_RATIO,
    FleetHistory,
    simulate_fleet,
)
from bench.dr_reactive import fair_reactive_import_kw
from services.dr_scheduler.day_ahead import SiteForecast, forecast_site_day, plan_site_day, site_flex
from vpp.domain.forecast import CLEAR_SKY_INDEX_MAX
from vpp.domain.planning import EvDemand, Plan, SiteFlex, plan_peak_cut, threshold_controller
from vpp.domain.planning.execution import (
    REPLAN_RESERVE_VALUE_PER_KWH,
    EmsTracker,
    Forecaster,
    Lookahead,
    corrected_forecast,
    receding_horizon_import_kw,
)
from vpp.domain.planning.limit_replan import limit_replan_import_kw
from vpp.domain.planning.stochastic import ResidualModel, stochastic_import_kw
from vpp.domain.slots import SLOTS_PER_DAY
from vpp.domain.weather_forecast import MIN_PV_ERROR_SD
from vpp.simulation.spec import fleet_specs as fleet_specs_of

__all__ = ["BenchResult", "GroupResult", "run_bench"]

WARM_UP_DAYS = 21  # history before the first benchmark day, for similar-day forecasts
FIRST_BENCH_DAY = date(2026, 7, 1)  # summer: the Tokyo area's afternoon peak season
CHUNKS_PER_WORKER = 4
REPLAN_EVERY_SLOTS = 1  # the intraday re-plan: every 30-minute slot
EVAL_EVERY_NTH_SITE = 7
# Re-plans may look past midnight (`vpp bench dr --lookahead-slots N`); off by default: measured on this
# bench, 12 slots (to 06:00) gained 0.003 of perfect foresight and 24 or 48 lost (docs/performance.md), while
# the longer horizon plans a lower level that leaves less in reserve when the evening runs above forecast.
_lookahead_slots = 0
# `vpp bench dr --pv-day-index-known`: the PV forecast takes each day's actual clear-sky index (its passing
# clouds still unknown), as a perfect day-ahead weather forecast would give: how much buying one could gain.
_pv_day_index_known = False
# `vpp bench dr --pv-forecast-error σ`: a day-ahead weather forecast that misses the day's index by sd σ.
_pv_forecast_error: float | None = None
_seed = 0
CLEAR_SKY_INDEX_DAYS = 7  # PV forecast: clear sky scaled by the index of the last week
# `vpp bench dr --stochastic-ceiling`: the stochastic programme on the simulator's own load model as well
# (another 500 programmes, about 7 minutes on 2 cores).
_stochastic_ceiling = False
# PV's relative error once the day's clear-sky index is known: passing clouds over a mean index of about 0.65.
PV_KNOWN_DAY_ERROR = {"pv_sd": PASSING_CLOUD_SD / 0.65, "pv_persistence_per_slot": PASSING_CLOUD_PERSISTENCE_PER_SLOT}
FloatArray = npt.NDArray[np.float64]

_fleet: FleetHistory | None = None


@dataclass(frozen=True)
class DayOutcome:
    group: str  # "battery" or "battery+ev"
    uncontrolled_kw: float
    open_loop_kw: float
    replanned_kw: float
    perfect_open_kw: float  # perfect foresight with the open-loop run's end-SoC rule
    perfect_replanned_kw: float  # perfect foresight with the re-planned run's end-SoC rule
    reactive_kw: float
    ceiling_kw: float  # re-planned with the simulator's own load model as forecast
    perfect_ceiling_kw: float
    reactive_ceiling_kw: float  # the reactive controller with the ceiling plan's peak as threshold
    # Battery-only sites: each slot's limit from the stochastic programme (NaN for sites with EVs), and the
    # same on the simulator's own load model (NaN unless asked for).
    stochastic_kw: float = float("nan")
    perfect_stochastic_kw: float = float("nan")
    stochastic_ceiling_kw: float = float("nan")
    perfect_stochastic_ceiling_kw: float = float("nan")
    # Sites with EVs: the scheduler's peak programme for them (limit_replan: the EV state estimated from the
    # forecast and the metered EV energy, the EMS sent only each slot's limit); NaN for battery-only sites.
    limit_only_kw: float = float("nan")
    perfect_limit_only_kw: float = float("nan")


@dataclass(frozen=True)
class GroupResult:
    """Peak reductions summed over a group's site-days, kW, and the ratios the benchmark reports."""

    site_days: int
    open_loop_kw: float
    replanned_kw: float
    perfect_open_kw: float
    perfect_replanned_kw: float
    reactive_kw: float
    ceiling_kw: float = float("nan")
    perfect_ceiling_kw: float = float("nan")
    reactive_ceiling_kw: float = float("nan")
    stochastic_kw: float = float("nan")
    perfect_stochastic_kw: float = float("nan")
    stochastic_ceiling_kw: float = float("nan")
    perfect_stochastic_ceiling_kw: float = float("nan")
    limit_only_kw: float = float("nan")
    perfect_limit_only_kw: float = float("nan")

    @staticmethod
    def _ratio(value: float, reference: float) -> float:
        return value / reference if reference > 0 else float("nan")

    @property
    def replanned_to_perfect(self) -> float:
        return self._ratio(self.replanned_kw, self.perfect_replanned_kw)

    @property
    def open_loop_to_perfect(self) -> float:
        return self._ratio(self.open_loop_kw, self.perfect_open_kw)

    @property
    def replanned_to_reactive(self) -> float:
        return self._ratio(self.replanned_kw, self.reactive_kw)

    @property
    def open_loop_to_reactive(self) -> float:
        return self._ratio(self.open_loop_kw, self.reactive_kw)

    @property
    def stochastic_to_perfect(self) -> float:
        return self._ratio(self.stochastic_kw, self.perfect_stochastic_kw)

    @property
    def stochastic_to_reactive(self) -> float:
        return self._ratio(self.stochastic_kw, self.reactive_kw)

    @property
    def stochastic_ceiling_to_perfect(self) -> float:
        return self._ratio(self.stochastic_ceiling_kw, self.perfect_stochastic_ceiling_kw)

    @property
    def stochastic_ceiling_to_reactive(self) -> float:
        return self._ratio(self.stochastic_ceiling_kw, self.reactive_ceiling_kw)

    @property
    def limit_only_to_perfect(self) -> float:
        return self._ratio(self.limit_only_kw, self.perfect_limit_only_kw)

    @property
    def limit_only_to_reactive(self) -> float:
        return self._ratio(self.limit_only_kw, self.reactive_kw)

    @property
    def ceiling_to_perfect(self) -> float:
        return self._ratio(self.ceiling_kw, self.perfect_ceiling_kw)

    @property
    def ceiling_to_reactive(self) -> float:
        return self._ratio(self.ceiling_kw, self.reactive_ceiling_kw)


@dataclass(frozen=True)
class BenchResult:
    sites: int
    days: int
    workers: int
    plan_wall_s: tuple[float, ...]  # per benchmark day, all sites
    plan_cpu_s: tuple[float, ...]  # CPU seconds the workers spent on those plans, per day
    groups: dict[str, GroupResult]
    evaluated_sites: int


def _group_result(outcomes: Sequence[DayOutcome]) -> GroupResult:
    unc = np.array([o.uncontrolled_kw for o in outcomes])

    def total(name: str) -> float:
        return float((unc - np.array([getattr(o, name) for o in outcomes])).sum())

    return GroupResult(
        len(outcomes), total("open_loop_kw"), total("replanned_kw"), total("perfect_open_kw"),
        total("perfect_replanned_kw"), total("reactive_kw"), total("ceiling_kw"), total("perfect_ceiling_kw"),
        total("reactive_ceiling_kw"), total("stochastic_kw"), total("perfect_stochastic_kw"),
        total("stochastic_ceiling_kw"), total("perfect_stochastic_ceiling_kw"), total("limit_only_kw"),
        total("perfect_limit_only_kw"),
    )  # fmt: skip


def _init_worker(
    sites: int,
    days: int,
    seed: int,
    lookahead_slots: int = 0,
    pv_day_index_known: bool = False,
    stochastic_ceiling: bool = False,
    pv_forecast_error: float | None = None,
) -> None:
    global _fleet, _lookahead_slots, _pv_day_index_known, _stochastic_ceiling, _pv_forecast_error, _seed
    _lookahead_slots, _pv_day_index_known = lookahead_slots, pv_day_index_known
    _pv_forecast_error, _seed = pv_forecast_error, seed
    _stochastic_ceiling = stochastic_ceiling
    # One day more than is run: the last day's re-plans look into the next one.
    _fleet = simulate_fleet(sites, FIRST_BENCH_DAY - timedelta(days=WARM_UP_DAYS), WARM_UP_DAYS + days + 1, seed)


def _site_inputs(site: int, day_index: int, forecast: bool) -> tuple[SiteFlex, list[EvDemand]]:
    assert _fleet is not None
    spec = _fleet.specs[site]
    flex = site_flex(spec.battery_kwh, spec.battery_power_kw)
    if spec.ev_count == 0:
        return flex, []
    power_kw = spec.ev_count * spec.ev_charger_kw
    # The morning session's need is known (the vans plugged in last evening); tonight's is forecast
    # as the fleet's mean until they arrive.
    morning_kwh = _fleet.ev_kwh[site, day_index - 1] * (1 - EV_EVENING_SHARE)
    tonight_kwh = (spec.ev_count * spec.ev_daily_kwh if forecast else _fleet.ev_kwh[site, day_index]) * EV_EVENING_SHARE
    return flex, [
        EvDemand(float(morning_kwh), power_kw, 0, EV_MORNING_DEADLINE_SLOT, "morning"),
        EvDemand(float(tonight_kwh), power_kw, EV_EVENING_FIRST_SLOT, SLOTS_PER_DAY, "evening"),
    ]


PlannedDay = tuple[Plan, FloatArray, FloatArray]  # plan, load forecast, PV forecast (kW)


def _replanner(
    load: FloatArray, pv: FloatArray, flex: SiteFlex, evs: list[EvDemand], target_kw: float, terminal_kwh: float
) -> Plan:
    return plan_peak_cut(
        load.tolist(), pv.tolist(), flex, evs, target_kw, terminal_soc_kwh=terminal_kwh,
        reserve_value_per_kwh=REPLAN_RESERVE_VALUE_PER_KWH,
    )  # fmt: skip


def _forecast(site: int, day_index: int, known_days: int) -> SiteForecast:
    """The day-ahead forecast of ``day_index`` from the ``known_days`` days before it (history ends there)."""
    assert _fleet is not None
    fleet = _fleet
    spec = fleet.specs[site]
    history_days = range(max(known_days - WARM_UP_DAYS, 0), known_days)
    history = {fleet.days[d]: (fleet.load_kw[site, d] * 0.5).tolist() for d in history_days}
    recent = slice(max(known_days - CLEAR_SKY_INDEX_DAYS, 0), known_days)
    clear_recent_kwh = fleet.clear_sky_kw_per_kw[recent] * spec.pv_kw * PERFORMANCE_RATIO * 0.5
    forecast = forecast_site_day(
        history, fleet.days[day_index], fleet.clear_sky_kw_per_kw[day_index], spec.pv_kw,
        fleet.pv_kw[site, recent] * 0.5, clear_recent_kwh, PERFORMANCE_RATIO,
    )  # fmt: skip
    clear_kw = fleet.clear_sky_kw_per_kw[day_index] * spec.pv_kw * PERFORMANCE_RATIO
    if (_pv_day_index_known or _pv_forecast_error is not None) and clear_kw.sum() > 0:
        day_index_known = float(fleet.pv_kw[site, day_index].sum() / clear_kw.sum())
        if _pv_forecast_error is not None:
            miss = np.random.default_rng((_seed, site, day_index)).normal(0.0, _pv_forecast_error)
            day_index_known = min(max(day_index_known * (1.0 + miss), 0.0), CLEAR_SKY_INDEX_MAX)
        forecast = replace(forecast, pv_kw=clear_kw * day_index_known)
    return forecast


def _lookahead(site: int, day_index: int) -> Lookahead:
    """The first ``lookahead_slots`` of the next day as forecast on the eve (yesterday's history and
    older), with the vans' morning need as forecast tonight."""
    assert _fleet is not None
    forecast = _forecast(site, day_index + 1, day_index)
    spec = _fleet.specs[site]
    n = _lookahead_slots
    evs: tuple[EvDemand, ...] = ()
    if spec.ev_count:
        morning_kwh = spec.ev_count * spec.ev_daily_kwh * (1 - EV_EVENING_SHARE)
        power_kw = spec.ev_count * spec.ev_charger_kw
        evs = (EvDemand(morning_kwh, power_kw, 0, min(EV_MORNING_DEADLINE_SLOT, n), "next-morning"),)
    return Lookahead(forecast.load_kw[:n].copy(), forecast.pv_kw[:n].copy(), evs)


def _plan_chunk(day_index: int, sites: Sequence[int]) -> tuple[list[PlannedDay], float]:
    """Forecast and plan one day for some sites (the timed step); also returns the CPU seconds used."""
    assert _fleet is not None
    cpu_started = time.process_time()
    plans: list[PlannedDay] = []
    for site in sites:
        forecast = _forecast(site, day_index, day_index)
        flex, evs = _site_inputs(site, day_index, forecast=True)
        plans.append((plan_site_day(forecast, flex, evs), forecast.load_kw, forecast.pv_kw))
    return plans, time.process_time() - cpu_started


def _ceiling(site: int, day_index: int, pv_fc: FloatArray) -> tuple[Plan, Forecaster]:
    """The forecast ceiling's day-ahead plan (on the expected load) and its intraday forecaster."""
    assert _fleet is not None
    expected = _fleet.expected_load_kw[site, day_index]
    persistent = _fleet.load_persistent_error[site, day_index]
    flex, evs = _site_inputs(site, day_index, forecast=True)
    plan = plan_peak_cut(expected.tolist(), pv_fc.tolist(), flex, evs, 0.0)

    def forecaster(
        t: int, load_fc: FloatArray, pv_fc: FloatArray, load: FloatArray, pv: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        ahead = np.arange(1, load_fc.size - t + 1)
        known_error = persistent[t - 1] if t else 0.0  # before the first slot is measured: none known
        load_rest = load_fc[t:] * (1.0 + known_error * LOAD_PERSISTENCE_PER_SLOT**ahead)
        return load_rest, corrected_forecast(t, load_fc, pv_fc, load, pv)[1]

    return plan, forecaster


def _evaluate_chunk(day_index: int, sites: Sequence[int], plans: Sequence[PlannedDay]) -> list[DayOutcome]:
    """Run the forecast plans of the sampled battery sites on the actual day and compute the references."""
    assert _fleet is not None
    out: list[DayOutcome] = []
    for site, (plan, load_fc, pv_fc) in zip(sites, plans, strict=True):
        spec = _fleet.specs[site]
        if site % EVAL_EVERY_NTH_SITE or spec.battery_kwh <= 0:
            continue
        load = _fleet.load_kw[site, day_index]
        pv = _fleet.pv_kw[site, day_index]
        flex, evs = _site_inputs(site, day_index, forecast=False)
        load_kw, pv_kw = load.tolist(), pv.tolist()
        uncontrolled = threshold_controller(load_kw, pv_kw, SiteFlex.without_battery(), evs, 0.0).peak_import_kw
        runs = []
        lookahead = ceiling_lookahead = None
        if _lookahead_slots:
            lookahead = _lookahead(site, day_index)
            # The ceiling looks ahead with the simulator's expected load of the next morning.
            next_expected_kw = _fleet.expected_load_kw[site, day_index + 1, :_lookahead_slots]
            ceiling_lookahead = replace(lookahead, load_kw=next_expected_kw)
        ceiling_plan, ceiling_forecaster = _ceiling(site, day_index, pv_fc)
        for every, first_plan, forecaster in ((0, plan, None), (REPLAN_EVERY_SLOTS, plan, None),
                                              (REPLAN_EVERY_SLOTS, ceiling_plan, ceiling_forecaster)):  # fmt: skip
            tracker = EmsTracker(flex, evs)
            peak = float(
                receding_horizon_import_kw(
                    load_fc if forecaster is None else _fleet.expected_load_kw[site, day_index], pv_fc, load, pv,
                    flex, evs, first_plan, _replanner, every, tracker, forecaster,
                    lookahead=(lookahead if forecaster is None else ceiling_lookahead) if every else None,
                    replan_at_start=bool(every) and lookahead is not None,
                ).max()
            )  # fmt: skip
            # The same end-of-day rule as the run: at least as full as it ended (or started, if lower).
            terminal = min(flex.soc_kwh_initial, max(tracker.soc_kwh, flex.soc_min_kwh))
            perfect = plan_peak_cut(load_kw, pv_kw, flex, evs, 0.0, terminal_soc_kwh=terminal).peak_import_kw
            reactive = float(fair_reactive_import_kw(load, pv, flex, evs, first_plan.peak_import_kw)[0].max())
            runs.append((peak, perfect, reactive))
        group = "battery+ev" if spec.ev_count else "battery"
        (open_kw, perfect_open, reactive), (replanned, perfect_replanned, _), ceiling = runs
        stochastic: tuple[float, ...] = (float("nan"),) * 4
        if not spec.ev_count:
            pv_error = PV_KNOWN_DAY_ERROR if _pv_day_index_known else {}
            if _pv_forecast_error is not None:
                pv_error = {"pv_sd": max(_pv_forecast_error, MIN_PV_ERROR_SD)}
            programmes = [(load_fc, plan.peak_import_kw, ResidualModel(**pv_error))]
            if _stochastic_ceiling:
                # The ceiling's plan (on the expected load) sets the peaks the grid resolves, as it sets the
                # reactive reference's threshold.
                drawn_from = ResidualModel(
                    load_persistence_per_slot=LOAD_PERSISTENCE_PER_SLOT, load_persistent_sd=LOAD_PERSISTENT_SD,
                    load_white_sd=LOAD_NOISE_SD, **pv_error,
                )  # fmt: skip
                programmes.append((_fleet.expected_load_kw[site, day_index], ceiling_plan.peak_import_kw, drawn_from))
            found: list[float] = []
            for load_forecast_kw, planned_peak_kw, residuals in programmes:
                tracker = EmsTracker(flex, [])
                peak = float(
                    stochastic_import_kw(
                        load_forecast_kw, pv_fc, load, pv, flex, planned_peak_kw, tracker, residuals
                    ).max()
                )
                terminal = min(flex.soc_kwh_initial, max(tracker.soc_kwh, flex.soc_min_kwh))
                found += [peak, plan_peak_cut(load_kw, pv_kw, flex, evs, 0.0, terminal_soc_kwh=terminal).peak_import_kw]
            stochastic = (*found, *stochastic[len(found) :])
        limit_only: tuple[float, float] = (float("nan"), float("nan"))
        if spec.ev_count:
            tracker = EmsTracker(flex, evs)
            forecast_evs = _site_inputs(site, day_index, forecast=True)[1]
            peak = float(limit_replan_import_kw(load_fc, pv_fc, load, pv, forecast_evs, tracker).max())
            terminal = min(flex.soc_kwh_initial, max(tracker.soc_kwh, flex.soc_min_kwh))
            limit_only = (peak, plan_peak_cut(load_kw, pv_kw, flex, evs, 0.0, terminal_soc_kwh=terminal).peak_import_kw)
        out.append(
            DayOutcome(
                group,
                uncontrolled,
                open_kw,
                replanned,
                perfect_open,
                perfect_replanned,
                reactive,
                *ceiling,
                stochastic_kw=stochastic[0],
                perfect_stochastic_kw=stochastic[1],
                stochastic_ceiling_kw=stochastic[2],
                perfect_stochastic_ceiling_kw=stochastic[3],
                limit_only_kw=limit_only[0],
                perfect_limit_only_kw=limit_only[1],
            )
        )
    return out


def run_bench(
    sites: int = 1050,
    days: int = 10,
    *,
    workers: int | None = None,
    seed: int = 0,
    lookahead_slots: int = 0,
    pv_day_index_known: bool = False,
    stochastic_ceiling: bool = False,
    pv_forecast_error: float | None = None,
    on_day: Callable[[int, float], None] | None = None,
) -> BenchResult:
    """Run the benchmark; ``on_day(day_number, plan_wall_s)`` reports progress after each day."""
    workers = workers or max(os.cpu_count() or 1, 1)
    n_chunks = max(1, min(sites, workers * CHUNKS_PER_WORKER))
    # Interleaved chunks: sites differ in size, so neighbours in the list go to different tasks.
    chunks = [list(range(k, sites, n_chunks)) for k in range(n_chunks)]
    walls: list[float] = []
    cpus: list[float] = []
    outcomes: list[DayOutcome] = []
    with ProcessPoolExecutor(
        workers,
        initializer=_init_worker,
        initargs=(sites, days, seed, lookahead_slots, pv_day_index_known, stochastic_ceiling, pv_forecast_error),
    ) as pool:
        # Warm-up: start every worker and build its data before anything is timed.
        list(pool.map(_plan_chunk, [WARM_UP_DAYS] * workers, [[0]] * workers))
        for number in range(days):
            day_index = WARM_UP_DAYS + number
            started = time.perf_counter()
            planned = list(pool.map(_plan_chunk, [day_index] * n_chunks, chunks))
            walls.append(time.perf_counter() - started)
            cpus.append(sum(cpu_s for _, cpu_s in planned))
            plans = [chunk_plans for chunk_plans, _ in planned]
            for result in pool.map(_evaluate_chunk, [day_index] * n_chunks, chunks, plans):
                outcomes.extend(result)
            if on_day is not None:
                on_day(number + 1, walls[-1])
    groups = {name: _group_result([o for o in outcomes if o.group == name]) for name in ("battery", "battery+ev")}
    evaluated = sum(
        1 for k, spec in enumerate(fleet_specs_of(sites, seed)) if not k % EVAL_EVERY_NTH_SITE and spec.battery_kwh > 0
    )
    return BenchResult(sites, days, workers, tuple(walls), tuple(cpus), groups, evaluated)
