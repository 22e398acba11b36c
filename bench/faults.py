"""`vpp bench faults`: a seeded randomized fault test of the whole delivery path.

Independent gateways (one paho client per site, 2 meters each, 10 sites: 20 devices) publish
numbered readings, one per message, QoS 1, in persistent sessions, reconnecting at once. Two ingest
workers run as separate processes (partitioned plain subscriptions, the default). At random moments
of each round (from the seed) the harness injects faults:

- ``ingest_sigkill``: SIGKILL an ingest worker, restart it;
- ``rollup_sigkill``: SIGKILL the ingest workers while one holds the rollup lock, restart them;
- ``broker_graceful``: SIGTERM Mosquitto (it saves its persistence file) and start it again;
- ``broker_sigkill``: SIGKILL Mosquitto (it loses what it did not save) and start it again;
- ``postgres_sigkill``: SIGKILL every PostgreSQL process and start it again (crash recovery).

Two composite faults replay, deterministically, the sequence that once lost PUBACKed readings in a
round without resending (docs/runbook.md, "Graceful broker restart right after an ingest crash"); they
are not in the random schedule, `plan` asks for them:
- ``ingest_then_broker_early``: SIGKILL an ingest worker, start it, and restart Mosquitto gracefully
  at once, while the new process is still starting (its session is offline, with in-flight messages);
- ``ingest_then_broker_late``: the same, but the broker goes down the moment the new process has
  connected again and is draining its session's backlog.

After each round, once the gateways have nothing unconfirmed (or a time limit passed):
- every reading a gateway saw confirmed is stored, exactly once and with its values;
- in rounds without a broker SIGKILL the gateways run *without* resending (as a gateway that ignores
  the confirmation topic does): every reading the broker PUBACKed is stored exactly once, which is
  what the persistent, restored subscriptions must give on their own;
- in rounds with one, gateways resend what is unconfirmed and nothing published may be lost;
- every 30-minute device row equals the integration of its stored readings (computed here in Python,
  independently of the rollup's SQL) and no rollup claim is left behind.

Recovery is the time from a fault until a reading published after it is stored.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg

from vpp.domain.devices import DeviceKind
from vpp.embedded.broker import EmbeddedBroker
from vpp.embedded.postgres import EmbeddedPostgres
from vpp.gateway_backlog import ConfirmationBacklog
from vpp.mqtt import close_client, make_client, session_properties, stored_topic, telemetry_topic
from vpp.postgres.registry import DeviceSpec, SiteRecord, register_site
from vpp.postgres.rollup import _LOCK_KEY
from vpp.postgres.scratch import prepare_template, scratch_database

__all__ = [
    "FAULT_KINDS",
    "FaultRun",
    "RoundReport",
    "probe_instant",
    "round_window",
    "run_anchor",
    "run_bench_faults",
    "run_fault_rounds",
]

FAULT_KINDS = ("ingest_sigkill", "rollup_sigkill", "broker_graceful", "broker_sigkill", "postgres_sigkill")
COMPOSITE_FAULTS = ("ingest_then_broker_early", "ingest_then_broker_late")
NO_MATCHING_SUBSCRIBERS = 16  # MQTT v5 PUBACK reason code: the broker had no subscription for it
ROOT = Path(__file__).resolve().parents[1]
SITES = 10
DEVICES_PER_SITE = 2
STEP_KWH = 0.01  # counter advance per reading (one second apart): 36 kW
GAP_S = 900
Key = tuple[str, str, datetime]


@dataclass
class RoundReport:
    round_no: int
    faults: list[str]
    resend: bool
    published: int = 0
    pubacked: int = 0
    confirmed: int = 0
    stored: int = 0
    lost: int = 0  # published (resend rounds) or PUBACKed (others) and not stored, or confirmed and not stored
    duplicates: int = 0  # rows not published, or stored with other values
    # Lost readings the broker PUBACKed with "no matching subscribers": a subscription gap at the
    # broker rather than a message it routed and then lost (or ingest dropped).
    lost_unrouted: int = 0
    recovery_s: dict[str, float] = field(default_factory=dict)
    slot_mismatches: int = 0
    leftover_claims: int = 0
    problems: list[str] = field(default_factory=list)
    timeline: list[str] = field(default_factory=list)


@dataclass
class FaultRun:
    seed: int
    rounds: list[RoundReport]

    @property
    def ok(self) -> bool:
        return all(not r.problems for r in self.rounds)


class Gateway:
    """A site gateway: numbered readings, QoS 1, persistent session, reconnects at once, and (when
    `resend`) the end-to-end confirmation's resend of everything unconfirmed."""

    def __init__(self, site_id: str, port: int, *, resend: bool) -> None:
        self.site_id = site_id
        self.resend = resend
        self.backlog = ConfirmationBacklog(max_readings=1_000_000)
        self.confirmed: set[Key] = set()
        self.infos: list[tuple[Key, mqtt.MQTTMessageInfo]] = []
        self.puback_reasons: dict[int, int] = {}  # mid -> PUBACK reason code (mids are not reused in a round)
        self.resent = 0
        self._lock = threading.Lock()
        self._connects = 0
        self._resend_due = threading.Event()
        self.client = make_client(f"gw-{site_id}", max_inflight=0)
        # Reconnect at once, as a gateway that does not back off would: the race the issue is about.
        self.client.reconnect_delay_set(min_delay=0.02, max_delay=0.2)  # type: ignore[arg-type]
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_publish = self._on_publish
        self.client.connect_async("127.0.0.1", port, keepalive=10, clean_start=False, properties=session_properties())
        self.client.loop_start()

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            return
        client.subscribe(stored_topic(self.site_id), qos=1)
        self._connects += 1
        if self._connects > 1:
            self._resend_due.set()

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, reason: Any, _p: Any) -> None:
        self.puback_reasons[mid] = int(getattr(reason, "value", reason) or 0)

    def unrouted(self) -> set[Key]:
        """Readings the broker acknowledged with 'no matching subscribers'."""
        return {key for key, info in self.infos if self.puback_reasons.get(info.mid) == NO_MATCHING_SUBSCRIBERS}

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        payload = bytes(message.payload)
        self.backlog.confirm(self.site_id, payload)
        with suppress(ValueError, KeyError, TypeError, AttributeError):
            stored = json.loads(payload)["stored"]
            keys = {(self.site_id, d, datetime.fromisoformat(ts)) for d, stamps in stored.items() for ts in stamps}
            with self._lock:
                self.confirmed |= keys

    def publish(self, device_id: str, ts: datetime, counter_kwh: float) -> Key:
        reading = {"ts": ts.isoformat(), "power_kw": STEP_KWH * 3600, "import_kwh": counter_kwh}
        key = (self.site_id, device_id, ts)
        self.backlog.add(self.site_id, device_id, reading)
        info = self.client.publish(telemetry_topic(self.site_id, device_id), json.dumps(reading), qos=1)
        self.infos.append((key, info))
        return key

    def maybe_resend(self, *, force: bool = False) -> None:
        if not self.resend:
            return
        everything = force or self._resend_due.is_set()
        self._resend_due.clear()
        for pending in self.backlog.due(older_than_s=0.0 if everything else 2.0):
            body = json.dumps({"readings": pending.readings})
            self.client.publish(telemetry_topic(pending.site_id, pending.device_id), body, qos=1)
            self.resent += 1

    def pubacked(self) -> set[Key]:
        # Not `is_published()`: it raises for a message queued while disconnected (rc NO_CONN), which
        # paho still sends after the reconnect and then marks published when the PUBACK comes.
        return {key for key, info in self.infos if info._published}

    def close(self) -> None:
        close_client(self.client)


