"""The soak test's moving parts: private servers, ingest worker processes, the fleet's registration,
the readiness check, fault injection, and a look at the database when ingest stalls."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from bench.soak_metrics import LAG_BOUNDS_S, Fault, WorkerCounters, cumulative, merge, scrape
from bench.soak_publisher import READINGS_PER_MESSAGE, PublisherCounters, soak_fleet
from vpp.embedded.broker import EmbeddedBroker
from vpp.embedded.postgres import EmbeddedPostgres, free_port
from vpp.mqtt import make_client, session_properties, telemetry_topic
from vpp.postgres.scratch import prepare_template

__all__ = [
    "PROBE_SITE",
    "FaultPlan",
    "Harness",
    "activity_snapshot",
    "inject_faults",
    "register_fleet",
    "scalar",
    "servers",
    "wait_ingest_ready",
    "wait_until",
]

PROBE_SITE = "soak-probe"  # registered beside the fleet; its readings prove ingest is subscribed, and are not counted


class Harness:
    """The servers and processes of one soak run, and the scraping of the workers' metrics."""

    def __init__(self, workdir: Path, workers: int, ingest_env: Mapping[str, str] | None = None) -> None:
        self.workdir = workdir
        self.ingest_env = dict(ingest_env or {})
        self.pg = EmbeddedPostgres(workdir / "pg")
        self.broker = EmbeddedBroker(workdir / "broker")
        self.db_url = ""
        self.ports = [free_port() for _ in range(workers)]
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * workers
        self.counters = [WorkerCounters() for _ in range(workers)]
        self.lock = threading.Lock()
        self.t0 = time.time()
        self.publisher: PublisherCounters | None = None

    def now_s(self) -> float:
        return time.time() - self.t0

    def published_readings(self) -> int:
        return int(self.publisher.acked.value) * READINGS_PER_MESSAGE if self.publisher else 0

    def start_worker(self, index: int) -> None:
        env = {
            **os.environ,
            "VPP_DATABASE_URL": self.db_url,
            "VPP_MQTT_URL": f"mqtt://127.0.0.1:{self.broker.port}",
            "VPP_INGEST_CLIENT_ID": f"soak-ingest-{index + 1}",
            # Each worker keeps its partition of the sites (plain subscriptions, as deployed).
            "VPP_INGEST_PARTITION": str(index),
            "VPP_INGEST_PARTITIONS": str(len(self.procs)),
            "VPP_INGEST_METRICS_PORT": str(self.ports[index]),
            "VPP_DATA_DIR": str(self.workdir / "ingest-data"),
            "VPP_LOG_LEVEL": "WARNING",
            # Private, anonymous servers: the development placeholders stand in for the secrets.
            "VPP_ENVIRONMENT": "development",
            **self.ingest_env,
        }
        with open(self.workdir / f"ingest-{index + 1}.log", "ab") as log:
            self.procs[index] = subprocess.Popen(
                [sys.executable, "-m", "services.ingest"], cwd=self.workdir, env=env, stdout=log, stderr=log
            )
        with self.lock:
            self.counters[index].restarted()

    def kill_worker(self, index: int) -> None:
        proc = self.procs[index]
        self.sample()  # the last counts before the kill; later increments die with the process
        if proc is not None:
            proc.kill()
            proc.wait(10)

    def stop_workers(self) -> None:
        for proc in self.procs:
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            if proc is not None:
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)

    def publish_delays(self) -> tuple[float, ...]:
        """The publisher's measured -> PUBACK histogram so far, cumulative over LAG_BOUNDS_S."""
        if self.publisher is None:
            return cumulative([0.0] * (len(LAG_BOUNDS_S) + 1))
        return cumulative([float(c) for c in self.publisher.delay_counts[:]])

    def sample(self) -> tuple[tuple[float, ...], float, int]:
        """Scrape every worker: (lag buckets so far, readings written so far, workers answering)."""
        samples = [scrape(port) for port in self.ports]
        with self.lock:
            for counters, sample in zip(self.counters, samples, strict=True):
                if sample is not None:
                    counters.advance(sample)
            up = sum(1 for s in samples if s is not None and s.connected)
            return merge([c.lag_buckets for c in self.counters]), sum(c.written for c in self.counters), up


def register_fleet(db_url: str, sites: int, seed: int) -> int:
    """Every site and device in two COPYs (20,000 INSERT round trips would take minutes); returns the probe's pk."""
    specs = soak_fleet(sites, seed)
    with psycopg.connect(db_url) as conn, conn.cursor() as cur:
        with cur.copy(
            "COPY sites (site_id, name, latitude, longitude, pv_kw, battery_kwh, battery_kw, demand_target_kw)"
            " FROM STDIN"
        ) as copy:
            for s in specs:
                site = (s.site_id, s.site_id, s.latitude, s.longitude, s.pv_kw, s.battery_kwh, s.battery_power_kw)
                copy.write_row((*site, s.demand_target_kw))
            copy.write_row((PROBE_SITE, PROBE_SITE, None, None, 0.0, 0.0, 0.0, None))
        cur.execute("CREATE TEMP TABLE soak_devices (site_id text, device_id text, kind text, rated_kw float8)")
        with cur.copy("COPY soak_devices FROM STDIN") as copy:
            for s in specs:
                copy.write_row((s.site_id, "meter-1", "meter", None))
                copy.write_row((s.site_id, "pv-1", "pv", s.pv_kw))
                copy.write_row((s.site_id, "battery-1", "battery", s.battery_power_kw))
                copy.write_row((s.site_id, "ev-1", "ev_charger", s.ev_count * s.ev_charger_kw))
            copy.write_row((PROBE_SITE, "meter-1", "meter", None))
        cur.execute(
            """INSERT INTO devices (site_pk, device_id, kind, rated_power_kw)
               SELECT s.id, d.device_id, d.kind, d.rated_kw FROM soak_devices d JOIN sites s USING (site_id)"""
        )
        conn.commit()
        # A fleet registered long ago has planner statistics; a bulk load has none until autovacuum
        # gets to it, and the rollup's joins would be planned for empty tables.
        cur.execute("ANALYZE sites")
        cur.execute("ANALYZE devices")
        probe = cur.execute(
            "SELECT d.id FROM devices d JOIN sites s ON s.id = d.site_pk WHERE s.site_id = %s", (PROBE_SITE,)
        ).fetchone()
        conn.commit()
    assert probe is not None
    return int(probe[0])


