"""`vpp bench ingest`: ingest throughput as ratios to references measured in the same run.

(a) broker: the same publisher into a subscriber that only counts (QoS 1, shared subscription);
(b) database: the ingest writer (binary COPY, de-duplicating insert, dirty-slot marking) on the same rows,
    validated beforehand and cut into the batches the worker forms under backlog, no MQTT;
(c) end-to-end: publisher → Mosquitto → ingest worker → PostgreSQL, until every reading is committed;
(d) naive: a subscriber inserting each message through the SQLAlchemy ORM, one commit per message.
The publisher always runs in its own process so the measured side never shares a GIL with it.
All servers are private and fresh (a temporary PostgreSQL and Mosquitto) so runs are comparable;
(a), (b) and (c) run three times, interleaved, and the table shows their medians.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
import pickle
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.subscribeoptions import SubscribeOptions
from psycopg import sql
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import DateTime, Float, Integer, create_engine, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from services.ingest.batcher import Inbound, build_batch
from services.ingest.bootstrap import tune_interpreter
from services.ingest.worker import IngestConfig, IngestWorker
from vpp.domain.devices import DeviceKind
from vpp.embedded.broker import EmbeddedBroker
from vpp.embedded.postgres import EmbeddedPostgres
from vpp.mqtt import TELEMETRY_FILTER, BrokerAddress, close_client, make_client, session_properties, telemetry_topic
from vpp.postgres.connect import libpq_url, sqlalchemy_url
from vpp.postgres.readings import ReadingWriter, encode_rows
from vpp.postgres.registry import DeviceSpec, SiteRecord, load_devices, register_site, site_pk_by_id
from vpp.postgres.scratch import TEMPLATE_DB, prepare_template, scratch_database

console = Console()
Message = tuple[str, bytes]


@dataclass(frozen=True)
class Scenario:
    readings_per_message: int
    messages: int
    naive_messages: int

    @property
    def readings(self) -> int:
        return self.readings_per_message * self.messages


def _payloads(scenario: Scenario, sites: int, count: int) -> list[Message]:
    """`count` meter messages spread over `sites`, each reading a unique (device, ts)."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
    out: list[Message] = []
    per_site: dict[int, int] = {}
    for i in range(count):
        site = i % sites
        n = per_site.get(site, 0)
        per_site[site] = n + scenario.readings_per_message
        readings = [
            {
                "ts": (start + timedelta(seconds=n + k)).isoformat(),
                "power_kw": 20.0 + (n + k) % 7,
                "import_kwh": 1000.0 + (n + k) * 0.006,
                "export_kwh": 10.0,
            }
            for k in range(scenario.readings_per_message)
        ]
        body = readings[0] if scenario.readings_per_message == 1 else {"readings": readings}
        out.append((telemetry_topic(f"bench-{site:04d}", "meter-1"), json.dumps(body).encode()))
    return out


def _register(db_url: str, sites: int) -> None:
    with psycopg.connect(db_url) as conn:
        for site in range(sites):
            register_site(
                conn, SiteRecord(f"bench-{site:04d}", f"bench {site}"), [DeviceSpec("meter-1", DeviceKind.METER)]
            )
        conn.commit()


# -- publisher process ----------------------------------------------------------------------
_MAX_OUTSTANDING = 10_000  # the publisher's own bound on messages sent but not yet acknowledged


def _publisher_main(port: int, payload_file: str, ready: Any, go: Any, done: Any) -> None:
    with open(payload_file, "rb") as handle:
        messages: list[Message] = pickle.load(handle)
    acked = 0
    all_acked = threading.Event()

    def on_publish(*_args: Any) -> None:
        nonlocal acked
        acked += 1
        if acked == len(messages):
            all_acked.set()

    # paho's own inflight cap walks every queued message on each PUBACK (O(n) per ack; see
    # vpp.mqtt.make_client): with tens of thousands queued, that capped (a) at a few thousand
    # messages per second and made the reference measure paho instead of the broker.
    client = make_client("bench-publisher", max_inflight=0, buffered=True)
    client.on_publish = on_publish
    client.connect("127.0.0.1", port, clean_start=True)
    client.loop_start()
    ready.set()
    go.wait()
    for handed, (topic, payload) in enumerate(messages):
        while handed - acked > _MAX_OUTSTANDING:
            time.sleep(0.0005)
        client.publish(topic, payload, qos=1)
    all_acked.wait(600)
    done.set()
    close_client(client)