class Platform:
    """PostgreSQL, Mosquitto and two ingest worker processes, all private, all killable."""

    def __init__(self, workdir: Path, pg: EmbeddedPostgres, db_url: str) -> None:
        self.workdir = workdir
        self.pg = pg
        self.db_url = db_url
        self.broker = EmbeddedBroker(workdir / "broker")
        self.broker.start()
        self.workers: list[subprocess.Popen[bytes] | None] = [None, None]
        self._log = open(workdir / "ingest.log", "ab")  # noqa: SIM115 -- closed in close()

    def start_worker(self, index: int) -> None:
        env = {
            **os.environ,
            # Private, anonymous servers: the development placeholders stand in for the secrets.
            "VPP_ENVIRONMENT": "development",
            "VPP_DATABASE_URL": self.db_url,
            "VPP_MQTT_URL": f"mqtt://127.0.0.1:{self.broker.port}",
            "VPP_INGEST_CLIENT_ID": f"ingest-fault-{index}",
            "VPP_INGEST_PARTITION": str(index),
            "VPP_INGEST_PARTITIONS": "2",
            "VPP_INGEST_METRICS_PORT": "0",
            "VPP_INGEST_BATCH_MAX_WAIT_MS": "50",
            "VPP_INGEST_ROLLUP_INTERVAL_S": "0.3",
            "VPP_INGEST_ROLLUP_DELAY_S": "0",
        }
        self.workers[index] = subprocess.Popen(
            [sys.executable, "-m", "services.ingest"], cwd=ROOT, env=env, stdout=self._log, stderr=self._log
        )

    def kill_worker(self, index: int) -> None:
        worker = self.workers[index]
        if worker is not None and worker.poll() is None:
            worker.kill()
            worker.wait(10)

    def wait_worker_connected(self, index: int, timeout_s: float = 60.0) -> None:
        """Until worker `index` has a TCP connection to the broker (its MQTT session resumes with it)."""
        worker = self.workers[index]
        assert worker is not None
        deadline = time.monotonic() + timeout_s
        while not _connected_to(worker.pid, self.broker.port):
            if time.monotonic() > deadline or worker.poll() is not None:
                raise TimeoutError(f"ingest worker {index} did not connect to the broker")
            time.sleep(0.002)

    def kill_during_rollup(self, deadline_s: float = 10.0) -> bool:
        """SIGKILL both workers the moment one holds the rollup lock (True if caught mid-rollup)."""
        until = time.monotonic() + deadline_s
        with psycopg.connect(self.db_url, autocommit=True, connect_timeout=5) as conn:
            while time.monotonic() < until:
                held = conn.execute(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = %s AND granted",
                    (_LOCK_KEY,),
                ).fetchone()
                if held and held[0]:
                    break
                time.sleep(0.002)
            else:
                return False
        for index in range(2):
            self.kill_worker(index)
        return True

    def sigkill_postgres(self) -> None:
        """SIGKILL the postmaster and all its children (a crash of the whole server), then start it."""
        pid_file = self.pg.data_dir / "pgdata" / "postmaster.pid"
        postmaster = int(pid_file.read_text().split()[0])
        children = [pid for pid in _all_pids() if _parent(pid) == postmaster]
        for pid in [postmaster, *children]:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in [postmaster, *children]) and time.monotonic() < deadline:
            time.sleep(0.02)
        # The dead postmaster may linger as a zombie (pg_ctl daemonized it, and not every container's
        # init reaps orphans); both pg_ctl and PostgreSQL would take the zombie's pid in the lock file for
        # a live server. A crashed machine leaves no process behind, so neither may the harness.
        pid_file.unlink(missing_ok=True)
        for lock in self.pg.data_dir.glob(".s.PGSQL.*.lock"):
            lock.unlink(missing_ok=True)
        self.pg.start()

    def close(self) -> None:
        for index in range(2):
            worker = self.workers[index]
            if worker is not None and worker.poll() is None:
                worker.terminate()
                try:
                    worker.wait(30)
                except subprocess.TimeoutExpired:
                    worker.kill()
        self.broker.stop()
        self._log.close()


