"""The day's peak programme: each 30-minute slot's import limit for enrolled battery sites, from live telemetry.

A site's demand charge follows its highest 30-minute import of the month, so a battery site wants every slot of
the day held as low as the battery can keep it. The stochastic programme (:mod:`vpp.domain.planning.stochastic`)
chooses each slot's limit knowing the forecast is wrong in a persistent way; on `vpp bench dr` it reaches 0.83
of the perfect-foresight reduction on battery-only sites, where re-planning the LP reaches 0.77.

Per enrolled site and JST day: the programme is solved once on the day-ahead forecast (about 2 s, in a worker
thread, so the loop keeps serving acks and live demand control meanwhile). Then once per slot, when the slot
before has settled in the 30-minute table (:data:`SETTLE`), the persistent net-load error is estimated from the
day's metered slots and the limit read at the battery's live state of charge and the day's peak so far.

The limit goes to the site as one day-long event per site and day (source ``peak_programme``, id
``peak-{site}-{yyyymmdd}``) carrying the limit as both import limit and import floor: the EMS holds import at it,
discharging above it and charging below it, which is what the programme assumes (an EMS that ignores floors
still holds the limit, as a v1 site does). A change of more than :data:`LIMIT_STEP_KW` is a new revision; if the
scheduler stops, the site keeps the last limit, which is never below the day's peak so far. It is the site's own
demand control, not a DR call: the day stays in its ERAB baseline and the intraday re-planner leaves it alone.
An operator who cancels the day's event ends the programme at that site for that day.

Sites with EV charging in their forecast: the stochastic programme has no EV state, so their limit is the LP
re-plan's instead (:mod:`vpp.domain.planning.limit_replan`, measured on `vpp bench dr` as "limit only"): each
slot the rest of the day is planned again from the live SoC, the forecast corrected by the day's metered slots
and the EV energy still owed (each forecast charging need less the EV energy metered since; :func:`rest_of_day`),
with the day's peak so far as its target, and the limit is that plan's peak.

Left to DR events, each with its reason logged once a day: sites without a battery, without enough history to
forecast, or with no SoC reported in the last :data:`SOC_MAX_AGE` (a site already running keeps the last limit
it was sent until one comes).
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

import numpy as np
import numpy.typing as npt

from vpp.domain.dr_events import PEAK_PROGRAMME_SOURCE, EventStatus
from vpp.domain.forecast import ForecastError
from vpp.domain.planning import EvDemand, threshold_controller
from vpp.domain.planning.limit_replan import replanned_limit_kw
from vpp.domain.planning.stochastic import (
    PeakValues,
    ResidualModel,
    net_error_estimate,
    peak_range_kw,
    solve_peak_values,
)
from vpp.domain.slots import JST, SLOT, SLOTS_PER_DAY
from vpp.log import kv
from vpp.postgres import dr_events as store
from vpp.postgres.energy_history import SiteDr, daily_slots, jst_midnight, load_dr_sites
from vpp.postgres.peak_programme import enrolled_site_ids, record_status, withdrawn_events

from .day_ahead import SiteForecast, plan_site_day, site_flex
from .intraday import LIMIT_STEP_KW
from .rest_of_day import rest_of_day
from .scheduler import Scheduler
from .site_forecast import PV_FROM_RECENT_PV, forecast_from_history

__all__ = ["SETTLE", "SOURCE", "PeakProgramme", "event_id_for"]

log = logging.getLogger("vpp.dr_scheduler.peak_programme")

SOURCE = PEAK_PROGRAMME_SOURCE
# The slot before must be in the 30-minute table before its load tells anything: the ingest's rollup takes a
# slot a few seconds after its last reading (`ingest_rollup_delay_s`), so a minute is ample.
SETTLE = timedelta(seconds=60)
# A limit is only chosen from a recent SoC: steering on a stale one (telemetry stopped, ingest down) could spend
# a battery that is already empty. Until a fresh reading comes, the site keeps the last limit sent.
SOC_MAX_AGE = timedelta(minutes=15)
# The event must call the site (a share of 0 means "not called"): when the limit sits above the day's forecast
# peak without the battery, the share is this token.
MIN_SHARE_KW = 0.01

FloatArray = npt.NDArray[np.float64]
_IN_EFFECT = (EventStatus.DISPATCHED, EventStatus.ACKNOWLEDGED, EventStatus.ACTIVE)


def event_id_for(site_id: str, day: date) -> str:
    return f"peak-{site_id}-{day:%Y%m%d}"


@dataclass(frozen=True)
class _Solved:
    """One site's programme for one JST day, and what it was solved on."""

    day: date
    values: PeakValues | None  # None: a site with EVs, its limit re-planned with the LP each slot
    terminal_soc_kwh: float  # the end-of-day rule: at least as full as when the day's programme began
    planned_peak_kw: float  # the day-ahead plan's peak (sets the peaks the grid resolves)
    forecast_peak_kw: float  # the forecast's peak without the battery (EVs charged as they arrive)
    solve_seconds: float
    pv_forecast: str = PV_FROM_RECENT_PV  # what the PV forecast came from (site_forecast.PV_FROM_*)


