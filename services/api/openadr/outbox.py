"""The API process's notification delivery loop: the outbox's changes to webhook POSTs, at least once.

Each round (1) fans new changes out to deliveries in one transaction, (2) leases the due deliveries,
(3) POSTs them — one callback URL's in change order, different URLs concurrently — and (4) records
each outcome: delivered rows are deleted, a retryable failure is rescheduled with back-off, the
last attempt or a 4xx refusal leaves a dead letter (`failed_at`, `last_error`). Every API process
runs a loop; the row claims (FOR UPDATE SKIP LOCKED) keep them from delivering the same row
concurrently. A crash between the POST and step (4) sends that notification again once the lease
ends. Ended events past the retention setting are purged here too, about once a minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta

import httpx
from prometheus_client import CollectorRegistry, Counter, Gauge
from sqlalchemy.ext.asyncio import AsyncEngine

from services.api.openadr.callback_guard import callback_refusal
from services.api.openadr.mqtt_notifier import MqttNotifier, insert_mqtt_messages, mqtt_fan_out
from services.api.openadr.notify import fan_out
from services.api.openadr.webhooks import Attempt, RetryPolicy, next_delay_s, post_notification
from vpp.postgres.openadr_outbox import (
    Delivery,
    claim_changes,
    claim_deliveries,
    delivered,
    give_up,
    insert_deliveries,
    outbox_stats,
    purge_ended_events,
    release,
    retry_later,
)

__all__ = ["OutboxLoop"]

_log = logging.getLogger(__name__)
_BATCH = 100
_STATS_EVERY_S = 2.0
_PURGE_EVERY_S = 60.0


class OutboxMetrics:
    """The outbox's gauges and counters, registered when the app is made (so /metrics names them before
    the first delivery, and deploy/'s alert rules can be checked against the registry)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.pending = Gauge(
            "vpp_openadr_notifications_pending",
            "OpenADR changes and webhook deliveries not yet made",
            registry=registry,
        )
        self.failed = Gauge(
            "vpp_openadr_notifications_failed", "OpenADR webhook deliveries given up (dead letters)", registry=registry
        )
        self.oldest_age_s = Gauge(
            "vpp_openadr_notifications_oldest_pending_seconds",
            "Age of the oldest OpenADR notification not yet delivered",
            registry=registry,
        )
        self.attempts = Counter(
            "vpp_openadr_webhook_attempts", "OpenADR webhook POSTs by this process", ["outcome"], registry=registry
        )