class _PublisherProcess:
    def __init__(self, port: int, messages: list[Message], workdir: Path) -> None:
        path = workdir / f"payloads-{time.monotonic_ns()}.pickle"
        path.write_bytes(pickle.dumps(messages))
        ctx = mp.get_context("spawn")
        self.ready, self.go, self.done = ctx.Event(), ctx.Event(), ctx.Event()
        self.process = ctx.Process(target=_publisher_main, args=(port, str(path), self.ready, self.go, self.done))
        self.process.start()
        if not self.ready.wait(60):
            raise RuntimeError("publisher process did not start")

    def start(self) -> float:
        self.go.set()
        return time.perf_counter()

    def join(self) -> None:
        self.process.join(120)


def _wait(counter: Any, target: int, progress: Progress, label: str, timeout_s: float = 600) -> float:
    task = progress.add_task(label, total=target)
    deadline = time.monotonic() + timeout_s
    while True:
        value = counter()
        progress.update(task, completed=value)
        if value >= target:
            return time.perf_counter()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{label}: {value} of {target} after {timeout_s} s")
        time.sleep(0.005)


# -- (a) broker ------------------------------------------------------------------------------
def _broker_rate(
    broker: EmbeddedBroker, messages: list[Message], readings: int, workdir: Path, progress: Progress
) -> float:
    received = 0
    lock = threading.Lock()

    def on_message(*_args: Any) -> None:
        nonlocal received
        with lock:
            received += 1

    client = make_client("bench-counter", buffered=True)  # the same socket handling as ingest
    client.on_message = on_message
    subscribed = threading.Event()
    client.on_subscribe = lambda *_a: subscribed.set()
    client.connect("127.0.0.1", broker.port, clean_start=True, properties=session_properties())
    client.subscribe(f"$share/bench/{TELEMETRY_FILTER}", options=SubscribeOptions(qos=1))
    client.loop_start()
    subscribed.wait(10)
    publisher = _PublisherProcess(broker.port, messages, workdir)
    began = publisher.start()
    ended = _wait(lambda: received, len(messages), progress, "(a) broker → counting subscriber")
    publisher.join()
    close_client(client)
    return readings / (ended - began)


# -- (b) database ----------------------------------------------------------------------------
def _worker_batches(messages: list[Message], config: IngestConfig) -> list[list[Message]]:
    """Split messages as the worker's collector does when a backlog is waiting (its count and byte caps).

    (b) writes exactly these batches: the same transactions (c) commits at best, so the ratio
    compares like with like. Smaller batches would make (b) slower and flatter c/b.
    """
    batches: list[list[Message]] = []
    current: list[Message] = []
    size = 0
    for message in messages:
        current.append(message)
        size += len(message[1])
        if len(current) >= config.batch_max_messages or size >= config.batch_max_bytes:
            batches.append(current)
            current, size = [], 0
    if current:
        batches.append(current)
    return batches


def _database_rate(db_url: str, messages: list[Message], config: IngestConfig, progress: Progress) -> float:
    with psycopg.connect(db_url) as conn:
        devices = load_devices(conn)
        site_pks = site_pk_by_id(conn)
    now = datetime.now(UTC)
    # Validation and COPY encoding happen before the clock starts: (b) is the database's share alone.
    batches = [
        encode_rows(
            build_batch(
                [Inbound(topic, payload, now) for topic, payload in group],
                lookup=lambda s, d: devices.get((s, d)),
                site_pks=site_pks,
                limits=config.limits,
                max_payload_bytes=config.max_payload_bytes,
            ).rows
        )
        for group in _worker_batches(messages, config)
    ]
    total = sum(rows.count for rows in batches)
    task = progress.add_task("(b) binary COPY + de-duplication", total=total)
    with psycopg.connect(db_url) as conn:
        writer = ReadingWriter(conn)
        began = time.perf_counter()
        for rows in batches:
            writer.write(rows)
            progress.advance(task, rows.count)
        ended = time.perf_counter()
    return total / (ended - began)


