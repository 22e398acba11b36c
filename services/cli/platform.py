"""`vpp up`, `vpp ingest` and `vpp simulate`: run the platform and its simulated sites."""

from __future__ import annotations

import logging
import signal
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType

import psycopg
import typer
from rich.console import Console
from rich.live import Live
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from services.cli.broker_cmd import ACL_FILE, DYNSEC_FILE, PASSWORD_FILE, embedded_broker_roles
from services.cli.platform_file import read_platform_record
from services.cli.seed import (
    DEMO_SITES,
    DEPOT,
    demo_site_is_public,
    register_simulated_site,
    seed_defaults,
    seed_published_figures,
)
from services.cli.stack import PlatformStack, StartupError
from services.ingest.worker import IngestWorker
from vpp.broker_roles import dynamic_security_plugin
from vpp.embedded.broker import EmbeddedBroker
from vpp.embedded.postgres import EmbeddedPostgres
from vpp.embedded.resolve import ensure_brokers, ensure_database
from vpp.log import configure_logging
from vpp.mqtt import BrokerAddress, parse_broker_urls
from vpp.postgres.connect import connect
from vpp.postgres.energy_history import recent_slots
from vpp.postgres.migrate import upgrade
from vpp.settings import Settings, load_settings
from vpp.simulation.fleet import SiteFleet
from vpp.simulation.model import SiteSimulator, fleet_specs
from vpp.simulation.publisher import SimulationPublisher

console = Console()

GENERATED_RENEWABLE_SHARE = 0.3
# Eight days hold a complete weekday and a complete weekend day whatever the start (the DR forecast takes
# similar days of the same type), and the 5-minute backlog of one site is sent in a few seconds.
DR_READY_BACKFILL_HOURS = 192.0


def _log_to_file(settings: Settings) -> Path:
    # The terminal belongs to the live view; structured logs go to a file beside the data.
    path = settings.data_dir.resolve() / "logs" / "vpp.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    configure_logging(settings.log_level, "json")
    root = logging.getLogger()
    handler = logging.FileHandler(path)
    handler.setFormatter(root.handlers[0].formatter)
    root.handlers[:] = [handler]
    return path