def _connected_to(pid: int, port: int) -> bool:
    """Does process `pid` hold an established TCP connection to 127.0.0.1:`port`? (from /proc)"""
    inodes: set[str] = set()
    with suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                # remote address, state ("01" is ESTABLISHED), inode
                if fields[3] == "01" and int(fields[2].rsplit(":", 1)[1], 16) == port and fields[9] in inodes:
                    return True
    return False


def _all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _register(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        for s in range(SITES):
            register_site(
                conn,
                SiteRecord(f"fault-{s:02d}", f"Fault site {s}", 35.5, 139.6, regions=()),
                [DeviceSpec(f"meter-{d + 1}", DeviceKind.METER) for d in range(DEVICES_PER_SITE)],
            )
        conn.commit()


def _max_ts(db_url: str, since: datetime) -> datetime | None:
    try:
        with psycopg.connect(db_url, autocommit=True, connect_timeout=2) as conn:
            row = conn.execute("SELECT max(ts) FROM readings WHERE ts >= %s", (since,)).fetchone()
            return row[0] if row else None
    except psycopg.Error:
        return None


def _inject(kind: str, platform: Platform, rng: random.Random) -> None:
    if kind == "ingest_sigkill":
        index = rng.randrange(2)
        platform.kill_worker(index)
        platform.start_worker(index)
    elif kind == "rollup_sigkill":
        platform.kill_during_rollup()
        for index in range(2):
            platform.kill_worker(index)
            platform.start_worker(index)
    elif kind == "broker_graceful":
        platform.broker.stop()
        platform.broker.start()
    elif kind == "broker_sigkill":
        platform.broker.stop(hard=True)
        platform.broker.start()
    elif kind == "postgres_sigkill":
        platform.sigkill_postgres()
    elif kind in COMPOSITE_FAULTS:
        index = rng.randrange(2)
        platform.kill_worker(index)
        platform.start_worker(index)
        if kind == "ingest_then_broker_late":
            platform.wait_worker_connected(index)
        platform.broker.stop()
        platform.broker.start()
    else:
        raise ValueError(f"unknown fault {kind!r}")


def _expected_slots(readings: list[tuple[int, datetime, float]]) -> dict[tuple[int, datetime], float]:
    """The oracle: per device and slot, the counter's travel over intervals up to the gap bound,
    split pro rata across slot boundaries (DESIGN.md's rule, written independently of the SQL)."""
    slot = timedelta(minutes=30)
    epoch = datetime(2000, 1, 1, tzinfo=UTC)
    out: dict[tuple[int, datetime], float] = {}
    by_device: dict[int, list[tuple[datetime, float]]] = {}
    for device, ts, counter in readings:
        by_device.setdefault(device, []).append((ts, counter))
    for device, points in by_device.items():
        points.sort()
        for (t0, c0), (t1, c1) in itertools.pairwise(points):
            dt = (t1 - t0).total_seconds()
            if dt > GAP_S:
                continue
            s0 = epoch + ((t0 - epoch) // slot) * slot
            f0 = min(1.0, (s0 + slot - t0).total_seconds() / dt)
            out[(device, s0)] = out.get((device, s0), 0.0) + (c1 - c0) * f0
            if f0 < 1:
                out[(device, s0 + slot)] = out.get((device, s0 + slot), 0.0) + (c1 - c0) * (1 - f0)
    return out


def _run_round(
    round_no: int,
    faults: list[str],
    platform: Platform,
    rng: random.Random,
    *,
    readings_per_device: int,
    rate_per_device: float,
    settle_s: float,
    resend_always: bool,
    anchor: datetime | None = None,
) -> RoundReport:
    resend = resend_always or "broker_sigkill" in faults
    report = RoundReport(round_no, list(faults), resend)
    # Each round writes its own window of history (a day apart), so rounds cannot mask each other. The
    # anchor is the run's, not the round's: a round starting in the next hour would otherwise have a
    # window reaching an hour into the previous round's, and count that round's rows as its duplicates.
    t0, _end = round_window(anchor or run_anchor(), round_no)
    gateways = [Gateway(f"fault-{s:02d}", platform.broker.port, resend=resend) for s in range(SITES)]
    duration_s = readings_per_device / rate_per_device
    plan = sorted((rng.uniform(0.15, 0.85) * duration_s, kind) for kind in faults)
    published: dict[Key, float] = {}
    newest_published = [t0]

    def inject_faults(began: float) -> None:
        # Its own thread: the gateways keep publishing through every fault, as real ones would.
        for at_s, kind in plan:
            time.sleep(max(0.0, began + at_s - time.monotonic()))
            hit, marker = time.monotonic(), newest_published[0]
            try:
                report.timeline.append(f"{kind} at reading {int((marker - t0).total_seconds())}")
                _inject(kind, platform, rng)
            except Exception as error:  # a harness failure must fail the round, not vanish with the thread
                report.problems.append(f"injecting {kind} failed: {type(error).__name__}: {error}")
                continue
            report.recovery_s[kind] = _wait_recovered(platform.db_url, marker, t0, hit)

    try:
        deadline = time.monotonic() + 10
        while any(g._connects == 0 for g in gateways) and time.monotonic() < deadline:
            time.sleep(0.02)
        began = time.monotonic()
        faulter = threading.Thread(target=inject_faults, args=(began,), name="faults", daemon=True)
        faulter.start()
        for i in range(readings_per_device):
            ts = t0 + timedelta(seconds=i)
            for g in gateways:
                for d in range(DEVICES_PER_SITE):
                    counter = 1000.0 * (d + 1) + i * STEP_KWH
                    published[g.publish(f"meter-{d + 1}", ts, counter)] = counter
            newest_published[0] = ts
            if i % 20 == 0:
                for g in gateways:
                    g.maybe_resend()
            ahead = (i + 1) / rate_per_device - (time.monotonic() - began)
            if ahead > 0:
                time.sleep(ahead)
        faulter.join(180)
        # Settle: resend what is unconfirmed (resend rounds) until everything is confirmed.
        until = time.monotonic() + settle_s
        while time.monotonic() < until:
            for g in gateways:
                g.maybe_resend()
            if all(len(g.backlog) == 0 for g in gateways):
                break
            time.sleep(0.5)
        _wait_rollup_idle(platform.db_url, timeout_s=30)
        _verify(report, platform.db_url, t0, gateways, published)
    finally:
        for g in gateways:
            g.close()
    return report


def run_anchor(now: datetime | None = None) -> datetime:
    """The hour every round's window is counted back from, fixed for the whole run."""
    return (now or datetime.now(UTC)).replace(minute=0, second=0, microsecond=0)


def round_window(anchor: datetime, round_no: int) -> tuple[datetime, datetime]:
    """Round n writes and verifies [anchor - (2 + n) days, anchor - (1 + n) days): disjoint windows."""
    start = anchor - timedelta(days=2 + round_no)
    return start, start + timedelta(days=1)


def probe_instant(now: datetime) -> datetime:
    """Where the start-up probe writes: twelve hours back, inside no round's window (they all end at
    least a day before the anchor). A month back, as it once was, is round 28's window."""
    return now.replace(microsecond=0) - timedelta(hours=12)


def _wait_recovered(db_url: str, marker: datetime, since: datetime, hit: float, timeout_s: float = 60.0) -> float:
    """Seconds from the fault until a reading newer than `marker` (published after it) is stored."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        newest = _max_ts(db_url, since)
        if newest is not None and newest > marker:
            return time.monotonic() - hit
        time.sleep(0.02)
    return float("inf")


def _wait_rollup_idle(db_url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with suppress(psycopg.Error), psycopg.connect(db_url, autocommit=True, connect_timeout=2) as conn:
            row = conn.execute(
                "SELECT (SELECT count(*) FROM energy_dirty) + (SELECT count(*) FROM energy_claims)"
            ).fetchone()
            if row and row[0] == 0:
                return
        time.sleep(0.2)


def _verify(
    report: RoundReport, db_url: str, t0: datetime, gateways: list[Gateway], published: dict[Key, float]
) -> None:
    window_end = t0 + timedelta(days=1)  # round_window's end
    with psycopg.connect(db_url, autocommit=True) as conn:
        rows = conn.execute(
            """SELECT s.site_id, d.device_id, r.ts, r.energy_pos_kwh, d.id FROM readings r
               JOIN devices d ON d.id = r.device_pk JOIN sites s ON s.id = d.site_pk
               WHERE r.ts >= %s AND r.ts < %s""",
            (t0, window_end),
        ).fetchall()
        slot_rows = conn.execute(
            "SELECT device_pk, slot_start, pos_kwh FROM device_energy_30min WHERE slot_start >= %s AND slot_start < %s",
            (t0 - timedelta(minutes=30), window_end),
        ).fetchall()
        report.leftover_claims = int(conn.execute("SELECT count(*) FROM energy_claims").fetchone()[0])  # type: ignore[index]
    stored: dict[Key, float] = {}
    duplicates = 0
    for site, device, ts, value, _pk in rows:
        key = (site, device, ts)
        if key in stored or key not in published or abs(published[key] - value) > 1e-9:
            duplicates += 1
        stored[key] = value
    pubacked = set().union(*(g.pubacked() for g in gateways))
    confirmed = set().union(*(g.confirmed for g in gateways)) & published.keys()
    report.published = len(published)
    report.pubacked = len(pubacked)
    report.confirmed = len(confirmed)
    report.stored = len(stored)
    report.duplicates = duplicates
    must_be_stored = confirmed | (set(published) if report.resend else pubacked)
    report.lost = len(must_be_stored - stored.keys())
    report.lost_unrouted = len((must_be_stored - stored.keys()) & set().union(*(g.unrouted() for g in gateways)))
    expected = _expected_slots([(pk, ts, value) for _s, _d, ts, value, pk in rows])
    actual = {(pk, slot): pos for pk, slot, pos in slot_rows}
    report.slot_mismatches = sum(
        1 for key, kwh in expected.items() if abs(actual.get(key, float("nan")) - kwh) > 1e-6 or key not in actual
    )
    if report.lost:
        missing = sorted(must_be_stored - stored.keys(), key=lambda k: k[2])
        sites = sorted({k[0] for k in missing})
        report.problems.append(
            f"{report.lost} readings lost (sites {sites}, from reading {int((missing[0][2] - t0).total_seconds())}"
            f" to {int((missing[-1][2] - t0).total_seconds())}; {report.lost_unrouted} of them PUBACKed with"
            " 'no matching subscribers')"
        )
    if report.duplicates:
        report.problems.append(f"{report.duplicates} duplicate or altered rows")
    if report.slot_mismatches:
        report.problems.append(f"{report.slot_mismatches} 30-minute rows differ from their readings' integration")
    if report.leftover_claims:
        report.problems.append(f"{report.leftover_claims} rollup claims left behind")
    if len(confirmed - stored.keys()):
        report.problems.append("a confirmed reading is not stored")


@contextmanager
def _platform(workdir: Path) -> Iterator[Platform]:
    pg = EmbeddedPostgres(workdir / "pg").start()
    try:
        prepare_template(pg.url)
        with scratch_database(pg.url) as db_url:
            _register(db_url)
            platform = Platform(workdir, pg, db_url)
            try:
                for index in range(2):
                    platform.start_worker(index)
                _wait_subscribed(platform)
                yield platform
            finally:
                platform.close()
    finally:
        pg.destroy()


def _wait_subscribed(platform: Platform, timeout_s: float = 60.0) -> None:
    """Until both workers have subscribed once (their sessions then exist at the broker): a reading
    for a site of each partition must land."""
    probe = Gateway("fault-probe", platform.broker.port, resend=False)
    try:
        deadline = time.monotonic() + timeout_s
        ts = probe_instant(datetime.now(UTC))
        while time.monotonic() < deadline:
            for s in range(SITES):
                probe.site_id = f"fault-{s:02d}"
                probe.publish("meter-1", ts, 1.0)
            newest = _max_ts(platform.db_url, ts)
            with psycopg.connect(platform.db_url, autocommit=True) as conn:
                landed = conn.execute("SELECT count(*) FROM readings WHERE ts = %s", (ts,)).fetchone()
            if landed and landed[0] == SITES and newest is not None:
                return
            time.sleep(0.5)
        raise TimeoutError("ingest workers did not start consuming")
    finally:
        probe.close()


def schedule(seed: int, rounds: int, faults_per_round: int = 2) -> list[list[str]]:
    """Which faults each round gets: every kind appears once before any repeats (seeded order)."""
    rng = random.Random(seed)
    kinds: list[str] = []
    while len(kinds) < rounds * faults_per_round:
        batch = list(FAULT_KINDS)
        rng.shuffle(batch)
        kinds += batch
    return [kinds[r * faults_per_round : (r + 1) * faults_per_round] for r in range(rounds)]


def run_fault_rounds(
    rounds: int,
    seed: int,
    *,
    readings_per_device: int = 150,
    rate_per_device: float = 30.0,
    settle_s: float = 60.0,
    workdir: Path | None = None,
    plan: list[list[str]] | None = None,
    resend_always: bool = False,
    on_round: Callable[[RoundReport], None] = lambda _report: None,
) -> FaultRun:
    """`plan` replaces the seeded choice of faults per round (the moments still come from the seed).
    `resend_always`: gateways use the confirmation in every round, not only in broker-SIGKILL rounds.
    `on_round` sees each round's report as soon as it is verified (a long run reports as it goes)."""
    rng = random.Random(seed)
    reports: list[RoundReport] = []
    anchor = run_anchor()
    with tempfile.TemporaryDirectory(prefix="vpp-faults-", dir=workdir) as tmp, _platform(Path(tmp)) as platform:
        for round_no, faults in enumerate(plan or schedule(seed, rounds)):
            reports.append(
                _run_round(
                    round_no,
                    faults,
                    platform,
                    rng,
                    readings_per_device=readings_per_device,
                    rate_per_device=rate_per_device,
                    settle_s=settle_s,
                    resend_always=resend_always,
                    anchor=anchor,
                )
            )
            on_round(reports[-1])
    return FaultRun(seed, reports)


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run_bench_faults(rounds: int, seed: int | None, readings_per_device: int, resend_always: bool = False) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    seed = seed if seed is not None else random.SystemRandom().randrange(2**31)
    console.print(f"seed {seed} (rerun with --seed {seed})")

    def progress(r: RoundReport) -> None:
        # One line per round, flushed at once: a run stopped early still leaves its figures.
        console.print(
            f"round {r.round_no} {'+'.join(r.faults)} resend={r.resend}: published {r.published}, "
            f"PUBACKed {r.pubacked}, confirmed {r.confirmed}, stored {r.stored}, lost {r.lost}, "
            f"duplicates {r.duplicates}, recovery "
            + ", ".join(f"{k} {v:.2f} s" for k, v in r.recovery_s.items())
            + (f"; [red]{'; '.join(r.problems)} {r.timeline}[/red]" if r.problems else ""),
            highlight=False,
        )
        console.file.flush()

    run = run_fault_rounds(
        rounds, seed, readings_per_device=readings_per_device, resend_always=resend_always, on_round=progress
    )
    table = Table(title=f"fault rounds: {rounds}, seed {seed}", title_justify="left")
    for column in ("fault", "rounds", "published", "PUBACKed", "confirmed", "stored", "lost", "duplicates",
                   "recovery p50 s", "recovery p95 s"):  # fmt: skip
        table.add_column(column, justify="right" if column != "fault" else "left")
    for kind in FAULT_KINDS:
        hit = [r for r in run.rounds if kind in r.faults]
        recoveries = [r.recovery_s[kind] for r in hit if kind in r.recovery_s]
        table.add_row(
            kind, str(len(hit)),
            *(f"{sum(getattr(r, f) for r in hit):,}" for f in ("published", "pubacked", "confirmed", "stored", "lost", "duplicates")),
            f"{_percentile(recoveries, 0.5):.2f}", f"{_percentile(recoveries, 0.95):.2f}",
        )  # fmt: skip
    console.print(table)
    console.print("(a round has two faults, so it is counted under both; lost: PUBACKed and not stored where")
    console.print(" gateways do not resend, published and not stored where they do, or confirmed and not stored)")
    for r in run.rounds:
        if r.problems:
            console.print(f"[red]round {r.round_no} {r.timeline}: {'; '.join(r.problems)}[/red]")
    mean_recovery = statistics.fmean([v for r in run.rounds for v in r.recovery_s.values()] or [float("nan")])
    console.print(f"mean recovery {mean_recovery:.2f} s")
    if not run.ok:
        console.print(f"[red]FAILED (seed {seed})[/red]")
        raise SystemExit(1)
    console.print("[green]0 lost, 0 duplicates, every 30-minute row equals its readings' integration[/green]")