def _fresh(site: SiteDr, now: datetime) -> bool:
    return site.soc_pct is not None and site.soc_at is not None and now - site.soc_at <= SOC_MAX_AGE


def _kw(values: list[float | None] | None) -> FloatArray:
    """kWh per slot → kW, NaN where a slot is not metered."""
    return np.array([np.nan if v is None else 2.0 * float(v) for v in (values or [None] * SLOTS_PER_DAY)])


class PeakProgramme:
    """Sends each enrolled site its limit once per slot. ``background=False`` solves inline (tests, benches)."""

    def __init__(self, scheduler: Scheduler, *, background: bool = True, model: ResidualModel | None = None) -> None:
        self.scheduler = scheduler
        self.model = model or ResidualModel()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="peak-programme") if background else None
        self._solved: dict[str, _Solved] = {}
        self._solving: dict[str, tuple[date, Future[_Solved]]] = {}
        self._done: dict[str, datetime] = {}
        self._told: set[tuple[str, date, str]] = set()
        self._ended: set[tuple[str, date]] = set()  # today's event was cancelled by an operator

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    def wait_for_solves(self) -> None:
        """Block until every solve under way has finished (tests)."""
        for _day, future in list(self._solving.values()):
            future.exception()

    def run(self, now: datetime) -> list[str]:
        """One pass: the ids of the sites sent a new limit."""
        conn = self.scheduler.conn
        day = now.astimezone(JST).date()
        midnight = jst_midnight(day)
        t = int((now - midnight) / SLOT)
        current = midnight + t * SLOT
        site_ids = enrolled_site_ids(conn)
        self._forget(set(site_ids), day)
        self._cancel_withdrawn(now)
        if not site_ids or now < current + SETTLE:
            conn.commit()
            return []
        sent: list[str] = []
        for site in load_dr_sites(conn, site_ids):
            if self._done.get(site.site_id) == current:
                continue
            solved = self._programme(site, day, now)
            if solved is None and site.site_id in self._solving:
                continue  # being solved: looked at again next tick (the status says "solving")
            self._done[site.site_id] = current  # once per slot, also when it cannot be done now
            if solved is None or (site.site_id, day) in self._ended:
                continue
            if self._step(site, solved, t, current, now):
                sent.append(site.site_id)
            if solved.values is not None:  # slots passed are never read again: their values go (10 MB a day)
                self._solved[site.site_id] = replace(solved, values=solved.values.released_before(t + 1))
        conn.commit()
        return sent

    def _cancel_withdrawn(self, now: datetime) -> None:
        """A withdrawn site's event in effect is cancelled: its retained signal must not hold it all day."""
        for event_id in withdrawn_events(self.scheduler.conn, SOURCE, now):
            self.scheduler.cancel(event_id, now=now, actor=SOURCE, reason="site withdrawn from the programme")
            log.info("peak programme withdrawn", extra=kv(event_id=event_id))

    def _forget(self, enrolled: set[str], day: date) -> None:
        """Drop what belongs to another day or to a site no longer enrolled (up to 10 MB of values per site)."""
        for site_id in [s for s, solved in self._solved.items() if s not in enrolled or solved.day != day]:
            del self._solved[site_id]
        for site_id in [s for s, (d, _f) in self._solving.items() if s not in enrolled or d != day]:
            del self._solving[site_id]
        self._told = {told for told in self._told if told[1] == day}
        self._ended = {ended for ended in self._ended if ended[1] == day}

    def _skip(
        self, site: SiteDr, day: date, now: datetime, why: str, reason: str, limit_kw: float | None = None
    ) -> None:
        """Say why the site gets no new limit (``why``: the metric's short label): on the dashboard each time,
        in the log and the metric once per site and day. ``limit_kw``: the limit that stays in force."""
        self._status(site, day, now, "left_out", why=why, reason=reason, limit_kw=limit_kw)
        if (site.site_id, day, reason) not in self._told:
            self._told.add((site.site_id, day, reason))
            self.scheduler.metrics.programme_left_out.labels(why).inc()
            log.warning(
                "site left out of the peak programme", extra=kv(site_id=site.site_id, day=str(day), reason=reason)
            )

    def _status(self, site: SiteDr, day: date, now: datetime, state: str, **detail: float | str | None) -> None:
        """What the operators' dashboard shows for the site (committed with the pass)."""
        slot = int((now - jst_midnight(day)) / SLOT)
        record_status(self.scheduler.conn, site.site_pk, day, slot, now, state, **detail)  # type: ignore[arg-type]

    def _programme(self, site: SiteDr, day: date, now: datetime) -> _Solved | None:
        """The site's solved programme for ``day``: None while it is being solved, or when it cannot be."""
        solved = self._solved.get(site.site_id)
        if solved is not None and solved.day == day:
            return solved
        under_way = self._solving.get(site.site_id)
        if under_way is not None and under_way[0] == day:
            if not under_way[1].done():
                return None
            del self._solving[site.site_id]
            error = under_way[1].exception()
            if error is not None:
                self._skip(site, day, now, "solve_failed", f"the programme could not be solved: {error}")
                return None
            return self._keep(site.site_id, under_way[1].result())
        job = self._prepare(site, day, now)
        if job is None:
            return None
        if self._executor is None:
            return self._keep(site.site_id, job())
        self._solving[site.site_id] = (day, self._executor.submit(job))
        self._status(site, day, now, "solving")
        return None

    def _keep(self, site_id: str, solved: _Solved) -> _Solved:
        self.scheduler.metrics.programme_solve_seconds.observe(solved.solve_seconds)
        log.info("peak programme solved", extra=kv(site_id=site_id, day=str(solved.day),
                                                   seconds=round(solved.solve_seconds, 2),
                                                   planned_peak_kw=round(solved.planned_peak_kw, 2),
                                                   pv_forecast=solved.pv_forecast))  # fmt: skip
        self._solved[site_id] = solved
        return solved

    def _prepare(self, site: SiteDr, day: date, now: datetime) -> _SolveJob | None:
        """Read what the solve needs (on the loop's connection); the solve itself touches no database."""
        if site.battery_kwh <= 0 or site.battery_kw <= 0:
            self._skip(site, day, now, "no_battery", "no battery: the peak programme steers a battery")
            return None
        try:
            forecast = forecast_from_history(self.scheduler.conn, site, day)
        except ForecastError as error:
            self._skip(site, day, now, "no_forecast", f"no forecast: {error}")
            return None
        terminal_kwh = self._terminal_soc_kwh(site, day, now)
        if terminal_kwh is None:
            self._skip(site, day, now, "no_soc", f"no battery state of charge reported in the last {SOC_MAX_AGE}")
            return None
        # A weather forecast whose record at the site beats last week's index comes with its own error there.
        model = self.model if forecast.pv_error_sd is None else replace(self.model, pv_sd=forecast.pv_error_sd)
        return _SolveJob(day, forecast.forecast.load_kw, forecast.forecast.pv_kw, tuple(forecast.evs), site,
                         terminal_kwh, model, forecast.pv_source)  # fmt: skip

    def _terminal_soc_kwh(self, site: SiteDr, day: date, now: datetime) -> float | None:
        """The SoC the day must end at or above: as stored with today's event (a restarted scheduler solves the
        same programme again), else the battery's SoC now."""
        event = store.get_event(self.scheduler.conn, event_id_for(site.site_id, day))
        if event is not None:
            for row in store.event_sites(self.scheduler.conn, event.pk):
                stored = (row.plan or {}).get("terminal_soc_kwh")
                if isinstance(stored, int | float):
                    return float(stored)
        if not _fresh(site, now):
            return None
        assert site.soc_pct is not None
        return site_flex(site.battery_kwh, site.battery_kw, site.soc_pct / 100 * site.battery_kwh).soc_kwh_initial

    def _step(self, site: SiteDr, solved: _Solved, t: int, current: datetime, now: datetime) -> bool:
        """Read the limit for slot ``t`` and send it if it moved; True when sent."""
        conn = self.scheduler.conn
        event_id = event_id_for(site.site_id, solved.day)
        event = store.get_event(conn, event_id)
        if event is not None and event.status not in _IN_EFFECT:
            self._skip(site, solved.day, now, "event_ended",
                       f"today's event is {event.status}: the programme stops here today")  # fmt: skip
            self._ended.add((site.site_id, solved.day))
            return False
        called = store.event_sites(conn, event.pk) if event is not None else []
        previous_kw = called[0].import_limit_kw if called else None
        if not _fresh(site, now):
            self._skip(site, solved.day, now, "no_soc", f"no battery state of charge reported in the last "
                                                        f"{SOC_MAX_AGE}: the last limit stays", previous_kw)  # fmt: skip
            return False
        assert site.soc_pct is not None
        import_kw = _kw(daily_slots(conn, site.site_pk, solved.day, solved.day, "import_kwh").get(solved.day))
        metered = import_kw[:t][~np.isnan(import_kw[:t])]
        peak_kw = float(metered.max()) if metered.size else 0.0
        flex = site_flex(site.battery_kwh, site.battery_kw, solved.terminal_soc_kwh)
        soc_kwh = min(max(site.soc_pct / 100 * site.battery_kwh, flex.soc_min_kwh), flex.soc_max_kwh)
        document: dict[str, object] = {
            "note": "day peak programme: this slot's import limit, held as limit and floor", "from_slot": t,
            "soc_kwh": round(soc_kwh, 3), "peak_so_far_kw": round(peak_kw, 3),
            "terminal_soc_kwh": solved.terminal_soc_kwh, "planned_peak_kw": round(solved.planned_peak_kw, 3),
            "forecast_peak_kw": round(solved.forecast_peak_kw, 3), "pv_forecast": solved.pv_forecast,
        }  # fmt: skip
        if solved.values is not None:
            # The day's metered load and PV (the LP path reads them in rest_of_day, with the EV energy).
            rows = {flow: daily_slots(conn, site.site_pk, solved.day, solved.day, flow).get(solved.day)
                    for flow in ("load_kwh", "ev_kwh", "pv_kwh")}  # fmt: skip
            ev_kw = np.nan_to_num(_kw(rows["ev_kwh"]))
            load_kw, pv_kw = _kw(rows["load_kwh"]) - ev_kw, _kw(rows["pv_kwh"])
            values = solved.values
            drift = net_error_estimate(values.load_kw, values.pv_kw, load_kw, pv_kw, t, values.model)
            limit_kw = round(values.limit_kw(t, soc_kwh, peak_kw, drift), 2)
            document |= {"controller": "stochastic", "net_error_sd": round(drift, 3)}
        else:
            lp_kw = self._lp_limit_kw(site, solved, t, now, peak_kw, previous_kw)
            if lp_kw is None:
                return False
            limit_kw = round(lp_kw, 2)
            document["controller"] = "lp_replan"
        document["limit_kw"] = limit_kw
        share_kw = max(solved.forecast_peak_kw - limit_kw, MIN_SHARE_KW)
        if event is None:
            start, end = current, jst_midnight(solved.day + timedelta(days=1))
            try:
                event = store.create_event(
                    conn, event_id=event_id, kind="peak_cut", start_at=start, end_at=end, requested_kw=share_kw,
                    incentive_jpy_per_kwh=0.0, region_id=None, source=SOURCE, actor=SOURCE, now=now,
                    site_ids=(site.site_id,),
                )  # fmt: skip
                self._store(event, site, share_kw, limit_kw, document)
                conn.commit()
            except BaseException:
                conn.rollback()
                raise
            self.scheduler.dispatch(event_id, now=now, actor=SOURCE)
        elif previous_kw is not None and abs(limit_kw - previous_kw) <= LIMIT_STEP_KW:
            self._status(site, solved.day, now, "holding", limit_kw=previous_kw)
            return False
        else:
            try:
                self._store(event, site, share_kw, limit_kw, document)
                store.add_audit(conn, event.pk, now, SOURCE, "replanned", None, None,
                                {"from_slot": t, "limit_kw": limit_kw, "previous_limit_kw": previous_kw})  # fmt: skip
            except BaseException:
                conn.rollback()
                raise
            # Stored and sent together: publish_revision commits both, or rolls both back.
            self.scheduler.publish_revision(event_id, now=now, actor=SOURCE)
        self._status(site, solved.day, now, "holding", limit_kw=limit_kw)
        self.scheduler.metrics.programme_limits.labels("revision" if previous_kw is not None else "first").inc()
        log.info("peak programme limit sent", extra=kv(site_id=site.site_id, slot=t, limit_kw=limit_kw,
                                                       soc_kwh=round(soc_kwh, 2), peak_so_far_kw=round(peak_kw, 2)))  # fmt: skip
        return True

    def _lp_limit_kw(
        self, site: SiteDr, solved: _Solved, t: int, now: datetime, peak_kw: float, previous_kw: float | None
    ) -> float | None:
        """A site with EVs: the peak of the rest of the day planned again from now (None: it could not be)."""
        try:
            load_kw, pv_kw, evs, flex = rest_of_day(self.scheduler.conn, site, t, jst_midnight(solved.day))
            return replanned_limit_kw(load_kw, pv_kw, flex, evs, peak_kw, solved.terminal_soc_kwh)
        except (ForecastError, ValueError) as error:  # InfeasiblePlan included
            self._skip(site, solved.day, now, "plan_failed",
                       f"the rest of the day could not be planned ({error}): the last limit stays", previous_kw)  # fmt: skip
            return None

    def _store(
        self, event: store.DrEventRow, site: SiteDr, share_kw: float, limit_kw: float, document: dict[str, object]
    ) -> None:
        slots = int((event.end_at - event.start_at) / SLOT)
        store.set_event_sites(
            self.scheduler.conn, event.pk, [(site.site_pk, share_kw, limit_kw, document)], allocated_kw=share_kw,
            shortfall_kw=0.0, floors_kw=[[limit_kw] * slots],
        )  # fmt: skip