def _stop_event() -> threading.Event:
    stop = threading.Event()

    def handler(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop


def up(
    duration_s: float = typer.Option(0.0, "--duration", help="Seconds to run; 0 runs until Ctrl-C"),
    interval_s: float = typer.Option(5.0, "--interval", help="Simulated gateway publishing interval"),
    backfill_hours: float = typer.Option(
        DR_READY_BACKFILL_HOURS,
        "--backfill-hours",
        help="History the sites send first; the default 8 days give the DR forecast a complete weekday and "
        "weekend day, so the first DR event plans a real reduction (less: events allocate 0 kW until then)",
    ),
    sites: int = typer.Option(
        DEMO_SITES, "--sites", help="Simulated sites (the depot plus generated ones; private and public mixed)"
    ),
    api_port: int | None = typer.Option(None, "--api-port", help="Dashboard and API port (default VPP_API_PORT)"),
    depot_protocol: str = typer.Option(
        "mqtt",
        "--depot-protocol",
        help="How the depot takes part in DR: mqtt (signals, acks and telemetry over MQTT) or oadr2b (an "
        "OpenADR 2.0b VEN over TLS with a client certificate; also starts the 2.0b VTN, development "
        "certificates in the data folder)",
    ),
) -> None:
    """Start everything on embedded defaults: database, broker, ingest, DR scheduler, API with the
    dashboard, and simulated sites (the Yamato depot first) whose EMS obeys DR signals."""
    if depot_protocol not in ("mqtt", "oadr2b"):
        raise typer.BadParameter("must be mqtt or oadr2b", param_hint="--depot-protocol")
    # The development platform, said explicitly: everywhere else production is the default.
    settings = load_settings(environment="development")
    oadr2b_sites = frozenset({DEPOT.site_id} if depot_protocol == "oadr2b" else ())
    _refuse_second_platform(settings)
    log_path = _log_to_file(settings)
    stop = _stop_event()
    db_server: EmbeddedPostgres | None = None
    broker_server: EmbeddedBroker | None = None
    stack: PlatformStack | None = None
    clean = False
    try:
        with console.status("starting PostgreSQL…"):
            database_url, db_server = ensure_database(settings)
            upgrade(database_url)
            specs = [DEPOT, *fleet_specs(sites, seed=1)[1:]]
            with connect(database_url) as conn:
                seed_defaults(conn)
                seed_published_figures(conn)
                for spec in specs[1:]:
                    # Generated sites are city facilities on partly renewable contracts; the depot is 100%.
                    public = demo_site_is_public(spec.site_id)
                    register_simulated_site(conn, spec, is_public=public, renewable_share=GENERATED_RENEWABLE_SHARE)
                conn.commit()
        _done("PostgreSQL", database_url + (" (embedded)" if db_server else ""))
        with console.status("starting the MQTT broker…"):
            brokers, broker_server, site_passwords = _start_broker(settings, database_url, [s.site_id for s in specs])
        broker = brokers[0]
        where = ", ".join(f"mqtt://{b.host}:{b.port}" for b in brokers)
        _done("MQTT broker", where + _broker_note(broker_server))
        stack = PlatformStack(
            settings, database_url, broker, broker_server.pid if broker_server else None, more_brokers=brokers[1:]
        )
        with console.status("starting ingest…"):
            worker = stack.start_ingest()
        _done("ingest", f"{settings.ingest_client_id}, metrics {_metrics(stack.endpoints.ingest_metrics_url)}")
        with console.status("starting the API and the dashboard…"):
            api_url = stack.start_api(settings.api_host, settings.api_port if api_port is None else api_port)
        login = " (log in as dev-operator / dev-operator-secret)" if settings.environment == "development" else ""
        _done("dashboard", f"{api_url}/{login}")
        _done("API", f"{api_url}/docs · OpenADR 3.1 VTN {api_url}/openadr3/3.1.0")
        now = datetime.now(UTC).replace(microsecond=0)
        start = now - timedelta(hours=backfill_hours)
        with console.status("connecting the simulated sites…"):
            publisher = stack.start_sites(specs, start, site_passwords, oadr2b_sites=oadr2b_sites)
        _done(
            "sites",
            f"{len(specs)} simulated ({', '.join(s.site_id for s in specs[:3])}{'…' if len(specs) > 3 else ''})",
        )
        stack.write_platform_file("backfill")
        if backfill_hours > 0:
            _backfill(stack, start, now, worker)
        if oadr2b_sites:
            with console.status("starting the OpenADR 2.0b VTN and the depot's VEN…"):
                vtn_url = _start_oadr2b(stack, settings, database_url, oadr2b_sites)
            _done("2.0b VTN", f"{vtn_url} (development certificates in {settings.data_dir.resolve() / 'oadr2b'})")
            _done("depot", "an OpenADR 2.0b VEN: registered, polls its events, reports usage per 30 minutes")
        with console.status("starting the DR scheduler…"):
            stack.start_scheduler()
        _done(
            "DR scheduler",
            f"signals on vpp/v1/{{site}}/dr/signal, metrics {_metrics(stack.endpoints.scheduler_metrics_url)}",
        )
        path = stack.write_platform_file("live")
        console.print(f"  endpoints in {path}, logs in {log_path}")
        shown = next((s.site_id for s in specs if s.site_id not in oadr2b_sites), DEPOT.site_id)
        _live(stack, publisher, worker, database_url, interval_s, duration_s, stop, shown)
        clean = True
    finally:
        # Stop whatever did start, whatever failed; only a run that ended as asked says "stopped cleanly"
        # (the error itself is printed as one line by `vpp`'s entry point, after this).
        with console.status("stopping…"):
            if stack is not None:
                stack.close()
            if broker_server:
                broker_server.stop()
            if db_server:
                db_server.stop()
        if clean:
            console.print("[green]stopped cleanly[/green]")
        else:
            console.print("[yellow]stopped: everything this run started is shut down[/yellow]")


def _start_broker(
    settings: Settings, database_url: str, site_ids: list[str]
) -> tuple[list[BrokerAddress], EmbeddedBroker | None, dict[str, str]]:
    """The configured brokers as they are; or the embedded Mosquitto under the production broker rules,
    generated as `vpp broker-config` generates them, with a fresh secret for each simulated site
    (returned, for their gateways; kept in memory only)."""
    if settings.broker_urls:
        return ensure_brokers(settings)[0], None, {}
    server = EmbeddedBroker(settings.data_dir / "broker")
    # A Mosquitto an earlier run left on this folder (after kill -9) still holds the old accounts.
    leftover = server.stop_leftover()
    if leftover is not None:
        console.print(f"[yellow]stopped the embedded Mosquitto (pid {leftover}) a previous run left behind[/yellow]")
    passwords: dict[str, str] = {}
    if server.mosquitto_binary() is not None:
        auth_dir = server.data_dir / "auth"
        passwords = embedded_broker_roles(database_url, settings, site_ids, auth_dir)
        if dynamic_security_plugin() is not None:
            server.dynamic_security_file = auth_dir / DYNSEC_FILE
        else:
            # Mosquitto without the plugin: the same accounts and ACL, but subscriptions are not checked.
            server.password_file, server.acl_file = auth_dir / PASSWORD_FILE, auth_dir / ACL_FILE
            logging.getLogger("vpp.platform").warning(
                "this Mosquitto has no dynamic-security plugin: the embedded broker checks passwords and "
                "publications but not subscriptions ($share, other sites' topics)"
            )
    info = server.start()
    return [BrokerAddress(info.host, info.port, mqtt5=info.mqtt5)], server, passwords


def _broker_note(server: EmbeddedBroker | None) -> str:
    if server is None:
        return ""
    note = f"(embedded, {server.roles})"
    return f" {note}" if server.roles_enforced else f" [yellow]{note}[/yellow]"


def _start_oadr2b(stack: PlatformStack, settings: Settings, database_url: str, site_ids: frozenset[str]) -> str:
    """The 2.0b VTN on development certificates, and the depot switched to a 2.0b VEN onboarded to it."""
    from services.cli.oadr2b_dev import DEPOT_VEN_NAME, dev_pki, onboard_dev_ven
    from services.oadr2b.settings import Oadr2bSettings

    pki = dev_pki(settings.data_dir.resolve())
    with connect(database_url) as conn:
        onboard_dev_ven(conn, DEPOT.site_id, pki.ven.fingerprint)
        conn.commit()
    # Port, poll interval and VTN ID from VPP_OADR2B_*; the certificates are always the development ones.
    vtn_settings = Oadr2bSettings(tls_cert=pki.vtn.cert, tls_key=pki.vtn.key, tls_ca=pki.ca.cert, insecure_http=False)
    url = stack.start_oadr2b_vtn(vtn_settings)
    stack.start_oadr2b_sites(site_ids, ven_name=DEPOT_VEN_NAME, cert=pki.ven.cert, key=pki.ven.key,
                             ca_file=pki.ca.cert, vtn_fingerprint=pki.vtn.fingerprint)  # fmt: skip
    return url


def _refuse_second_platform(settings: Settings) -> None:
    record = read_platform_record(settings.data_dir.resolve())
    if record is None:
        return
    if record.alive:
        raise StartupError(
            f"the platform already runs on {settings.data_dir} (pid {record.pid}, {record.body.get('dashboard_url')}); "
            "stop it first or set VPP_DATA_DIR to another folder"
        )
    console.print(f"[yellow]the previous `vpp up` (pid {record.pid}) did not stop cleanly; starting afresh[/yellow]")


def _metrics(url: str | None) -> str:
    return url if url and url.startswith("http") else f"[yellow]{url or 'off'}[/yellow]"


def _done(what: str, detail: str) -> None:
    console.print(f"[green]✓[/green] {what:<12} {detail}")


def _backfill(stack: PlatformStack, start: datetime, end: datetime, worker: IngestWorker) -> None:
    assert stack.publisher is not None
    publisher = stack.publisher
    total_s = (end - start).total_seconds()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeRemainingColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("site gateways send their backlog", total=total_s)
        stack.send_backlog(start, end, progress=lambda s: progress.advance(task, s))
        ingest_task = progress.add_task("ingest commits it", total=publisher.published)
        while worker.inbox.qsize() > 0:
            progress.update(ingest_task, completed=publisher.published - worker.inbox.qsize())
            time.sleep(0.2)
        progress.update(ingest_task, completed=publisher.published)


def _live(
    stack: PlatformStack,
    publisher: SiteFleet,
    worker: IngestWorker,
    database_url: str,
    interval_s: float,
    duration_s: float,
    stop: threading.Event,
    shown_site: str,
) -> None:
    began = time.monotonic()
    with Live(console=console, refresh_per_second=2) as live, psycopg.connect(database_url, autocommit=True) as conn:
        while not stop.is_set() and (duration_s <= 0 or time.monotonic() - began < duration_s):
            stack.step_sites(datetime.now(UTC))
            live.update(_status_table(conn, worker, publisher, shown_site, stack))
            stop.wait(interval_s)


def _status_table(
    conn: psycopg.Connection, worker: IngestWorker, publisher: SiteFleet, site_id: str, stack: PlatformStack
) -> Table:
    m = worker.metrics
    table = Table(title=f"Kawasaki VPP — live, {site_id} (Ctrl-C to stop)", title_justify="left")
    for column in (
        "slot (JST)",
        "import kWh",
        "PV kWh",
        "battery out−in kWh",
        "EV kWh",
        "load kWh",
        "demand kW",
        "coverage",
    ):
        table.add_column(column, justify="right")
    from vpp.domain.slots import JST

    for slot, imp, pv, batt, ev, load, cov in recent_slots(conn, site_id):
        table.add_row(
            slot.astimezone(JST).strftime("%m-%d %H:%M"),
            f"{imp:.2f}",
            f"{pv:.2f}",
            f"{batt:+.2f}",
            f"{ev:.2f}",
            f"{load:.2f}",
            f"{imp * 2:.1f}",
            f"{cov:.0%}",
        )
    table.caption = (
        f"messages published {publisher.published:,} · acked by broker {publisher.acked:,} · readings written "
        f"{m.written._value.get():,.0f} · duplicates {m.duplicates._value.get():,.0f} · dead letters "
        f"{sum(s.value for metric in m.rejected.collect() for s in metric.samples if s.name.endswith('_total')):,.0f}"
        f" · queue {worker.inbox.qsize()} · confirmed stored {publisher.confirmed:,}"
        f" · awaiting confirmation {publisher.awaiting_confirmation:,}"
    )
    for ven in stack.vens:
        answered = ", ".join(f"{e} #{n} {opt}" for e, n, _status, opt in ven.answered[-3:]) or "no events yet"
        table.caption += f"\n{ven.site_id} on OpenADR 2.0b ({ven.ven_name}): {answered}"
    return table


def ingest() -> None:
    """Run one ingest worker (same as `python -m services.ingest`)."""
    from services.ingest.__main__ import main

    main()


def simulate(
    sites: int = typer.Option(1, "--sites", help="Number of simulated sites"),
    interval_s: float = typer.Option(10.0, "--interval", help="Seconds between readings"),
    duration_s: float = typer.Option(60.0, "--duration", help="Seconds to run"),
    broker_url: str | None = typer.Option(
        None,
        "--broker-url",
        help="Defaults to VPP_MQTT_URLS/VPP_MQTT_URL or the embedded broker; several comma-separated",
    ),
    register: bool = typer.Option(True, help="Register the simulated sites in the database first"),
    seed: int = typer.Option(1, help="Random seed of the fleet"),
    echonet_homes: int = typer.Option(
        0, "--echonet-homes", help="Instead: N emulated ECHONET Lite homes, each behind `vpp gateway echonet` (root)"
    ),
) -> None:
    """Publish realistic telemetry for N sites (PV, load, EVs, battery EMS) to the broker."""
    settings = load_settings()
    configure_logging("WARNING", "console")
    running = read_platform_record(settings.data_dir.resolve())
    if not (broker_url or settings.mqtt_url) and running is not None and running.alive:
        # Its broker runs the production rules: sites without an account would only be refused.
        raise StartupError(
            f"`vpp up` runs on {settings.data_dir} (pid {running.pid}) and its broker admits only registered "
            "sites with their own secrets; stop it first, or pass --broker-url for another broker"
        )
    if echonet_homes > 0:
        from services.cli.echonet_sim import simulate_echonet_homes  # pychonet and uecho only when asked for

        simulate_echonet_homes(settings, echonet_homes, interval_s, duration_s, broker_url, register, seed)
        return
    specs = fleet_specs(sites, seed=seed)
    if register:
        database_url, _ = ensure_database(settings)
        upgrade(database_url)
        with connect(database_url) as conn:
            seed_defaults(conn)
            for spec in specs[1:]:
                register_simulated_site(conn, spec)
            conn.commit()
    configured = broker_url or ",".join(settings.broker_urls)
    brokers: list[BrokerAddress] = parse_broker_urls(configured) if configured else ensure_brokers(settings)[0]
    now = datetime.now(UTC)
    publisher = SimulationPublisher([SiteSimulator(s, now, seed=i) for i, s in enumerate(specs)], brokers)
    stop = _stop_event()
    steps = max(int(duration_s / interval_s), 1)
    with Progress(
        TextColumn("publishing {task.fields[sites]} sites"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} steps"),
        TextColumn("{task.fields[msgs]:,} msgs"),
        console=console,
    ) as progress:
        task = progress.add_task("sim", total=steps, sites=sites, msgs=0)
        next_at = time.monotonic()
        for _ in range(steps):
            if stop.is_set():
                break
            publisher.step(datetime.now(UTC))
            progress.update(task, advance=1, msgs=publisher.published)
            next_at += interval_s
            stop.wait(max(next_at - time.monotonic(), 0))
    publisher.wait_acked(60)
    publisher.close()
    console.print(
        f"published {publisher.published:,} messages, all acknowledged by the broker: {publisher.acked >= publisher.published}"
    )