def wait_until(probe: Callable[[], bool], timeout_s: float, what: str, every_s: float = 0.2) -> None:
    deadline = time.monotonic() + timeout_s
    while not probe():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout_s:.0f} s")
        time.sleep(every_s)


def wait_ingest_ready(h: Harness, probe_pk: int) -> None:
    """Both workers connected, the subscriptions routing (PUBACK says so) and a probe reading stored."""
    wait_until(lambda: h.sample()[2] == len(h.procs), 90, "ingest workers did not connect")
    routed = threading.Event()
    client = make_client("soak-probe")
    # "No matching subscribers" (16) is a success code in MQTT v5: only 0 means the message went somewhere.
    client.on_publish = lambda _c, _u, _m, reason, _p: routed.set() if reason.value == 0 else None
    client.connect("127.0.0.1", h.broker.port, clean_start=True, properties=session_properties())
    client.loop_start()
    try:

        def probe_routed() -> bool:
            reading = {"ts": datetime.now(UTC).isoformat(), "power_kw": 1.0}
            client.publish(telemetry_topic(PROBE_SITE, "meter-1"), json.dumps(reading), qos=1).wait_for_publish(5)
            return routed.is_set()

        wait_until(probe_routed, 30, "the broker routed no probe to ingest", every_s=0.3)
    finally:
        client.disconnect()
        client.loop_stop()
    with psycopg.connect(h.db_url, autocommit=True) as conn:
        wait_until(
            lambda: scalar(conn, "SELECT count(*) FROM readings WHERE device_pk = %s", probe_pk) > 0,
            60,
            "no probe reading was stored",
        )


def scalar(conn: psycopg.Connection, sql: str, *params: object) -> int:
    row = conn.execute(sql, params).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


@dataclass(frozen=True)
class FaultPlan:
    at_s: tuple[float, float, float]
    worker_down_s: float
    postgres_down_s: float


def inject_faults(h: Harness, plan: FaultPlan, faults: list[Fault], stop: threading.Event) -> None:
    def wait_until(at_s: float) -> bool:
        return not stop.wait(max(at_s - h.now_s(), 0.0))

    def restored(fault: Fault) -> None:
        fault.restored_s = h.now_s()
        fault.extra["published_at_restore"] = h.published_readings()

    if wait_until(plan.at_s[0]):
        fault = Fault("ingest SIGKILL", h.now_s(), detail=f"worker 1 killed, restarted after {plan.worker_down_s:g} s")
        faults.append(fault)
        h.kill_worker(0)
        stop.wait(plan.worker_down_s)
        h.start_worker(0)
        restored(fault)
    if wait_until(plan.at_s[1]):
        fault = Fault("broker restart", h.now_s(), detail="SIGTERM, start on the same port and persistence")
        faults.append(fault)
        h.broker.restart()
        restored(fault)
    if wait_until(plan.at_s[2]):
        fault = Fault(
            "PostgreSQL crash", h.now_s(), detail=f"stop -m immediate, start after {plan.postgres_down_s:g} s"
        )
        faults.append(fault)
        h.pg.stop("immediate")
        stop.wait(plan.postgres_down_s)
        h.pg.start()
        restored(fault)


@contextlib.contextmanager
def servers(h: Harness, sites: int, seed: int) -> Iterator[int]:
    try:
        h.pg.start()
        h.db_url = prepare_template(h.pg.url, "vpp_soak")
        probe_pk = register_fleet(h.db_url, sites, seed)
        h.broker.start()
        for index in range(len(h.procs)):
            h.start_worker(index)
        yield probe_pk
    finally:
        h.stop_workers()
        h.broker.stop()
        h.pg.destroy()


def activity_snapshot(db_url: str) -> list[str]:
    """What the soak database's sessions are doing (for a stall: who waits on whom, and for how long)."""
    try:
        with psycopg.connect(db_url, autocommit=True, connect_timeout=2) as conn:
            rows = conn.execute(
                """SELECT application_name, state, coalesce(wait_event_type || ':' || wait_event, '-'),
                          extract(epoch FROM now() - xact_start)::int, left(regexp_replace(query, '\\s+', ' ', 'g'), 90)
                   FROM pg_stat_activity
                   WHERE datname = current_database() AND pid <> pg_backend_pid() AND state <> 'idle'
                   ORDER BY xact_start"""
            ).fetchall()
    except psycopg.Error as error:
        return [f"(database unreachable: {str(error).strip()[:100]})"]
    return [f"{app} {state} wait={wait} xact={age}s: {query}" for app, state, wait, age, query in rows]
