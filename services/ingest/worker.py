"""The ingest loop: collect a batch, validate it, commit it, then acknowledge it. Nothing else acks.

Failure handling, which is the point of this file:
- database down: the batch is retried with back-off on a fresh connection; its messages stay
  unacknowledged at the broker (bounded by the session's receive maximum) until the write commits;
- process killed: unacknowledged messages are redelivered to the persistent session on restart, and
  anything committed but not yet acked comes back as a duplicate that the insert ignores;
- clean stop: the queue is drained, the last batch committed and acknowledged, then we disconnect;
- several brokers (`IngestConfig.more_brokers`, README "Broker redundancy"): one persistent-session
  subscriber per broker feeds the same batches; each message is acknowledged on the broker it came
  from, and each site's confirmation goes to the brokers its batch's messages came from, which is
  where its gateway is connected.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg

from vpp.domain.devices import DeviceRef
from vpp.domain.telemetry import Limits, RejectReason
from vpp.mqtt import BrokerAddress
from vpp.postgres.readings import EncodedRows, encode_rows

from .batcher import Batch, Inbound, build_batch
from .database import (
    BatchWriter,
    PostgresRegistry,
    PostgresRollup,
    RegistrySource,
    RollupRunner,
    open_postgres_writer,
)
from .metrics import IngestMetrics
from .subscriber import MessageSubscriber, Subscriber, confirmation_messages

__all__ = ["IngestConfig", "IngestWorker"]

log = logging.getLogger("vpp.ingest")


@dataclass(frozen=True)
class IngestConfig:
    database_url: str
    broker: BrokerAddress
    # Further independent brokers to subscribe on (the same client id, partition and filters on each).
    more_brokers: tuple[BrokerAddress, ...] = ()
    client_id: str = "ingest-1"
    # Empty: a plain subscription in a persistent session, which Mosquitto restores on a restart;
    # several workers then split sites by `partition` of `partitions` (see subscriber.py).
    share_group: str = ""
    partition: int = 0
    partitions: int = 1
    # Publish what each batch stored on the sites' `stored` topics (the end-to-end confirmation).
    confirm: bool = True
    # Confirm only what a standby has flushed too (HA; see vpp.postgres.replication), waiting this long.
    confirm_replicated: bool = False
    confirm_replicated_wait_s: float = 2.0
    username: str | None = None
    password: str | None = None
    batch_max_messages: int = 5000
    batch_max_bytes: int = 1024 * 1024  # ~10k batched readings: small enough to overlap validation with commits
    batch_max_wait_s: float = 0.2
    # A batch that has waited this long goes as soon as the writer is idle (see _collect).
    batch_min_wait_s: float = 0.02
    max_payload_bytes: int = 256 * 1024
    limits: Limits = field(default_factory=Limits)
    rollup_interval_s: float = 2.0
    # How long a dirty slot settles before it is recomputed (see vpp.postgres.rollup).
    rollup_delay_s: float = 20.0
    max_gap_s: int = 900
    receive_maximum: int = 20_000
    registry_refresh_s: float = 60.0
    # Before a batch dead-letters an unknown site or device, ingest asks the database whether it was
    # registered moments ago (a new site's first `online` must not be lost). At most one such
    # question per interval: a flood of made-up site ids costs the database a few indexed queries a
    # second, and a batch waits at most this long for its turn.
    registry_probe_interval_s: float = 0.1
    stop_flush_timeout_s: float = 30.0
    # CPython makes a running thread give up the GIL to a waiting one only after this long (default
    # 5 ms). The writer waits on the database several times per batch, and each time it may then
    # queue behind validation for the whole interval: at 5 ms, streaming the COPY data alone took
    # 0.43 s instead of 0.16 s per 250,000 batched readings, on the path every commit waits for.
    gil_switch_interval_s: float = 0.0005
    # Validation allocates a few container objects per reading (parsed JSON, rows). With CPython's
    # default young-generation threshold of 700 the collector ran every ~250 readings and kept
    # re-walking the batches in flight: a quarter to a third of the validation thread's CPU
    # (measured). At 10,000 most of that goes; memory barely changes, as reference counting frees
    # these objects anyway.
    gc_young_threshold: int = 10_000
    # The first pause before a failed batch write is retried (doubling up to 5 s).
    retry_delay_s: float = 0.25
    # How often an idle worker looks at `stopping`: the longest a stop waits for an empty inbox.
    idle_poll_s: float = 0.25

    @property
    def brokers(self) -> list[BrokerAddress]:
        return [self.broker, *(b for b in self.more_brokers if b != self.broker)]


@dataclass(frozen=True)
class _Validated:
    messages: list[Inbound]
    batch: Batch
    rows: EncodedRows  # the batch's rows, already in COPY format: the writer thread only streams them
    started: float
    confirmations: list[tuple[str, bytes]]  # encoded here too, published by the writer after the commit
    sources: dict[str, set[int]]  # site id -> the brokers its messages in this batch came from


class IngestWorker:
    def __init__(
        self,
        config: IngestConfig,
        metrics: IngestMetrics | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        *,
        open_writer: Callable[[], BatchWriter] | None = None,
        registry: RegistrySource | None = None,
        rollup: RollupRunner | None = None,
        make_subscriber: Callable[..., MessageSubscriber] = Subscriber,
    ) -> None:
        """The database and broker adapters default to PostgreSQL and paho; a test passes fakes (fakes.py)."""
        self.config = config
        self.metrics = metrics or IngestMetrics()
        self.clock = clock
        # SimpleQueue: put and get are C calls without the Condition hand-off of queue.Queue, which
        # cost several microseconds per message on the network thread.
        self.inbox: queue.SimpleQueue[Inbound] = queue.SimpleQueue()
        self.stopping = threading.Event()
        self.stopped = threading.Event()
        self._open_writer = open_writer or (
            lambda: open_postgres_writer(config.database_url, config.client_id, config.max_gap_s)
        )
        self._writer: BatchWriter | None = None
        self.registry = registry or PostgresRegistry(config.database_url)
        self.rollup = rollup or PostgresRollup(
            config.database_url,
            max_gap_s=config.max_gap_s,
            delay_s=config.rollup_delay_s,
            rated_power_factor=config.limits.rated_power_factor,
            max_power_kw=config.limits.max_abs_power_kw,
        )
        self._validated: queue.Queue[_Validated | None] = queue.Queue(maxsize=2)
        self._writer_idle = threading.Event()  # set while the writer waits for a batch
        self._devices: dict[tuple[str, str], DeviceRef] = {}
        self._site_pks: dict[str, int] = {}
        self._registry_lock = threading.Lock()
        self._registry_fingerprint = ""
        self._registry_verified_at = 0.0  # last successful fingerprint check (reload or not)
        self._registry_probed_at = -1e9
        # One subscriber per broker, all feeding one inbox: the batches (and the COPY) span every broker,
        # and a worker keeps its partition's sites whichever broker their gateways are connected to now.
        self.subscribers = [
            make_subscriber(
                broker,
                client_id=config.client_id,
                share_group=config.share_group,
                username=config.username,
                password=config.password,
                receive_maximum=config.receive_maximum,
                inbox=self.inbox,
                on_received=self.metrics.received.inc,
                on_connection_change=self._connection_changed,
                clock=clock,
                partition=config.partition,
                partitions=config.partitions,
                source=index,
            )
            for index, broker in enumerate(config.brokers)
        ]
        self.subscriber = self.subscribers[0]

    def _connection_changed(self, _up: bool) -> None:
        # With several brokers the gauge counts the connected ones: 0 still means "receives nothing".
        self.metrics.connected.set(sum(1 for s in getattr(self, "subscribers", ()) if s.connected))

    def all_subscribed(self, timeout_s: float) -> bool:
        """Wait until every broker has granted the subscriptions (a broker that is down never does)."""
        deadline = time.monotonic() + timeout_s
        return all(s.subscribed.wait(max(deadline - time.monotonic(), 0.0)) for s in self.subscribers)

    # -- lifecycle -------------------------------------------------------------------------
    def run(self) -> None:
        """Blocking: consume until `stop()` is called, then flush and disconnect.

        Two stages overlap: this thread collects, validates and COPY-encodes batch k+1 while the
        writer thread commits batch k (PostgreSQL works while Python validates). The writer does as
        little Python as possible, because every GIL hand-off it waits for delays the commit that
        everything else waits for. The hand-off queue holds at most two batches, so a slow database
        slows consumption instead of growing memory; acks leave in commit order from the writer thread.
        """
        self._ensure_writer_with_retry()
        writer_thread = threading.Thread(target=self._write_loop, name=f"{self.config.client_id}-writer", daemon=True)
        writer_thread.start()
        # The rollup runs beside the write path, never in it: a slow rollup must not delay commits and acks.
        housekeeping_stop = threading.Event()
        housekeeping_thread = threading.Thread(
            target=self._housekeeping_loop,
            args=(housekeeping_stop,),
            name=f"{self.config.client_id}-housekeeping",
            daemon=True,
        )
        housekeeping_thread.start()
        for subscriber in self.subscribers:
            subscriber.start()
        try:
            while not self.stopping.is_set():
                messages = self._collect()
                if messages:
                    self._hand_off(self._validate(messages))
            self._drain_on_stop()
        finally:
            self.stopping.set()  # also when the loop ended by an exception: hand-offs then give up in time
            self._hand_off(None)
            # The writer flushes for at most stop_flush_timeout_s once stopping; a little more for its last commit.
            grace_s = self.config.stop_flush_timeout_s * 1.2 + 1
            writer_thread.join(grace_s)
            housekeeping_stop.set()
            housekeeping_thread.join(grace_s)
            for subscriber in self.subscribers:
                subscriber.stop()
            if self._writer is not None and not self._writer.closed:
                self._writer.close()
            self.rollup.close()
            self.registry.close()
            self.stopped.set()
            log.info("ingest stopped", extra={"client_id": self.config.client_id})

    def start_in_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name=f"ingest-{self.config.client_id}", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self.stopping.set()

    # -- batching --------------------------------------------------------------------------
    def _collect(self) -> list[Inbound]:
        """Take a batch: up to the count and byte caps, or what arrived by its deadline.

        Waiting for more messages only pays while the database is busy with the previous batch;
        once the batch is `batch_min_wait_s` old and the writer sits idle, it goes. This removes the
        dead time at the start and end of a burst (the writer idle while a batch fills) and lowers
        latency at low rates; under a backlog batches still fill to the caps at once.
        """
        try:
            first = self.inbox.get(timeout=self.config.idle_poll_s)
        except queue.Empty:
            return []
        messages = [first]
        size = len(first.payload)
        began = time.monotonic()
        deadline = began + self.config.batch_max_wait_s
        early = began + self.config.batch_min_wait_s
        while len(messages) < self.config.batch_max_messages and size < self.config.batch_max_bytes:
            try:
                message = self.inbox.get_nowait()
            except queue.Empty:
                now = time.monotonic()
                if now >= deadline or (now >= early and self._writer_waiting()):
                    break
                try:  # short waits, so that the writer turning idle is noticed within 5 ms
                    message = self.inbox.get(timeout=min(deadline - now, 0.005))
                except queue.Empty:
                    continue
            messages.append(message)
            size += len(message.payload)
        return messages

    def _writer_waiting(self) -> bool:
        return self._writer_idle.is_set() and self._validated.empty()

    def _hand_off(self, item: _Validated | None) -> bool:
        """Queue a batch for the writer; once stopping, give up after `stop_flush_timeout_s`.

        A writer that cannot take it (its database gone, a commit that does not return) must not keep
        a stopping worker alive: what is not handed off stays unacknowledged, and the broker delivers it
        again to the next session.
        """
        give_up_at: float | None = None
        while True:
            try:
                self._validated.put(item, timeout=0.25)
                return True
            except queue.Full:
                if not self.stopping.is_set():
                    continue
                now = time.monotonic()
                give_up_at = give_up_at if give_up_at is not None else now + self.config.stop_flush_timeout_s
                if now >= give_up_at:
                    log.warning("writer did not take a batch while stopping; leaving it unacknowledged")
                    return False

    def _drain_on_stop(self) -> None:
        while not self.inbox.empty():
            messages: list[Inbound] = []
            while len(messages) < self.config.batch_max_messages:
                try:
                    messages.append(self.inbox.get_nowait())
                except queue.Empty:
                    break
            if messages and not self._hand_off(self._validate(messages)):
                return

    def _validate(self, messages: list[Inbound]) -> _Validated:
        started = time.monotonic()
        batch = self._build(messages)
        if batch.dead_letters and self._registered_meanwhile(batch):
            # A site or device of this batch was registered after our copy of the registry was
            # loaded: validate the batch again against the reloaded one (rare: once per registration).
            batch = self._build(messages)
        sources: dict[str, set[int]] = {}
        if len(self.subscribers) > 1 and batch.stored:
            for message in messages:
                parts = message.topic.split("/", 3)
                if len(parts) > 2:
                    sources.setdefault(parts[2], set()).add(message.source)
        return _Validated(
            messages, batch, encode_rows(batch.rows), started, confirmation_messages(batch.stored), sources
        )

    def _build(self, messages: list[Inbound]) -> Batch:
        return build_batch(
            messages,
            lookup=self._lookup,
            site_pks=self._site_pks,
            limits=self.config.limits,
            max_payload_bytes=self.config.max_payload_bytes,
            client_id=self.config.client_id,
            confirm=self.config.confirm,
        )

    def _registered_meanwhile(self, batch: Batch) -> bool:
        """True (and the registry reloaded) if a site or device this batch did not know now exists."""
        sites: set[str] = set()
        devices: set[tuple[str, str]] = set()
        for dead in batch.dead_letters:
            parts = dead.topic.split("/")
            if dead.reason == RejectReason.UNKNOWN_SITE and len(parts) >= 3:
                sites.add(parts[2])
            elif dead.reason == RejectReason.UNKNOWN_DEVICE and len(parts) >= 4:
                devices.add((parts[2], parts[3]))
        if not sites and not devices:
            return False
        wait_s = self._registry_probed_at + self.config.registry_probe_interval_s - time.monotonic()
        if wait_s > 0:
            time.sleep(wait_s)
        self._registry_probed_at = time.monotonic()
        with self._registry_lock:
            delay_s = self.config.retry_delay_s
            while True:
                try:
                    found = self.registry.registered_any(sites, devices)
                    break
                except psycopg.OperationalError as error:
                    # Until the database answers, nobody can tell whether these sites were just registered.
                    # Dead letters now would be written once it is back and acknowledged: a QoS-1-only gateway
                    # would lose a new site's first readings. Wait for it, as the writer does.
                    log.warning("registry probe failed", extra={"error": str(error).strip()[:200]})
                    self.registry.close()
                    if self.stopping.wait(delay_s):
                        return False  # stopping: the write cannot commit either, nothing is acknowledged
                    delay_s = min(delay_s * 2, 5.0)
        if found:
            self._reload_registry_if_changed()
        return found

    def _write_loop(self) -> None:
        give_up_at: float | None = None
        while True:
            self._writer_idle.set()
            item = self._validated.get()
            self._writer_idle.clear()
            if item is None:
                break
            if self.stopping.is_set() and give_up_at is None:
                give_up_at = time.monotonic() + self.config.stop_flush_timeout_s
            if not self._write_with_retry(item, give_up_at):
                continue  # stopping with the database down: leave unacked; the broker redelivers
            committed_at = self.clock()
            if item.confirmations and self._durable_enough():  # tell the sites, then let the broker forget
                self._confirm(item)
            self._ack(item.messages)
            self._observe(item.batch, item.started, committed_at)
            self.metrics.queue_depth.set(self.inbox.qsize())

    def _durable_enough(self) -> bool:
        """Whether the batch just committed may be confirmed to its sites: always, or (HA) once a standby
        has flushed it. Not yet: the broker is still acknowledged (the primary has it), the site is not, so
        its gateway resends and the resend is confirmed once it is on two servers."""
        if not self.config.confirm_replicated:
            return True
        try:
            replicated = self._ensure_writer().wait_until_replicated(self.config.confirm_replicated_wait_s)
        except psycopg.Error as error:
            log.warning("replication check failed; not confirming", extra={"error": str(error).strip()[:200]})
            replicated = False
        if not replicated:
            self.metrics.unreplicated_batches.inc()
        return replicated

    def _confirm(self, item: _Validated) -> None:
        if len(self.subscribers) == 1:
            self.subscriber.confirm(item.confirmations)
            return
        # To the broker(s) the site's readings came through: its gateway is connected there (after a
        # failover, the resends come through the new broker and are confirmed there).
        for subscriber in self.subscribers:
            mine = [
                (topic, payload)
                for topic, payload in item.confirmations
                if subscriber.source in item.sources.get(topic.split("/", 3)[2], ())
            ]
            if mine:
                subscriber.confirm(mine)

    def _ack(self, messages: list[Inbound]) -> None:
        if len(self.subscribers) == 1:
            self.subscriber.ack(messages)
            return
        for subscriber in self.subscribers:
            subscriber.ack([m for m in messages if m.source == subscriber.source])

    def _observe(self, batch: Batch, started: float, committed_at: datetime) -> None:
        m = self.metrics
        m.batch_seconds.observe(time.monotonic() - started)
        m.accepted.inc(batch.accepted_messages)
        for reason, count in batch.rejections_by_reason().items():
            m.rejected.labels(reason).inc(count)
        for newest in batch.newest_ts:
            m.lag_seconds.observe(max((committed_at - newest).total_seconds(), 0.0))

    # -- database --------------------------------------------------------------------------
    def _write_with_retry(self, item: _Validated, give_up_at: float | None) -> bool:
        delay_s = self.config.retry_delay_s
        while True:
            try:
                writer = self._ensure_writer()
                result = writer.write(item.rows, item.batch.dead_letters, item.batch.statuses)
                self.metrics.written.inc(result.inserted)
                self.metrics.duplicates.inc(result.duplicates)
                return True
            except psycopg.Error as error:
                # Connection loss is the usual case. Anything else (a constraint a concurrent registry
                # change broke, say) must not end the writer thread either: ingest would stop with
                # nothing acked and nothing said. Retry, with back-off, on a fresh connection.
                self.metrics.db_errors.inc()
                transient = isinstance(error, psycopg.OperationalError)
                log.log(
                    logging.WARNING if transient else logging.ERROR,
                    "batch write failed; retrying",
                    extra={"error": str(error).strip()[:200], "error_type": type(error).__name__},
                )
                self._drop_writer()
            if give_up_at is not None and time.monotonic() > give_up_at:
                return False
            if self.stopping.is_set() and give_up_at is None:
                give_up_at = time.monotonic() + self.config.stop_flush_timeout_s
            time.sleep(delay_s)
            delay_s = min(delay_s * 2, 5.0)

    def _ensure_writer(self) -> BatchWriter:
        if self._writer is None or self._writer.closed:
            self._writer = self._open_writer()
        return self._writer

    def _ensure_writer_with_retry(self) -> None:
        delay_s = 0.5
        while not self.stopping.is_set():
            try:
                self._ensure_writer()
                self._reload_registry_if_changed()
                return
            except psycopg.OperationalError as error:
                log.warning("database unavailable at start", extra={"error": str(error).strip()[:200]})
                time.sleep(delay_s)
                delay_s = min(delay_s * 2, 5.0)

    def _drop_writer(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(psycopg.Error):
                self._writer.close()
        self._writer = None

    def _reload_registry_if_changed(self) -> None:
        """Reload devices and sites when the database's fingerprint of them changed.

        Loading 80,000 devices holds the interpreter for about a second, and validation waits behind
        it: reloading every minute unconditionally was a lag spike every minute in the soak test. The
        fingerprint is computed by PostgreSQL, so an unchanged registry costs no Python work.
        """
        with self._registry_lock:  # the validation and housekeeping threads share one connection
            try:
                fingerprint = self.registry.fingerprint()
                if fingerprint != self._registry_fingerprint:
                    # Sites first: a device found in the new registry must find its site there too.
                    self._site_pks = self.registry.site_pks()
                    self._devices = self.registry.devices()
                    self._registry_fingerprint = fingerprint
            except psycopg.OperationalError as error:
                # Keep the registry we have; the batch write notices the outage and retries.
                log.warning("registry refresh failed", extra={"error": str(error).strip()[:200]})
                self.registry.close()
                return
            self._registry_verified_at = time.monotonic()

    def _lookup(self, site_id: str, device_id: str) -> DeviceRef | None:
        # A miss is settled per batch, by `_registered_meanwhile`, not here per message.
        return self._devices.get((site_id, device_id))

    def _housekeeping_loop(self, stop: threading.Event) -> None:
        """Beside the write path, never in it: the 30-minute rollup, and noticing registry changes."""
        while not stop.wait(self.config.rollup_interval_s):
            self._maybe_rollup()
            if time.monotonic() - self._registry_verified_at > self.config.registry_refresh_s:
                self._reload_registry_if_changed()
        self._maybe_rollup()

    def _maybe_rollup(self) -> None:
        """Roll up dirty slots in claims of 5,000 until the backlog is gone (its own thread, so it may take time)."""
        try:
            while True:
                ran, device_slots = self.rollup.run()
                self.metrics.rollup_slots.inc(device_slots)
                if not ran or device_slots < 5_000:
                    break
        except psycopg.Error as error:
            log.warning("rollup failed; will retry", extra={"error": str(error).strip()[:200]})
            self.rollup.close()
