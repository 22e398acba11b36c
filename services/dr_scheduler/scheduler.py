"""The DR event workflow: create (allocate + plan), dispatch, adjust, cancel, acknowledge, tick, verify.

One :class:`Scheduler` per process owns one database connection and commits once per operation, at
the end, so an operation either happens completely (status, sites, audit) or not at all. Signals are
published *before* the commit that records them: if the broker refuses, the event keeps its status;
if the commit fails after publishing, the retained signal is simply re-sent by the next dispatch.

A site's signal topic is retained and holds one message, so every publish to a site carries every event
in effect there, merged (:mod:`vpp.domain.site_signal`), read inside the transaction that changes the
event: a second event never hides the first, and cancelling one leaves the other in force.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import psycopg

from vpp.domain.dr_events import (
    OWN_CONTROL_SOURCES,
    Direction,
    DrAck,
    DrSignal,
    EventStatus,
    SignalEvent,
    ack_payload,
    parse_ack,
    signal_payload,
)
from vpp.domain.limit_plausibility import implausible_limit
from vpp.domain.site_signal import site_signal
from vpp.log import kv
from vpp.postgres import dr_events as store
from vpp.postgres.dr_verification import events_awaiting_verification
from vpp.postgres.energy_history import load_dr_sites, region_site_ids
from vpp.postgres.oadr2b import unacknowledged_opts
from vpp.postgres.openadr_dr import publish_dr_event
from vpp.postgres.site_capacity import site_capacity
from vpp.postgres.weather_forecasts import latest_issue

from .event_planning import NO_FORECAST, NO_FORECAST_HINT, event_slots, plan_document, plan_event_sites
from .metrics import SchedulerMetrics
from .verification import VerificationConfig, verify_event

__all__ = ["EventRequest", "Scheduler", "SignalSink"]

log = logging.getLogger("vpp.dr_scheduler")

VERIFY_RETRY = timedelta(days=7)
WEATHER_CHECK_EVERY = timedelta(minutes=5)
# An event that could not be verified yet (no metered slot, or no baseline) is tried again this often, not on
# every tick: each attempt reads a month of every called site's history and logs why per site.
VERIFY_RETRY_EVERY = timedelta(minutes=5)


class SignalSink(Protocol):
    def publish(self, site_id: str, payload: bytes, status: str) -> None: ...


@dataclass(frozen=True)
class EventRequest:
    start_at: datetime
    end_at: datetime
    requested_kw: float
    kind: str = "peak_cut"
    direction: str = Direction.REDUCE
    incentive_jpy_per_kwh: float = 0.0
    region_id: str | None = None
    site_ids: tuple[str, ...] | None = None
    event_id: str | None = None
    source: str = "operator"


class Scheduler:
    def __init__(
        self,
        conn: psycopg.Connection,
        sink: SignalSink,
        metrics: SchedulerMetrics | None = None,
        verification: VerificationConfig | None = None,
    ) -> None:
        self.conn = conn
        self.sink = sink
        self.metrics = metrics or SchedulerMetrics()
        self.verification = verification or VerificationConfig()
        self._weather_checked_at: datetime | None = None
        self._verify_tried: dict[str, datetime] = {}  # event id -> last attempt that left it unverified

    def _commit_transition(self, event: store.DrEventRow) -> None:
        self.conn.commit()
        self.metrics.transitions.labels(str(event.status)).inc()

    def _allocate(
        self, event: store.DrEventRow, site_ids: Sequence[str] | None, requested_kw: float, now: datetime
    ) -> int:
        """Forecast, allocate and plan the event's sites; store them with an audit row that says what was
        requested, allocated and deliverable, and why sites were left out. Returns the number of sites called."""
        sites = load_dr_sites(self.conn, site_ids)
        if event.region_id is not None:
            members = set(region_site_ids(self.conn, event.region_id))
            sites = [site for site in sites if site.site_id in members]
        committed = store.committed_kw(
            self.conn, event.pk, event.start_at, event.end_at, event.direction, OWN_CONTROL_SOURCES
        )
        allocation, plans = plan_event_sites(
            self.conn, sites, event.start_at, event.end_at, requested_kw, self.metrics, event.direction, committed
        )
        called = [p for p in plans if p.allocated_kw > 0]
        deliverable_kw = sum(p.available_kw for p in plans)
        store.set_event_sites(
            self.conn, event.pk, [(p.site.site_pk, p.allocated_kw, p.import_limit_kw, plan_document(p)) for p in called],
            allocated_kw=allocation.allocated_kw, shortfall_kw=allocation.shortfall_kw,
            floors_kw=[p.import_floor_kw for p in called], deliverable_kw=deliverable_kw,
            site_deliverables=[(p.available_kw, p.limit_reachable) for p in called],
        )  # fmt: skip
        unreachable = [p.site.site_id for p in called if p.limit_reachable is False]
        without = {p.site.site_id: p.note for p in plans if p.note.startswith(NO_FORECAST)}
        detail: dict[str, object] = {
            "requested_kw": requested_kw, "allocated_kw": allocation.allocated_kw,
            "deliverable_kw": deliverable_kw, "shortfall_kw": allocation.shortfall_kw,
            "sites_called": len(called), "limits_out_of_reach": unreachable,
        }  # fmt: skip
        if without:
            detail |= {"sites_without_forecast": without, "how_to_fix": NO_FORECAST_HINT}
        in_use = {site.site_id: kw for site in sites if (kw := committed.get(site.site_id, 0.0)) > 0}
        if in_use:  # deliverable_kw is net of these: other events in the same slots already ask them of the sites
            detail |= {"committed_to_other_events_kw": in_use}
        store.add_audit(self.conn, event.pk, now, "scheduler", "allocation", None, None, detail)
        log.info(
            "DR event allocated",
            extra=kv(event_id=event.event_id, direction=event.direction, requested_kw=requested_kw,
                     allocated_kw=allocation.allocated_kw, shortfall_kw=allocation.shortfall_kw,
                     deliverable_kw=round(deliverable_kw, 3), sites=len(called), limits_out_of_reach=unreachable),
        )  # fmt: skip
        return len(called)

    def create_event(self, request: EventRequest, *, now: datetime, actor: str) -> store.DrEventRow:
        """Allocate the request across sites by flexibility, plan each, store it all as a planned event."""
        if request.kind != "peak_cut":
            raise ValueError("only peak_cut regional events are scheduled (peak-shift plans are per site)")
        Direction(request.direction)  # validates before anything is written, as do the slots
        event_slots(request.start_at, request.end_at)
        try:
            event = store.create_event(
                self.conn, event_id=request.event_id or f"dr-{uuid.uuid4().hex[:12]}", kind=request.kind,
                start_at=request.start_at, end_at=request.end_at, requested_kw=request.requested_kw,
                incentive_jpy_per_kwh=request.incentive_jpy_per_kwh, region_id=request.region_id,
                source=request.source, actor=actor, now=now, site_ids=request.site_ids, direction=request.direction,
            )  # fmt: skip
            self._allocate(event, request.site_ids, request.requested_kw, now)
            self.conn.commit()
        except BaseException:
            self.conn.rollback()
            raise
        return store.get_event(self.conn, event.event_id) or event

    def plan_requested(self, event_id: str, *, now: datetime, actor: str) -> store.DrEventRow:
        """Allocate and plan an event the API recorded (pending action "plan")."""
        try:
            event = store.get_event(self.conn, event_id)
            if event is None:
                raise LookupError(f"no DR event {event_id!r}")
            self._allocate(event, event.site_ids, event.requested_kw, now)
            store.clear_pending(self.conn, event.pk, now=now, actor=actor, action="allocated")
            self.conn.commit()
        except BaseException:
            self.conn.rollback()
            raise
        return store.get_event(self.conn, event_id) or event

    def _publish_all(self, event: store.DrEventRow, now: datetime) -> list[int]:
        """Publish each of the event's sites its merged signal (this event's change plus all else in effect)."""
        trigger = SignalEvent(event.event_id, event.revision, event.direction, event.start_at, event.end_at)
        published: list[int] = []
        for site in store.event_sites(self.conn, event.pk):
            signal = site_signal(trigger, event.kind, store.parts_in_effect(self.conn, site.site_pk, now), now)
            if self._refused(event, site.site_pk, signal, now):
                continue
            self.sink.publish(site.site_id, signal_payload(signal), signal.status)
            published.append(site.site_pk)
        return published

    def _refused(self, event: store.DrEventRow, site_pk: int, signal: DrSignal, now: datetime) -> bool:
        """The plausibility guard at the point of publishing: a limit the site could never mean (above its
        rated import, or far above its history) is not sent. It raises an alarm (metric and error log)
        and records why in the event's audit trail; the site is left out of this dispatch."""
        limits = [i.import_limit_kw for i in signal.intervals if i.import_limit_kw is not None]
        if not limits:
            return False
        why = implausible_limit(max(limits), site_capacity(self.conn, site_pk, now))
        if why is None:
            return False
        self.metrics.implausible_limits.inc()
        log.error("refused to publish an implausible import limit", extra=kv(event_id=event.event_id, reason=why))
        store.add_audit(self.conn, event.pk, now, "scheduler", "limit_refused", event.status, event.status,
                        {"site_pk": site_pk, "reason": why, "channel": "mqtt"})  # fmt: skip
        return True

    def _openadr_refused(self, _site_id: str, _reason: str) -> None:
        # `publish_dr_event` applied the same guard to the OpenADR event, logged it and wrote the audit.
        self.metrics.implausible_limits.inc()

    def dispatch(self, event_id: str, *, now: datetime, actor: str) -> store.DrEventRow:
        """Publish the event's signals to every called site and mark it dispatched."""
        try:
            current = store.get_event(self.conn, event_id)
            if current is None:
                raise LookupError(f"no DR event {event_id!r}")
            bump = current.status != EventStatus.PLANNED  # a re-dispatch is a new revision
            event = store.transition(self.conn, event_id, EventStatus.DISPATCHED, actor=actor, now=now,
                                     bump_revision=bump)  # fmt: skip
            sites = self._publish_all(event, now)
            store.record_dispatch(self.conn, event.pk, sites, event.revision, now)
            # The same change, as OpenADR events for VENs (behind the same plausibility guard).
            publish_dr_event(self.conn, event_id, now, on_refused=self._openadr_refused)
            self._commit_transition(event)
        except BaseException:
            self.conn.rollback()
            raise
        return event

    def publish_revision(self, event_id: str, *, now: datetime, actor: str) -> store.DrEventRow:
        """Send re-planned limits as a new revision. Before the event starts this is a re-dispatch; an active
        event stays active (the lifecycle has no way back to "dispatched"), with its revision bumped."""
        current = store.get_event(self.conn, event_id)
        if current is None:
            raise LookupError(f"no DR event {event_id!r}")
        if current.status != EventStatus.ACTIVE:
            return self.dispatch(event_id, now=now, actor=actor)
        try:
            event = store.bump_revision(self.conn, event_id, actor=actor, now=now, detail={"reason": "re-planned"})
            sites = self._publish_all(event, now)
            store.record_dispatch(self.conn, event.pk, sites, event.revision, now)
            publish_dr_event(self.conn, event_id, now, on_refused=self._openadr_refused)
            self.conn.commit()
        except BaseException:
            self.conn.rollback()
            raise
        return event

    def adjust(self, event_id: str, requested_kw: float, *, now: datetime, actor: str) -> store.DrEventRow:
        """Re-allocate and re-plan with a new request; re-dispatch if signals were already out."""
        try:
            event = store.get_event(self.conn, event_id)
            if event is None:
                raise LookupError(f"no DR event {event_id!r}")
            if event.status not in {EventStatus.PLANNED, EventStatus.DISPATCHED, EventStatus.ACKNOWLEDGED}:
                raise ValueError(f"a {event.status} event cannot be adjusted")
            signalled = {s.site_pk: s.site_id for s in store.event_sites(self.conn, event.pk) if s.dispatched_revision}
            self._allocate(event, event.site_ids, requested_kw, now)
            store.set_requested_kw(self.conn, event.pk, requested_kw)
            store.clear_pending(self.conn, event.pk, now=now, actor=actor, action="adjusted")
            self.conn.commit()
        except BaseException:
            self.conn.rollback()
            raise
        if event.status == EventStatus.PLANNED:
            return store.get_event(self.conn, event_id) or event
        adjusted = self.dispatch(event_id, now=now, actor=actor)
        still_called = {s.site_pk for s in store.event_sites(self.conn, adjusted.pk)}
        self.release(adjusted, {pk: sid for pk, sid in signalled.items() if pk not in still_called}, now)
        return adjusted

    def release(self, event: store.DrEventRow, sites: dict[int, str], now: datetime) -> None:
        """Sites the re-allocation no longer calls get their merged state without this event: their retained
        signal must not keep them cutting for it."""
        trigger = SignalEvent(event.event_id, event.revision, event.direction, event.start_at, event.end_at)
        for site_pk, site_id in sorted(sites.items()):
            signal = site_signal(trigger, event.kind, store.parts_in_effect(self.conn, site_pk, now), now)
            if self._refused(event, site_pk, signal, now):
                continue
            self.sink.publish(site_id, signal_payload(signal), signal.status)
            log.info("DR event released a site", extra=kv(event_id=event.event_id, site_id=site_id))
        self.conn.commit()

    def cancel(self, event_id: str, *, now: datetime, actor: str, reason: str = "") -> store.DrEventRow:
        """Cancel; sites that had a signal get a retained cancellation that replaces it."""
        try:
            current = store.get_event(self.conn, event_id)
            if current is None:
                raise LookupError(f"no DR event {event_id!r}")
            event = store.transition(self.conn, event_id, EventStatus.CANCELLED, actor=actor, now=now,
                                     detail={"reason": reason}, bump_revision=current.status != EventStatus.PLANNED)  # fmt: skip
            if current.status != EventStatus.PLANNED:
                self._publish_all(event, now)
            store.drop_pending_action(self.conn, event.pk)
            publish_dr_event(self.conn, event_id, now, on_refused=self._openadr_refused)
            self._commit_transition(event)
        except BaseException:
            self.conn.rollback()
            raise
        return event

    def handle_ack(self, site_id: str, payload: bytes, *, now: datetime) -> None:
        """Store an ack; when every called site accepted the latest revision, the event is acknowledged."""
        try:
            try:
                ack, error = parse_ack(payload), None
            except ValueError as bad:
                ack, error = None, str(bad)
                log.warning(
                    "bad DR ack", extra=kv(site_id=site_id, error=error, payload=payload[:200].decode(errors="replace"))
                )
            self.metrics.acks.labels("bad" if ack is None else "accepted" if ack.accepted else "rejected").inc()
            result = store.record_ack(self.conn, site_id, payload, now, ack, error)
            if result is not None and result[1] and result[0].status == EventStatus.DISPATCHED:
                event = store.transition(self.conn, result[0].event_id, EventStatus.ACKNOWLEDGED, actor=f"site:{site_id}",
                                         now=now, detail={"revision": result[0].revision})  # fmt: skip
                self._commit_transition(event)
            elif result is not None and not result[1] and result[0].status == EventStatus.ACKNOWLEDGED:
                # A called site rejected the latest revision after accepting it: `acknowledged` (every
                # called site accepted it) no longer holds. Only this ack can have changed that.
                detail = {"revision": result[0].revision, "rejected": ack.detail if ack else ""}
                event = store.transition(self.conn, result[0].event_id, EventStatus.DISPATCHED, actor=f"site:{site_id}",
                                         now=now, action="acknowledgement withdrawn", detail=detail)  # fmt: skip
                self._commit_transition(event)
            else:
                self.conn.commit()
        except BaseException:
            self.conn.rollback()
            raise

    def process_requests(self, now: datetime) -> None:
        """Carry out what the API recorded: plan new events, re-plan adjusted ones, cancel."""
        for event_id, action, actor in store.pending_requests(self.conn):
            self.conn.commit()
            event = store.get_event(self.conn, event_id)
            if event is None:
                continue
            try:
                if action == "plan":
                    self.plan_requested(event_id, now=now, actor=actor)
                elif action == "replan":
                    self.adjust(event_id, event.requested_kw, now=now, actor=actor)
                else:
                    self.cancel(event_id, now=now, actor=actor, reason="requested through the API")
            except ValueError as error:  # IllegalTransition included: refuse once, in the audit trail
                store.clear_pending(
                    self.conn, event.pk, now=now, actor="scheduler", action=f"{action} refused: {error}"
                )
                self.conn.commit()
                log.warning("request refused", extra=kv(event_id=event_id, action=action, reason=str(error)))

    def acknowledge_oadr2b_opts(self, now: datetime) -> None:
        """A 2.0b VEN's optIn (optOut) on the latest revision is its site's accepted (rejected) ack, as over MQTT."""
        for opt in unacknowledged_opts(self.conn):
            self.conn.commit()
            ack = DrAck(opt.event_id, opt.revision, opt.opt_type == "optIn", opt.opted_at,
                        f"OpenADR 2.0b {opt.opt_type} by {opt.ven_id}")  # fmt: skip
            self.handle_ack(opt.site_id, ack_payload(ack), now=now)

    def tick(self, now: datetime) -> None:
        """Time-driven lifecycle: take 2.0b opts as acks, start events whose window began, complete and verify
        those that ended."""
        self.acknowledge_oadr2b_opts(now)
        for event in store.list_events(self.conn, statuses=["dispatched", "acknowledged", "active"]):
            try:
                if event.status != EventStatus.ACTIVE and event.start_at <= now:
                    event = store.transition(self.conn, event.event_id, EventStatus.ACTIVE, actor="scheduler", now=now)
                    self._commit_transition(event)
                if event.status == EventStatus.ACTIVE and event.end_at <= now:
                    event = store.transition(
                        self.conn, event.event_id, EventStatus.COMPLETED, actor="scheduler", now=now
                    )
                    self._commit_transition(event)
            except BaseException:
                self.conn.rollback()
                raise
        self.verify_pending(now)
        self._observe_weather_feed(now)

    def _observe_weather_feed(self, now: datetime) -> None:
        """Export when the newest weather forecast was issued, every few minutes: a feeder that stopped leaves the
        sites on last week's index without a word (`VppWeatherForecastStale`)."""
        if self._weather_checked_at is not None and now - self._weather_checked_at < WEATHER_CHECK_EVERY:
            return
        self._weather_checked_at = now
        issued = latest_issue(self.conn)
        self.conn.commit()
        if issued is not None:
            self.metrics.weather_issued.set(issued.timestamp())

    def verify_pending(self, now: datetime) -> None:
        """Verify completed events whose slots are metered (re-run until every site's data is in)."""
        # Late data is retried for a week; after that `vpp dr verify` re-runs an event by hand.
        event_ids = events_awaiting_verification(self.conn, now - VERIFY_RETRY, now - self.verification.settle)
        self.conn.commit()
        awaiting = set(event_ids)
        self._verify_tried = {e: at for e, at in self._verify_tried.items() if e in awaiting}
        for event_id in event_ids:
            tried = self._verify_tried.get(event_id)
            if tried is not None and now - tried < VERIFY_RETRY_EVERY:
                continue  # not verifiable last time: late data gets its chance at the next retry
            self._verify_tried[event_id] = now
            verify_event(self.conn, event_id, now, self.verification, self.metrics)
