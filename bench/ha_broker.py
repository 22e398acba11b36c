"""The broker half of `vpp bench ha`: SIGKILL one of two independent brokers under load.

Two private Mosquittos (no bridge) serve one platform: an ingest worker subscribed on both, a DR
dispatcher publishing to both. Site gateways (each connection carries `sites_per_gateway` sites, so
thousands of sites need only dozens of clients) are given both broker URLs and start on the first;
they publish numbered readings (reading i of a site is stamped t0 + i s) and keep each until ingest
confirms it stored (`vpp/v1/{site}/stored`), resending the unconfirmed after any reconnect and when
they have waited `resend_after_s`. At a seeded random moment the first broker is SIGKILLed:

- the gateways move to the second broker (`vpp.mqtt.BrokerFailover`) and resend what is unconfirmed,
  including what the dead broker had PUBACKed and took with it;
- right after the kill (`signal_after_s`) a DR signal is issued for a site whose EMS was on the dead
  broker and is still moving; it reaches the EMS through the surviving broker (the scheduler
  publishes to every broker, the EMS finds it retained there);
- after `outage_s` the dead broker is started again (from its persistence file, which may hold an
  older retained signal or none); the dispatcher gives it the newest signal back.

`broker_fault_round` returns the figures `vpp bench ha` prints for this fault.
"""

from __future__ import annotations

import json
import random
import threading
import time
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg

from services.dr_scheduler.dispatch import Dispatcher
from services.dr_scheduler.metrics import SchedulerMetrics
from services.ingest.bootstrap import tune_interpreter
from services.ingest.worker import IngestConfig, IngestWorker
from vpp.domain.devices import DeviceKind
from vpp.domain.dr_events import DrSignal, SignalInterval, parse_signal, signal_payload
from vpp.embedded.broker import EmbeddedBroker
from vpp.gateway_backlog import ConfirmationBacklog
from vpp.mqtt import (
    BrokerAddress,
    BrokerFailover,
    close_client,
    dr_signal_topic,
    make_client,
    session_properties,
    stored_topic,
    telemetry_topic,
)
from vpp.postgres.readings import stored_instants
from vpp.postgres.registry import DeviceSpec, SiteRecord, register_site

__all__ = ["NumberedGateway", "broker_fault_round"]

DEVICE = "meter-1"
Key = tuple[str, int]  # site, reading number


def _reading_ts(t0: datetime, n: int) -> datetime:
    return t0 + timedelta(seconds=n)


class NumberedGateway:
    """Site gateways on one connection, given several brokers: numbered readings, QoS 1, kept until
    confirmed stored, everything unconfirmed resent after any reconnect (a failover is one)."""

    def __init__(
        self,
        name: str,
        site_ids: list[str],
        brokers: list[BrokerAddress],
        t0: datetime,
        *,
        resend_after_s: float = 5.0,
    ) -> None:
        self.site_ids = site_ids
        self.t0 = t0
        self.resend_after_s = resend_after_s
        self.backlog = ConfirmationBacklog(max_readings=10_000_000)
        self.sent_at: dict[Key, float] = {}
        self.confirmed_at: dict[Key, float] = {}
        self.connected_at: list[tuple[float, BrokerAddress]] = []
        self.resent = 0
        self._lock = threading.Lock()
        self._connects = 0
        self._resend_due = threading.Event()
        self.client = make_client(f"ha-gw-{name}", max_inflight=0, reconnect_min_s=0.1)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.failover = BrokerFailover(
            self.client, brokers, keepalive=10, clean_start=False, properties=session_properties()
        )
        self.failover.start()

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            return
        client.subscribe([(stored_topic(site), 1) for site in self.site_ids])
        with self._lock:
            self._connects += 1
            self.connected_at.append((time.monotonic(), self.failover.current))
            if self._connects > 1:
                self._resend_due.set()

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        site = message.topic.split("/")[2]
        payload = bytes(message.payload)
        self.backlog.confirm(site, payload)
        now = time.monotonic()
        with suppress(ValueError, KeyError, TypeError, AttributeError):
            for ts in json.loads(payload)["stored"].get(DEVICE, []):
                n = round((datetime.fromisoformat(ts) - self.t0).total_seconds())
                with self._lock:
                    self.confirmed_at.setdefault((site, n), now)

    def send(self, n: int) -> None:
        """Reading `n` of every site of this gateway."""
        now = time.monotonic()
        for site in self.site_ids:
            reading = {"ts": _reading_ts(self.t0, n).isoformat(), "power_kw": float(n % 50), "n": n}
            self.backlog.add(site, DEVICE, reading)
            with self._lock:
                self.sent_at[(site, n)] = now
            self.client.publish(telemetry_topic(site, DEVICE), json.dumps(reading), qos=1)

    def resend(self, *, force: bool = False) -> None:
        everything = force or self._resend_due.is_set()
        self._resend_due.clear()
        for pending in self.backlog.due(older_than_s=0.0 if everything else self.resend_after_s):
            self.client.publish(
                telemetry_topic(pending.site_id, pending.device_id), json.dumps({"readings": pending.readings}), qos=1
            )
            self.resent += 1

    def close(self) -> None:
        self.failover.stop()