@dataclass(frozen=True)
class _SolveJob:
    """The solve, with everything it needs read already: runs in the worker thread."""

    day: date
    load_kw: FloatArray
    pv_kw: FloatArray
    evs: tuple[EvDemand, ...]
    site: SiteDr
    terminal_soc_kwh: float
    model: ResidualModel
    pv_forecast: str = PV_FROM_RECENT_PV

    def __call__(self) -> _Solved:
        started = time.perf_counter()
        flex = site_flex(self.site.battery_kwh, self.site.battery_kw, self.terminal_soc_kwh)
        planned_kw = plan_site_day(SiteForecast(self.load_kw, self.pv_kw, 1.0), flex, self.evs).peak_import_kw
        values = None
        if not self.evs:
            peaks = peak_range_kw(self.load_kw, self.pv_kw, planned_kw)
            values = solve_peak_values(self.load_kw, self.pv_kw, flex, peaks, self.terminal_soc_kwh, self.model)
        unmanaged = threshold_controller(self.load_kw.tolist(), self.pv_kw.tolist(), site_flex(0.0, 0.0), self.evs, 0.0)
        forecast_peak_kw = unmanaged.peak_import_kw
        took_s = time.perf_counter() - started
        return _Solved(self.day, values, self.terminal_soc_kwh, planned_kw, forecast_peak_kw, took_s, self.pv_forecast)