# -- (c) end to end --------------------------------------------------------------------------
def _end_to_end_rate(
    db_url: str, broker: EmbeddedBroker, messages: list[Message], readings: int, workdir: Path, progress: Progress
) -> float:
    worker = IngestWorker(IngestConfig(db_url, BrokerAddress("127.0.0.1", broker.port), client_id="bench-ingest"))
    tune_interpreter(worker.config)  # as `python -m services.ingest` does: this process measures the worker
    thread = worker.start_in_thread()
    if not worker.subscriber.subscribed.wait(10):
        raise RuntimeError("the ingest worker did not subscribe")
    publisher = _PublisherProcess(broker.port, messages, workdir)
    began = publisher.start()
    ended = _wait(lambda: int(worker.metrics.written._value.get()), readings, progress, "(c) end-to-end ingest")
    publisher.join()
    worker.stop()
    thread.join(60)
    return readings / (ended - began)


# -- (d) naive ORM ---------------------------------------------------------------------------
class _NaiveBase(DeclarativeBase):
    pass


class _NaiveReading(_NaiveBase):
    """How a first version would write telemetry: an ORM row per reading, a commit per message."""

    __tablename__ = "readings"
    device_pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    power_kw: Mapped[float | None] = mapped_column(Float)
    energy_pos_kwh: Mapped[float | None] = mapped_column(Float)
    energy_neg_kwh: Mapped[float | None] = mapped_column(Float)