@dataclass
class _SignalWatch:
    """A site's EMS side of the DR signal, on the brokers in the gateways' order."""

    site_id: str
    brokers: list[BrokerAddress]
    received: list[tuple[float, bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.subscribed = threading.Event()
        self.client = make_client(f"ha-ems-{self.site_id}", reconnect_min_s=0.1)
        self.client.on_connect = lambda c, *_a: c.subscribe(dr_signal_topic(self.site_id), qos=1)
        self.client.on_subscribe = lambda *_a: self.subscribed.set()
        self.client.on_message = lambda _c, _u, m: self.received.append((time.monotonic(), bytes(m.payload)))
        self.failover = BrokerFailover(self.client, self.brokers, keepalive=10)
        self.failover.start()

    def got(self, payload: bytes) -> float | None:
        return next((at for at, body in list(self.received) if body == payload), None)

    def close(self) -> None:
        self.failover.stop()


def retained_signal(broker: BrokerAddress, site_id: str, timeout_s: float = 5.0) -> bytes | None:
    """What a broker holds retained on a site's signal topic (a fresh client, that broker only)."""
    got: list[bytes] = []
    arrived = threading.Event()
    client = make_client(f"ha-probe-{site_id}-{time.monotonic_ns()}")
    client.on_connect = lambda c, *_a: c.subscribe(dr_signal_topic(site_id), qos=1)

    def on_message(_c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        got.append(bytes(message.payload))
        arrived.set()

    client.on_message = on_message
    try:
        client.connect(broker.host, broker.port, keepalive=10)
        client.loop_start()
        arrived.wait(timeout_s)
    finally:
        close_client(client)
    return got[-1] if got else None


def _signal(site_id: str, at: datetime, limit_kw: float) -> bytes:
    start = (at + timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    return signal_payload(
        DrSignal(
            event_id=f"ha-{site_id}",
            revision=int(limit_kw),
            kind="peak_cut",
            status="active",
            issued_at=at,
            intervals=(SignalInterval(start, start + timedelta(hours=1), import_limit_kw=limit_kw),),
        )
    )


def _register(db_url: str, site_ids: list[str]) -> None:
    with psycopg.connect(db_url) as conn:
        for site in site_ids:
            register_site(
                conn,
                SiteRecord(site, f"HA site {site}", 35.5, 139.6, regions=()),
                [DeviceSpec(DEVICE, DeviceKind.METER)],
            )
        conn.commit()


def _storage(db_url: str, site_ids: list[str], t0: datetime) -> tuple[set[Key], int]:
    """The (site, reading number) pairs stored, and how many rows there are for them in all."""
    with psycopg.connect(db_url) as conn:
        rows = stored_instants(conn, site_ids, t0)
    return {(site, round((ts - t0).total_seconds())) for site, ts in rows}, len(rows)


def broker_fault_round(
    db_url: str,
    workdir: Path,
    *,
    seed: int,
    sites: int = 20,
    sites_per_gateway: int = 2,
    readings_per_site: int = 300,
    interval_s: float = 0.01,
    outage_s: float = 3.0,
    signal_after_s: float = 0.0,
    drain_timeout_s: float = 90.0,
) -> dict[str, Any]:
    """One round: publish, SIGKILL the first broker at a seeded moment, issue a DR signal during the
    fault, restart the broker, drain. `db_url` must be a migrated, empty database of its own.

    Returns confirmed, stored, lost (published readings not stored once the gateways drained),
    duplicates (stored rows beyond one per reading), ingest_recovery_s (kill -> first reading
    published after it confirmed), signal_latency_s (DR signal issued during the fault -> received
    by a site that was on the dead broker), failover_s (kill -> last gateway connected to the
    survivor), restarted_broker_has_signal, published, resent and the seed.
    """
    rng = random.Random(seed)
    site_ids = [f"ha-{i:04d}" for i in range(sites)]
    _register(db_url, site_ids)
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    servers = [EmbeddedBroker(workdir / f"broker-{i + 1}") for i in range(2)]
    for server in servers:
        server.start()
    brokers = [BrokerAddress("127.0.0.1", s.port) for s in servers]
    worker = IngestWorker(
        IngestConfig(
            db_url, brokers[0], more_brokers=(brokers[1],), client_id="ha-ingest", batch_max_wait_s=0.05,
            rollup_interval_s=3600.0,
        )
    )  # fmt: skip
    tune_interpreter(worker.config)  # as `python -m services.ingest` does
    dispatcher = Dispatcher(brokers, SchedulerMetrics(), client_id="ha-scheduler", resync_settle_s=0.5)
    gateways: list[NumberedGateway] = []
    watch: _SignalWatch | None = None
    thread = worker.start_in_thread()
    try:
        if not worker.all_subscribed(30):
            raise RuntimeError("ingest did not subscribe on both brokers")
        dispatcher.start()
        if not dispatcher.all_connected(30):
            raise RuntimeError("the dispatcher did not connect to both brokers")
        watch = _SignalWatch(site_ids[0], brokers)
        if not watch.subscribed.wait(30):
            raise RuntimeError("the site's EMS did not subscribe")
        # A signal from before the fault, that the restarted broker may come back with.
        before = _signal(site_ids[0], datetime.now(UTC), 30.0)
        dispatcher.publish(site_ids[0], before, "active")
        for g in range(0, sites, sites_per_gateway):
            gateways.append(NumberedGateway(f"{g:04d}", site_ids[g : g + sites_per_gateway], brokers, t0))
        deadline = time.monotonic() + 30
        while not all(gw.connected_at for gw in gateways):
            if time.monotonic() > deadline:
                raise RuntimeError("the gateways did not connect")
            time.sleep(0.05)

        kill_at_n = rng.randint(readings_per_site // 5, readings_per_site * 4 // 5)
        killed_at = restart_at = signal_at = 0.0
        during: bytes | None = None
        for n in range(readings_per_site):
            for gw in gateways:
                gw.resend()
                gw.send(n)
            now = time.monotonic()
            if n == kill_at_n:
                servers[0].stop(hard=True)  # SIGKILL: what it had not saved is gone
                killed_at = time.monotonic()
                restart_at = killed_at + outage_s
            if killed_at and during is None and time.monotonic() >= killed_at + signal_after_s:
                during = _signal(site_ids[0], datetime.now(UTC), 20.0)
                signal_at = time.monotonic()
                dispatcher.publish(site_ids[0], during, "active")
            if restart_at and now >= restart_at:
                servers[0].start()
                restart_at = 0.0
            time.sleep(interval_s)
        if during is None:  # the stream ended first: issue it now, still during the fault
            during = _signal(site_ids[0], datetime.now(UTC), 20.0)
            signal_at = time.monotonic()
            dispatcher.publish(site_ids[0], during, "active")
        if restart_at:
            time.sleep(max(restart_at - time.monotonic(), 0.0))
            servers[0].start()

        drain_deadline = time.monotonic() + drain_timeout_s
        while any(len(gw.backlog) for gw in gateways) and time.monotonic() < drain_deadline:
            for gw in gateways:
                gw.resend()
            time.sleep(0.2)
        signal_deadline = time.monotonic() + 30
        while watch.got(during) is None and time.monotonic() < signal_deadline:
            time.sleep(0.05)
        received_at = watch.got(during)
        time.sleep(dispatcher.resync_settle_s + 1.0)  # the dispatcher's resync of the restarted broker
        restored = retained_signal(brokers[0], site_ids[0])
    finally:
        for gw in gateways:
            gw.close()
        if watch is not None:
            watch.close()
        dispatcher.stop()
        worker.stop()
        thread.join(30)
        for server in servers:
            server.stop()

    published = {key for gw in gateways for key in gw.sent_at}
    confirmed = {key for gw in gateways for key in gw.confirmed_at}
    stored, rows = _storage(db_url, site_ids, t0)
    after_kill = [at for gw in gateways for key, at in gw.confirmed_at.items() if gw.sent_at[key] > killed_at]
    switched = [at for gw in gateways for at, broker in gw.connected_at if at > killed_at and broker == brokers[1]]
    return {
        "seed": seed,
        "published": len(published),
        "confirmed": len(confirmed),
        "stored": len(stored & published),
        "lost": len(published - stored),
        "lost_confirmed": len(confirmed - stored),
        "duplicates": rows - len(stored),
        "resent": sum(gw.resent for gw in gateways),
        "failover_s": round(max(switched) - killed_at, 3) if len(switched) >= len(gateways) else None,
        "ingest_recovery_s": round(min(after_kill) - killed_at, 3) if after_kill else None,
        "signal_latency_s": round(received_at - signal_at, 3) if received_at is not None else None,
        "restarted_broker_has_signal": restored is not None and parse_signal(restored) == parse_signal(during),
    }


def run_broker_fault(seed: int | None = None, **options: Any) -> dict[str, Any]:
    """`broker_fault_round` on a private PostgreSQL of its own (for `vpp bench ha`, or alone)."""
    import tempfile

    from vpp.embedded.postgres import EmbeddedPostgres
    from vpp.postgres.scratch import prepare_template, scratch_database

    seed = random.SystemRandom().randrange(1_000_000) if seed is None else seed
    with tempfile.TemporaryDirectory(prefix="vpp-bench-ha-broker-") as tmp:
        workdir = Path(tmp)
        workdir.chmod(0o755)  # Mosquitto, run as its own user when we are root, writes its data here
        pg = EmbeddedPostgres(workdir / "pg").start()
        try:
            prepare_template(pg.url)
            with scratch_database(pg.url) as db_url:
                return broker_fault_round(db_url, workdir, seed=seed, **options)
        finally:
            pg.destroy()


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="SIGKILL one of two brokers under load; print the figures")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--sites", type=int, default=200)
    parser.add_argument("--sites-per-gateway", type=int, default=10)
    parser.add_argument("--readings-per-site", type=int, default=300)
    args = parser.parse_args()
    print(
        json.dumps(
            run_broker_fault(
                args.seed,
                sites=args.sites,
                sites_per_gateway=args.sites_per_gateway,
                readings_per_site=args.readings_per_site,
            )
        )
    )
