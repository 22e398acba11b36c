"""`vpp bench dr`: day-ahead forecast → plan → run on actual data for a simulated fleet, on all cores.

For every site and benchmark day (no database: arrays from :mod:`services.dr_scheduler.bench_data`):

- *forecast*: forecast load, PV and EV need, plan the lowest peak (peak-cut LP), then let the EMS
  follow the plan on the actual day with the plan's peak as its import limit
  (:func:`vpp.domain.plan_execution.executed_import_kw`);
- *perfect*: the same LP on the actual data (perfect foresight, the optimum);
- *reactive*: the threshold controller on the actual data, threshold = the forecast plan's peak, so it
  has the same information but no schedule;
- *uncontrolled*: no battery, EVs charging at full power on arrival.

Peak reduction = uncontrolled peak − achieved peak, kW, summed over site-days. Planning wall time is
measured per day for all sites (forecasts included), with the sites split across worker processes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import numpy.typing as npt

from vpp.domain.plan_execution import EmsTracker, receding_horizon_import_kw
from vpp.domain.planning import EvDemand, Plan, SiteFlex, plan_peak_cut, threshold_controller
from vpp.domain.slots import SLOTS_PER_DAY
from vpp.simulation.spec import fleet_specs

from .bench_data import (
    EV_EVENING_FIRST_SLOT,
    EV_EVENING_SHARE,
    EV_MORNING_DEADLINE_SLOT,
    PERFORMANCE_RATIO,
    FleetHistory,
    simulate_fleet,
)
from .day_ahead import forecast_site_day, plan_site_day, site_flex

__all__ = ["BenchResult", "run_bench"]

WARM_UP_DAYS = 21  # history before the first benchmark day, for similar-day forecasts
FIRST_BENCH_DAY = date(2026, 7, 1)  # summer: the Tokyo area's afternoon peak season
CHUNKS_PER_WORKER = 4
REPLAN_EVERY_SLOTS = 8  # the intraday re-run: every 4 hours
CLEAR_SKY_INDEX_DAYS = 7  # PV forecast: clear sky scaled by the index of the last week
FloatArray = npt.NDArray[np.float64]

_fleet: FleetHistory | None = None


@dataclass(frozen=True)
class DayOutcome:
    uncontrolled_kw: float
    perfect_kw: float
    forecast_kw: float
    reactive_kw: float
    soc_shortfall_kwh: float  # how far the forecast run ended the day below its starting SoC


@dataclass(frozen=True)
class BenchResult:
    sites: int
    days: int
    workers: int
    plan_wall_s: tuple[float, ...]  # per benchmark day, all sites
    plan_cpu_s: tuple[float, ...]  # CPU seconds the workers spent on those plans, per day
    reduction_forecast_kw: float
    reduction_perfect_kw: float
    reduction_reactive_kw: float
    site_days: int
    soc_shortfall_kwh_mean: float
    battery_kwh_mean: float

    @property
    def ratio_to_perfect(self) -> float:
        return self.reduction_forecast_kw / self.reduction_perfect_kw if self.reduction_perfect_kw else float("nan")

    @property
    def ratio_to_reactive(self) -> float:
        return self.reduction_forecast_kw / self.reduction_reactive_kw if self.reduction_reactive_kw else float("nan")


def _init_worker(sites: int, days: int, seed: int) -> None:
    global _fleet
    _fleet = simulate_fleet(sites, FIRST_BENCH_DAY - timedelta(days=WARM_UP_DAYS), WARM_UP_DAYS + days, seed)


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
    return plan_peak_cut(load.tolist(), pv.tolist(), flex, evs, target_kw, terminal_soc_kwh=terminal_kwh)


def _plan_chunk(day_index: int, sites: Sequence[int]) -> tuple[list[PlannedDay], float]:
    """Forecast and plan one day for some sites (the timed step); also returns the CPU seconds used."""
    assert _fleet is not None
    cpu_started = time.process_time()
    fleet = _fleet
    day = fleet.days[day_index]
    history_days = range(max(day_index - WARM_UP_DAYS, 0), day_index)
    plans: list[PlannedDay] = []
    for site in sites:
        spec = fleet.specs[site]
        history = {fleet.days[d]: (fleet.load_kw[site, d] * 0.5).tolist() for d in history_days}
        recent = slice(max(day_index - CLEAR_SKY_INDEX_DAYS, 0), day_index)
        clear_recent_kwh = fleet.clear_sky_kw_per_kw[recent] * spec.pv_kw * PERFORMANCE_RATIO * 0.5
        forecast = forecast_site_day(
            history, day, fleet.clear_sky_kw_per_kw[day_index], spec.pv_kw,
            fleet.pv_kw[site, recent] * 0.5, clear_recent_kwh, PERFORMANCE_RATIO,
        )  # fmt: skip
        flex, evs = _site_inputs(site, day_index, forecast=True)
        plans.append((plan_site_day(forecast, flex, evs), forecast.load_kw, forecast.pv_kw))
    return plans, time.process_time() - cpu_started


def _evaluate_chunk(day_index: int, sites: Sequence[int], plans: Sequence[PlannedDay]) -> list[DayOutcome]:
    """Run the forecast plans on the actual day and compute the three references."""
    assert _fleet is not None
    out: list[DayOutcome] = []
    for site, (plan, load_fc, pv_fc) in zip(sites, plans, strict=True):
        load = _fleet.load_kw[site, day_index]
        pv = _fleet.pv_kw[site, day_index]
        flex, evs = _site_inputs(site, day_index, forecast=False)
        load_kw, pv_kw = load.tolist(), pv.tolist()
        uncontrolled = threshold_controller(load_kw, pv_kw, SiteFlex.without_battery(), evs, 0.0).peak_import_kw
        perfect = plan_peak_cut(load_kw, pv_kw, flex, evs, 0.0).peak_import_kw
        tracker = EmsTracker(flex, evs)
        executed = float(
            receding_horizon_import_kw(
                load_fc, pv_fc, load, pv, flex, evs, plan, _replanner, REPLAN_EVERY_SLOTS, tracker
            ).max()
        )
        reactive = threshold_controller(load_kw, pv_kw, flex, evs, plan.peak_import_kw).peak_import_kw
        shortfall_kwh = max(flex.soc_kwh_initial - tracker.soc_kwh, 0.0)
        out.append(DayOutcome(uncontrolled, perfect, executed, reactive, shortfall_kwh))
    return out


def run_bench(
    sites: int = 1050,
    days: int = 30,
    *,
    workers: int | None = None,
    seed: int = 0,
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
    with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(sites, days, seed)) as pool:
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
    uncontrolled = np.array([o.uncontrolled_kw for o in outcomes])
    return BenchResult(
        sites=sites,
        days=days,
        workers=workers,
        plan_wall_s=tuple(walls),
        plan_cpu_s=tuple(cpus),
        reduction_forecast_kw=float((uncontrolled - [o.forecast_kw for o in outcomes]).sum()),
        reduction_perfect_kw=float((uncontrolled - [o.perfect_kw for o in outcomes]).sum()),
        reduction_reactive_kw=float((uncontrolled - [o.reactive_kw for o in outcomes]).sum()),
        site_days=len(outcomes),
        soc_shortfall_kwh_mean=float(np.mean([o.soc_shortfall_kwh for o in outcomes])),
        battery_kwh_mean=float(np.mean([s.battery_kwh for s in fleet_specs(sites, seed)])),
    )
