"""`vpp bench ha`: lose one server at a time under load; count what was lost or doubled.

All on 127.0.0.1: a pg_auto_failover formation (monitor, primary, synchronous standby; `--standbys 2`
for the production layout with two and number_sync_standbys = 1), Mosquitto,
two ingest workers (partitioned), two schedulers (one leads by database lease, one stands by) and a
fleet of site gateways publishing a reading per site per interval, resending what the `stored` topic
does not confirm. Faults come in turn, one phase each, each phase writing its own day of history:

- ``postgres_primary_sigkill``: SIGKILL the primary's keeper and every PostgreSQL process of it;
  the monitor promotes the standby; once it has, the old node is started again (`pg-ha.sh run`, what its
  supervisor does) and rejoins as standby. Until then the promoted node runs alone and ingest, with
  ``VPP_INGEST_CONFIRM_REPLICATED``, stores but confirms nothing: the gateways' resends are confirmed once
  the standby streams again;
- ``scheduler_sigkill``: SIGKILL the leading scheduler; the standby takes the lease; restarted after;
- ``ingest_sigkill``: SIGKILL one ingest worker; restarted a second later, as systemd or compose would.

Right after each kill an operator issues a DR event for one site (written as soon as the database
takes writes). Per fault: readings confirmed to gateways, stored, lost (published or confirmed and
not stored), duplicates (rows not published, or with other values), seconds until every site's
readings commit again, seconds from the fault until the DR signal reaches its site, and whether any
event was dispatched twice (more than one transition to "dispatched" in its audit trail).

More faults plug in through `FAULTS` (e.g. a broker SIGKILL): a name, what kills, what restores.
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from bench.ha_formation import Formation
from bench.ha_platform import Fleet, HaPlatform, Key
from vpp.domain.devices import DeviceKind
from vpp.embedded.broker import EmbeddedBroker
from vpp.postgres import dr_events as store
from vpp.postgres.migrate import upgrade
from vpp.postgres.registry import DeviceSpec, SiteRecord, register_site

__all__ = ["FAULTS", "Fault", "FaultReport", "run_bench_ha", "run_ha_faults"]

STEP_KWH = 0.01
DEVICE = "meter-1"


@dataclass(frozen=True)
class Fault:
    name: str
    inject: Callable[[HaPlatform], None]
    # What a supervisor or the runbook does afterwards, and when: seconds after the kill, or None for
    # after the phase (the survivor carries the load meanwhile).
    restore: Callable[[HaPlatform], None]
    restore_after_s: float | None = None


def _kill_primary(p: HaPlatform) -> None:
    p.killed_node = p.formation.primary()
    p.formation.sigkill(p.killed_node)


def _rejoin_primary(p: HaPlatform) -> None:
    # Started again only once the standby is promoted, so it comes back as a standby and never as a
    # second primary; meanwhile nothing can be confirmed (one server), which is what the phase measures.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with contextlib.suppress(RuntimeError, subprocess.SubprocessError):
            if p.formation.primary() != p.killed_node:
                break
        time.sleep(0.5)
    p.formation.rejoin(p.killed_node)
    p.formation.wait_healthy(180)


def _kill_scheduler(p: HaPlatform) -> None:
    leader = p.leading_scheduler()
    p.killed_scheduler = leader if leader is not None else 0
    p.sigkill(p.schedulers[p.killed_scheduler])


def _kill_ingest(p: HaPlatform) -> None:
    p.sigkill(p.workers[0])


FAULTS: list[Fault] = [
    Fault("postgres_primary_sigkill", _kill_primary, _rejoin_primary, restore_after_s=1.0),
    Fault("scheduler_sigkill", _kill_scheduler, lambda p: p.start_scheduler(p.killed_scheduler)),
    Fault("ingest_sigkill", _kill_ingest, lambda p: p.start_worker(0), restore_after_s=1.0),
]


@dataclass
class FaultReport:
    fault: str
    published: int = 0
    confirmed: int = 0
    stored: int = 0
    lost: int = 0
    duplicates: int = 0
    ingest_back_s: float = float("inf")
    dr_signal_s: float = float("inf")
    dispatched_twice: bool = False
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _connect(db_url: str) -> psycopg.Connection:
    return psycopg.connect(db_url, connect_timeout=2, autocommit=True)


def _register(db_url: str, site_ids: Sequence[str]) -> None:
    with psycopg.connect(db_url) as conn:
        for site in site_ids:
            register_site(conn, SiteRecord(site, site, 35.5, 139.6, regions=()), [DeviceSpec(DEVICE, DeviceKind.METER)])
        conn.commit()


def _issue_dr_event(db_url: str, site_id: str, deadline: float) -> str | None:
    """What the API does for an operator: a planned event for one site (here with its plan already made,
    so the scheduler only has to dispatch it). Retried until the database takes writes."""
    event_id = f"ha-{uuid.uuid4().hex[:10]}"
    now = datetime.now(UTC)
    start = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=2)
    while time.monotonic() < deadline:
        try:
            with psycopg.connect(db_url, connect_timeout=2) as conn:
                event = store.create_event(
                    conn, event_id=event_id, kind="peak_cut", start_at=start, end_at=start + timedelta(hours=1),
                    requested_kw=1.0, incentive_jpy_per_kwh=0.0, region_id=None, source="operator",
                    actor="operator:bench-ha", now=now, site_ids=(site_id,),
                )  # fmt: skip
                row = conn.execute("SELECT id FROM sites WHERE site_id = %s", (site_id,)).fetchone()
                assert row is not None
                store.set_event_sites(
                    conn, event.pk, [(int(row[0]), 1.0, 1.0, None)], allocated_kw=1.0, shortfall_kw=0.0
                )
                conn.commit()
                return event_id
        except psycopg.Error:
            time.sleep(0.2)
    return None


def _sites_newer_than(db_url: str, marker: datetime, until: datetime) -> int:
    try:
        with _connect(db_url) as conn:
            row = conn.execute(
                "SELECT count(DISTINCT device_pk) FROM readings WHERE ts > %s AND ts < %s", (marker, until)
            ).fetchone()
            return int(row[0]) if row else 0
    except psycopg.Error:
        return 0


def _dispatched_twice(db_url: str) -> list[str]:
    with _connect(db_url) as conn:
        rows = conn.execute(
            """SELECT e.event_id FROM dr_event_audit a JOIN dr_events e ON e.id = a.event_pk
               WHERE a.to_status = 'dispatched' GROUP BY e.event_id HAVING count(*) > 1"""
        ).fetchall()
    return [str(r[0]) for r in rows]


def _run_phase(
    phase: int,
    fault: Fault,
    platform: HaPlatform,
    fleet: Fleet,
    *,
    duration_s: float,
    interval_s: float,
    anchor: datetime,
) -> FaultReport:
    report = FaultReport(fault.name)
    # Days back from one anchor hour fixed for the whole run: a phase's own hour would slip when the
    # clock crosses an hour between phases, and its window would then hold the previous phase's rows.
    t0 = anchor - timedelta(days=2 + phase)
    window_end = t0 + timedelta(days=1)
    steps = max(int(duration_s / interval_s), 1)
    published: dict[Key, float] = {}
    newest = [t0]
    timeout_s = 120.0

    restorers: list[threading.Timer] = []

    def restore() -> None:
        try:
            fault.restore(platform)
        except Exception as error:  # as in inject: reported with the phase
            report.problems.append(f"restoring after {fault.name} failed: {type(error).__name__}: {error}")

    def inject(at: float) -> None:
        time.sleep(max(0.0, at - time.monotonic()))
        marker, hit = newest[0], time.monotonic()
        try:
            fault.inject(platform)
        except Exception as error:  # a harness failure must fail the phase, not vanish with the thread
            report.problems.append(f"injecting {fault.name} failed: {type(error).__name__}: {error}")
            return
        if fault.restore_after_s is not None:
            restorer = threading.Timer(fault.restore_after_s, restore)
            restorers.append(restorer)
            restorer.start()
        site = fleet.site_ids[phase % len(fleet.site_ids)]
        event_id = _issue_dr_event(platform.db_url, site, hit + timeout_s)
        sites = len(fleet.site_ids)
        while time.monotonic() < hit + timeout_s:
            if report.ingest_back_s == float("inf") and _sites_newer_than(platform.db_url, marker, window_end) == sites:
                report.ingest_back_s = time.monotonic() - hit
            arrived = fleet.signal_arrival(site, event_id) if event_id else None
            if arrived is not None:
                report.dr_signal_s = arrived - hit
            if report.ingest_back_s < float("inf") and (arrived is not None or event_id is None):
                break
            time.sleep(0.1)
        if event_id is None:
            report.problems.append("the DR event could not be written")

    began = time.monotonic()
    faulter = threading.Thread(target=inject, args=(began + 0.3 * duration_s,), name="fault", daemon=True)
    faulter.start()
    for i in range(steps):
        ts = t0 + timedelta(seconds=i)
        for s, site in enumerate(fleet.site_ids):
            counter = 1000.0 + s + i * STEP_KWH
            published[fleet.publish(site, DEVICE, ts, counter, STEP_KWH * 3600)] = counter
        newest[0] = ts
        if i % max(int(2 / interval_s), 1) == 0:
            fleet.resend(older_than_s=15.0)
        time.sleep(max(0.0, began + (i + 1) * interval_s - time.monotonic()))
    faulter.join(timeout_s + 30)
    # Settle: gateways resend what is still unconfirmed until everything is.
    until = time.monotonic() + 90
    while len(fleet.backlog) and time.monotonic() < until:
        fleet.resend(older_than_s=5.0)
        time.sleep(1.0)
    if fault.restore_after_s is None:
        fault.restore(platform)
    for restorer in restorers:  # the next phase starts on a whole platform
        restorer.join(240)
    _verify(report, platform.db_url, t0, window_end, fleet, published)
    return report


def _verify(
    report: FaultReport, db_url: str, t0: datetime, window_end: datetime, fleet: Fleet, published: dict[Key, float]
) -> None:
    with _connect(db_url) as conn:
        rows = conn.execute(
            """SELECT s.site_id, d.device_id, r.ts, r.energy_pos_kwh FROM readings r
               JOIN devices d ON d.id = r.device_pk JOIN sites s ON s.id = d.site_pk
               WHERE r.ts >= %s AND r.ts < %s""",
            (t0, window_end),
        ).fetchall()
    stored: dict[Key, float] = {}
    for site, device, ts, value in rows:
        key = (site, device, ts)
        if key in stored or key not in published or abs(published[key] - value) > 1e-9:
            report.duplicates += 1
        stored[key] = value
    confirmed = fleet.confirmed & published.keys()
    report.published, report.confirmed, report.stored = len(published), len(confirmed), len(stored)
    report.lost = len((published.keys() | confirmed) - stored.keys())
    twice = _dispatched_twice(db_url)
    report.dispatched_twice = bool(twice)
    if report.lost:
        report.problems.append(f"{report.lost} readings lost")
    if report.duplicates:
        report.problems.append(f"{report.duplicates} duplicate or altered rows")
    if twice:
        report.problems.append(f"dispatched twice: {twice}")
    if report.dr_signal_s == float("inf"):
        report.problems.append("the DR signal issued during the fault never reached its site")
    if report.ingest_back_s == float("inf"):
        report.problems.append("ingest did not commit every site's readings again")


@contextmanager
def _platform(workdir: Path, sites: int, standbys: int = 1) -> Iterator[tuple[HaPlatform, Fleet]]:
    formation = Formation(workdir / "pg", standbys=standbys)
    broker = EmbeddedBroker(workdir / "broker")
    try:
        formation.start()
        upgrade(formation.url())  # Alembic over the multi-host URL, as `vpp db upgrade` would
        site_ids = [f"ha-{s:05d}" for s in range(sites)]
        _register(formation.url(), site_ids)
        broker.start()
        platform = HaPlatform(workdir, formation, broker)
        fleet: Fleet | None = None
        try:
            for index in range(2):
                platform.start_worker(index)
                platform.start_scheduler(index)
            fleet = Fleet(site_ids, broker.port)
            if not fleet.wait_connected(30):
                raise TimeoutError("the gateways did not connect")
            yield platform, fleet
        finally:
            if fleet is not None:
                fleet.close()
            platform.close()
    finally:
        broker.stop()
        formation.destroy()


def run_ha_faults(
    *,
    sites: int,
    duration_s: float,
    interval_s: float,
    faults: Sequence[Fault] | None = None,
    workdir: Path | None = None,
    standbys: int = 1,
) -> list[FaultReport]:
    with (
        tempfile.TemporaryDirectory(prefix="vpp-ha-", dir=workdir) as tmp,
        _platform(Path(tmp), sites, standbys) as (
            platform,
            fleet,
        ),
    ):
        _warm_up(platform, fleet)
        anchor = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        return [
            _run_phase(phase, fault, platform, fleet, duration_s=duration_s, interval_s=interval_s, anchor=anchor)
            for phase, fault in enumerate(faults if faults is not None else FAULTS)
        ]


def _warm_up(platform: HaPlatform, fleet: Fleet, timeout_s: float = 60.0) -> None:
    """Until both workers store (their sessions exist at the broker) and a scheduler leads: one reading
    per site a month back, outside every phase's window."""
    ts = datetime.now(UTC).replace(microsecond=0) - timedelta(days=30)
    for site in fleet.site_ids:
        fleet.publish(site, DEVICE, ts, 1.0, 0.0)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (
            _sites_newer_than(platform.db_url, ts - timedelta(seconds=1), ts + timedelta(seconds=1))
            == len(fleet.site_ids)
            and platform.leading_scheduler() is not None
        ):
            return
        fleet.resend(older_than_s=5.0)
        time.sleep(0.5)
    raise TimeoutError("ingest or the schedulers did not start")