def _naive_rate(
    db_url: str,
    broker: EmbeddedBroker,
    messages: list[Message],
    readings_per_message: int,
    workdir: Path,
    progress: Progress,
) -> float:
    engine = create_engine(sqlalchemy_url(db_url))
    with psycopg.connect(db_url) as conn:
        devices = load_devices(conn)
    stored = 0
    inbox: list[tuple[str, bytes]] = []
    cond = threading.Condition()

    def on_message(_c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        with cond:
            inbox.append((message.topic, bytes(message.payload)))
            cond.notify()

    def consume() -> None:
        nonlocal stored
        with Session(engine) as session:
            while stored < len(messages) * readings_per_message:
                with cond:
                    cond.wait_for(lambda: bool(inbox), 1.0)
                    if not inbox:
                        continue
                    topic, payload = inbox.pop(0)
                site_id, device_id = topic.split("/")[2:4]
                device = devices[(site_id, device_id)]
                body = json.loads(payload)
                for item in body.get("readings", [body]):
                    exists = session.scalar(
                        select(_NaiveReading).where(
                            _NaiveReading.device_pk == device.device_pk,
                            _NaiveReading.ts == datetime.fromisoformat(item["ts"]),
                        )
                    )
                    if exists is None:
                        session.add(
                            _NaiveReading(
                                device_pk=device.device_pk,
                                ts=datetime.fromisoformat(item["ts"]),
                                power_kw=item.get("power_kw"),
                                energy_pos_kwh=item.get("import_kwh"),
                                energy_neg_kwh=item.get("export_kwh"),
                            )
                        )
                session.commit()
                stored += len(body.get("readings", [body]))

    client = make_client("bench-naive")
    client.on_message = on_message
    client.connect("127.0.0.1", broker.port, clean_start=True, properties=session_properties())
    client.subscribe(f"$share/naive/{TELEMETRY_FILTER}", options=SubscribeOptions(qos=1))
    client.loop_start()
    time.sleep(0.3)
    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    publisher = _PublisherProcess(broker.port, messages, workdir)
    began = publisher.start()
    ended = _wait(lambda: stored, len(messages) * readings_per_message, progress, "(d) naive ORM insert per message")
    publisher.join()
    consumer.join(10)
    close_client(client)
    engine.dispose()
    return stored / (ended - began)


def _checkpoint(server_url: str) -> None:
    """Start a phase with no write-back owed by the previous one.

    Each phase writes up to a few hundred MB (rows, WAL, a scratch database copied from the
    template); without this, the checkpoint that flushes it lands in whichever phase comes next
    (measured: (c), which follows (b), lost a fifth of its rate that way).
    """
    # An external server's role may lack pg_checkpoint: its figures then carry that noise.
    with (
        psycopg.connect(libpq_url(server_url), autocommit=True) as conn,
        contextlib.suppress(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute("CHECKPOINT")


@contextmanager
def _fresh_broker(workdir: Path) -> Iterator[EmbeddedBroker]:
    """Each phase gets its own broker, so no persistent session of an earlier phase competes for messages."""
    broker = EmbeddedBroker(workdir / f"broker-{time.monotonic_ns()}")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def run_bench_ingest(
    modes: tuple[int, ...] = (1, 50),
    messages: int = 50_000,
    naive_messages: int = 1_000,
    sites: int = 100,
    repeats: int = 3,
    database_url: str | None = None,
) -> list[dict[str, float]]:
    """`database_url`: an external server (any database on it; its role needs CREATEDB) instead of a
    private embedded one, e.g. TimescaleDB. Scratch databases and a template of this run's own are
    created there and dropped."""
    results: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="vpp-bench-") as tmp:
        workdir = Path(tmp)
        pg: EmbeddedPostgres | None = None
        template = f"vpp_template_bench_{uuid.uuid4().hex[:8]}" if database_url else TEMPLATE_DB
        with console.status("preparing the database…"):
            if database_url is None:
                pg = EmbeddedPostgres(workdir / "pg").start()
                server_url = pg.url
            else:
                server_url = database_url
            prepare_template(server_url, template)
        try:
            for per_message in modes:
                # Each timed run should last seconds, not a fraction of one: a checkpoint or a burst of
                # other work then moves the figure by a few percent instead of a third.
                count = messages if per_message == 1 else max(messages * 2 // 5, 200)
                scenario = Scenario(
                    per_message, count, naive_messages if per_message == 1 else max(naive_messages // 10, 50)
                )
                results.append(_run_scenario(scenario, server_url, template, workdir, sites, repeats))
        finally:
            if pg is not None:
                pg.destroy()
            else:
                with psycopg.connect(libpq_url(server_url), autocommit=True) as conn:
                    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(template)))
    _print(results)
    return results


def _run_scenario(
    scenario: Scenario, server_url: str, template: str, workdir: Path, sites: int, repeats: int
) -> dict[str, float]:
    """(a), (b) and (c) `repeats` times, interleaved, and their medians; (d) once (it is slow and far off).

    On a shared two-core machine one run of each is a lottery: other work shifts any single figure
    by a third either way. Interleaving exposes all three to the same conditions, and the median
    drops the outliers of either sign.
    """
    messages = _payloads(scenario, sites, scenario.messages)
    naive = _payloads(scenario, sites, scenario.naive_messages)
    console.rule(f"{scenario.readings_per_message} reading(s) per message · {scenario.messages:,} messages")
    runs: dict[str, list[float]] = {"a": [], "b": [], "c": []}
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,}/{task.total:,}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        for _ in range(repeats):
            _checkpoint(server_url)
            with _fresh_broker(workdir) as broker:
                runs["a"].append(_broker_rate(broker, messages, scenario.readings, workdir, progress))
            with scratch_database(server_url, template, prefix="bench") as db_url:
                _register(db_url, sites)
                config = IngestConfig(db_url, BrokerAddress("127.0.0.1", 0))
                _checkpoint(server_url)
                runs["b"].append(_database_rate(db_url, messages, config, progress))
            with scratch_database(server_url, template, prefix="bench") as db_url:
                _register(db_url, sites)
                _checkpoint(server_url)
                with _fresh_broker(workdir) as broker:
                    runs["c"].append(_end_to_end_rate(db_url, broker, messages, scenario.readings, workdir, progress))
        with scratch_database(server_url, template, prefix="bench") as db_url:
            _register(db_url, sites)
            _checkpoint(server_url)
            with _fresh_broker(workdir) as broker:
                rate_d = _naive_rate(db_url, broker, naive, scenario.readings_per_message, workdir, progress)
    for name, rates in runs.items():
        console.print(f"  ({name}) runs: " + ", ".join(f"{rate:,.0f}" for rate in rates))
    medians = {name: statistics.median(rates) for name, rates in runs.items()}
    return {"readings_per_message": scenario.readings_per_message, **medians, "d": rate_d}


def _print(results: list[dict[str, float]]) -> None:
    table = Table(title="Ingest benchmark (readings/s, medians of interleaved runs; ratios are what matter)")
    for column in ("readings/msg", "(a) broker", "(b) COPY", "(c) end-to-end", "(d) naive ORM", "c/a", "c/b", "c/d"):
        table.add_column(column, justify="right")
    for r in results:
        table.add_row(
            f"{r['readings_per_message']:.0f}",
            f"{r['a']:,.0f}",
            f"{r['b']:,.0f}",
            f"{r['c']:,.0f}",
            f"{r['d']:,.0f}",
            f"{r['c'] / r['a']:.2f}",
            f"{r['c'] / r['b']:.2f}",
            f"{r['c'] / r['d']:.1f}",
        )
    console.print(table)
    console.print("targets: 1 reading/msg c/a ≥ 0.8 · 50 readings/msg c/b ≥ 0.6 · c/d ≥ 50")