class OutboxLoop:
    def __init__(
        self,
        engine: AsyncEngine,
        metrics: OutboxMetrics,
        *,
        policy: RetryPolicy,
        poll_s: float,
        retention: timedelta,
        clock: Callable[[], datetime],
        transport: httpx.AsyncBaseTransport | None = None,
        mqtt: MqttNotifier | None = None,
        allow_local_callbacks: bool = False,
    ) -> None:
        self.engine = engine
        self.allow_local_callbacks = allow_local_callbacks
        self.mqtt = mqtt  # the MQTT notifier binding, when configured: fanned out in the same transaction
        if mqtt is not None:
            mqtt.fan_out = self.fan_out_changes
        self.policy = policy
        self.poll_s = poll_s
        self.retention = retention
        self.clock = clock
        self._transport = transport
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last_stats = 0.0
        self._last_purge = 0.0
        self._in_flight: set[int] = set()  # leased by this process, outcome not yet recorded
        self.metrics = metrics
        self.pending, self.failed = metrics.pending, metrics.failed
        self.oldest_age_s, self.attempts = metrics.oldest_age_s, metrics.attempts

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="openadr-outbox")

    def wake(self) -> None:
        """Look for work now (after this process committed a change) rather than at the next poll."""
        self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._in_flight:
            # A clean shutdown hands its leased deliveries back at once rather than when the lease ends.
            async with self.engine.begin() as conn:
                await release(conn, sorted(self._in_flight))
            self._in_flight.clear()

    async def _run(self) -> None:
        async with httpx.AsyncClient(transport=self._transport, timeout=self.policy.timeout_s) as client:
            failures = 0
            while True:
                try:
                    busy = await self.run_once(client)
                    failures = 0
                except Exception:  # a database hiccup must not end delivery for good
                    failures += 1
                    _log.exception("OpenADR outbox round failed; retrying", extra={"failures": failures})
                    busy = False
                if not busy:
                    # While the database is failing, wait longer each round (up to 5 s) rather than spin.
                    wait_s = min(self.poll_s * 2**failures, max(self.poll_s, 5.0))
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), wait_s)
                    self._wake.clear()

    async def fan_out_changes(self) -> int:
        """Turn up to a batch of changes into webhook deliveries and MQTT messages, in one transaction;
        how many changes. The MQTT notifier's loop calls this too, so MQTT notifications do not wait
        behind a slow webhook receiver (the claim skips rows another caller holds)."""
        async with self.engine.begin() as conn:
            changes = await claim_changes(conn, _BATCH)
            for change in changes:
                await insert_deliveries(conn, await fan_out(conn, change))
                if self.mqtt is not None:
                    await insert_mqtt_messages(conn, await mqtt_fan_out(conn, change))
        if changes and self.mqtt is not None:
            self.mqtt.wake()
        return len(changes)

    async def run_once(self, client: httpx.AsyncClient) -> bool:
        """One round; True when there may be more work right away."""
        changes = await self.fan_out_changes()
        # The lease outlasts a few POSTs of one URL made one after another; should a slow receiver
        # outlast it, another process may send the same notification again (at least once, still).
        async with self.engine.begin() as conn:
            due = await claim_deliveries(conn, _BATCH, self.policy.timeout_s * 4 + 10)
        if due:
            self._in_flight.update(d.id for d in due)
            await self._deliver(client, due)
        await self._housekeeping()
        return changes == _BATCH or len(due) == _BATCH

    async def _deliver(self, client: httpx.AsyncClient, due: list[Delivery]) -> None:
        by_url: dict[str, list[Delivery]] = defaultdict(list)
        for delivery in due:
            by_url[delivery.callback_url].append(delivery)

        async def in_order(deliveries: list[Delivery]) -> None:
            for delivery in deliveries:
                # Checked again at each delivery: the name may have been pointed elsewhere since it was accepted.
                refused = None if self.allow_local_callbacks else await callback_refusal(delivery.callback_url)
                if refused is not None:
                    attempt = Attempt(False, False, f"callback address refused: {refused}")
                else:
                    attempt = await post_notification(
                        client, delivery.callback_url, delivery.message, delivery.bearer_token
                    )
                await self._record(delivery, attempt)

        await asyncio.gather(*(in_order(group) for group in by_url.values()))

    async def _record(self, delivery: Delivery, attempt: Attempt) -> None:
        async with self.engine.begin() as conn:
            if attempt.ok:
                self.attempts.labels("delivered").inc()
                await delivered(conn, delivery.id)
            elif (delay_s := next_delay_s(self.policy, delivery.attempts, attempt)) is not None:
                self.attempts.labels("retry").inc()
                await retry_later(conn, delivery.id, delay_s, attempt.reason)
            else:
                self.attempts.labels("failed").inc()
                reason = attempt.reason if not attempt.retry else f"{attempt.reason} after {delivery.attempts} attempts"
                _log.warning("OpenADR webhook given up", extra={"url": delivery.callback_url, "reason": reason})
                await give_up(conn, delivery.id, reason)
        self._in_flight.discard(delivery.id)

    async def _housekeeping(self) -> None:
        now_s = time.monotonic()
        if now_s - self._last_purge >= _PURGE_EVERY_S:
            self._last_purge = now_s
            async with self.engine.begin() as conn:
                purged = await purge_ended_events(conn, self.clock() - self.retention)
            if purged:
                _log.info("purged ended OpenADR events", extra={"events": purged})
        if now_s - self._last_stats >= _STATS_EVERY_S:
            self._last_stats = now_s
            await self.refresh_metrics()

    async def refresh_metrics(self) -> None:
        async with self.engine.connect() as conn:
            stats = await outbox_stats(conn)
        self.pending.set(stats.pending)
        self.failed.set(stats.failed)
        self.oldest_age_s.set(stats.oldest_pending_age_s)