def broker_fault_report(sites: int, seed: int | None = None) -> FaultReport:
    """One of two independent brokers SIGKILLed under load (`bench_ha_broker`), as a row of this table.

    It runs on its own private PostgreSQL with two Mosquittos: broker redundancy needs no database
    failover, and the formation's phases stay one fault each. Sites are spread 100 per gateway (at least
    two gateways), 60 readings each.
    """
    from bench.ha_broker import run_broker_fault

    per_gateway = max(1, min(100, sites // 2))
    row = run_broker_fault(seed, sites=sites, sites_per_gateway=per_gateway, readings_per_site=60)
    report = FaultReport(
        fault=f"broker_sigkill (1 of 2, seed {row['seed']})",
        published=int(row["published"]),
        confirmed=int(row["confirmed"]),
        stored=int(row["stored"]),
        lost=int(row["lost"]),
        duplicates=int(row["duplicates"]),
        ingest_back_s=float(row["ingest_recovery_s"]),
        dr_signal_s=float(row["signal_latency_s"]),
    )
    if report.lost or report.duplicates:
        report.problems.append(f"{report.lost} lost, {report.duplicates} duplicates")
    if not row["restarted_broker_has_signal"]:
        report.problems.append("the restarted broker did not get the retained DR signal back")
    return report


def run_bench_ha(
    sites: int, duration_s: float, interval_s: float, *, broker_fault: bool = True, standbys: int = 1
) -> bool:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=150)  # the table's nine columns, also when the output is a file
    console.print(
        f"{sites} sites, a reading per site every {interval_s} s, {duration_s} s per fault, "
        f"{standbys} PostgreSQL standby(s)"
    )
    reports = run_ha_faults(sites=sites, duration_s=duration_s, interval_s=interval_s, standbys=standbys)
    if broker_fault:
        console.print("broker fault: two independent Mosquittos, gateways fail over, the first one SIGKILLed")
        reports.append(broker_fault_report(sites))
    table = Table(title="high availability: one server lost at a time", title_justify="left")
    columns = ("fault", "published", "confirmed", "stored", "lost", "duplicates", "ingest back s", "DR signal s",
               "dispatched twice")  # fmt: skip
    for column in columns:
        table.add_column(column, justify="left" if column == "fault" else "right")
    for r in reports:
        table.add_row(
            r.fault, f"{r.published:,}", f"{r.confirmed:,}", f"{r.stored:,}", str(r.lost), str(r.duplicates),
            f"{r.ingest_back_s:.1f}", f"{r.dr_signal_s:.1f}", "yes" if r.dispatched_twice else "no",
        )  # fmt: skip
    console.print(table)
    for r in reports:
        if r.problems:
            console.print(f"[red]{r.fault}: {'; '.join(r.problems)}[/red]")
    ok = all(r.ok for r in reports)
    console.print("[green]0 lost, 0 duplicates, no event dispatched twice[/green]" if ok else "[red]FAILED[/red]")
    return ok
