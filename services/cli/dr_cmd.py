"""`vpp dr ...`: run the DR scheduler, request an event, list events, re-verify one, print the settlement report."""

from __future__ import annotations

import csv
import sys
import uuid
from dataclasses import asdict
from datetime import UTC, datetime

import psycopg
import typer
from rich.console import Console
from rich.table import Table

from services.cli.database import CliError, cli_database
from services.dr_scheduler.metrics import SchedulerMetrics
from services.dr_scheduler.verification import VerificationConfig, verify_event
from vpp.domain.dr_events import Direction, event_window_slots
from vpp.domain.slots import JST
from vpp.postgres.connect import connect
from vpp.postgres.dr_events import create_event, list_events
from vpp.postgres.dr_verification import settlement_lines
from vpp.postgres.energy_history import known_site_ids, region_exists, region_site_ids
from vpp.postgres.peak_programme import set_enrolled
from vpp.settings import load_settings

app = typer.Typer(no_args_is_help=True)
console = Console()


@app.command()
def scheduler() -> None:
    """Run the DR scheduler process (as `python -m services.dr_scheduler`)."""
    from services.dr_scheduler.__main__ import main

    main()


def _aware(text: str, name: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{name} must be an ISO 8601 time, e.g. 2026-11-24T13:00+09:00") from None
    if moment.tzinfo is None:
        raise typer.BadParameter(f"{name} needs a UTC offset, e.g. 2026-11-24T13:00+09:00")
    return moment


def _check_sites(conn: psycopg.Connection, region: str | None, sites: list[str] | None) -> None:
    """Refuse, as the API does, an event that would call no site: unknown sites or region, a region without
    members, or named sites none of which is in the region (it would be "dispatched" to nobody)."""
    if sites:
        known = known_site_ids(conn, sites)
        unknown = [s for s in dict.fromkeys(sites) if s not in known]
        if unknown:
            raise CliError(f"no such site: {', '.join(unknown)}; `vpp sites list` lists them")
    if region is None:
        return
    if not region_exists(conn, region):
        raise CliError(f"no region {region!r}")
    members = set(region_site_ids(conn, region))
    if not members:
        raise CliError(f"region {region!r} has no member sites")
    if sites and not members & set(sites):
        raise CliError(f"none of the sites named is a member of region {region!r}")


@app.command()
def create(
    start: str = typer.Option(..., help="Window start, slot-aligned, with offset (2026-11-24T13:00+09:00)"),
    end: str = typer.Option(..., help="Window end, the same JST day"),
    kw: float = typer.Option(..., min=0.001, help="Regional change asked for, kW"),
    direction: Direction = typer.Option(
        Direction.REDUCE, help="reduce: X kW less (import limits); increase: X kW more (import floors)"
    ),
    incentive: float = typer.Option(0.0, min=0.0, help="JPY per kWh delivered"),
    region: str | None = typer.Option(None, help="Only this region's sites"),
    site: list[str] | None = typer.Option(None, help="Only these sites (repeat the option)"),
    event_id: str | None = typer.Option(None, help="Event id (default: generated)"),
) -> None:
    """Request a regional DR event; the scheduler process plans and dispatches it, as for the API."""
    start_at, end_at = _aware(start, "--start"), _aware(end, "--end")
    try:
        event_window_slots(start_at, end_at)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    now = datetime.now(UTC)
    if end_at <= now:
        raise typer.BadParameter("the event window has already ended")
    with cli_database(load_settings()) as url, connect(url) as conn:
        _check_sites(conn, region, site or None)
        try:
            event = create_event(
                conn, event_id=event_id or f"dr-{uuid.uuid4().hex[:12]}", kind="peak_cut", start_at=start_at,
                end_at=end_at, requested_kw=kw, incentive_jpy_per_kwh=incentive, region_id=region,
                source="operator", actor="cli", now=now, site_ids=site or None, pending_action="plan",
                direction=direction.value,
            )  # fmt: skip
        except psycopg.errors.UniqueViolation:
            raise CliError(f"event {event_id!r} already exists; `vpp dr events` lists them") from None
        conn.commit()
    console.print(f"requested {event.event_id}: {direction.value} {kw:g} kW; the scheduler plans and dispatches it")


@app.command()
def events(
    limit: int = typer.Option(50, help="How many, newest first"),
    utc: bool = typer.Option(False, "--utc", help="Times in UTC instead of Japan time"),
) -> None:
    """List DR events with their lifecycle status (times in JST unless --utc)."""
    with cli_database(load_settings()) as url, connect(url) as conn:
        rows = list_events(conn, limit=limit)
    zone, label = (UTC, "UTC") if utc else (JST, "JST")
    table = Table("event", "status", "direction", f"start ({label})", f"end ({label})", "requested kW", "allocated kW",
                  "source")  # fmt: skip
    for e in rows:
        start, end = e.start_at.astimezone(zone), e.end_at.astimezone(zone)
        table.add_row(e.event_id, str(e.status), e.direction, f"{start:%Y-%m-%d %H:%M}", f"{end:%H:%M}",
                      f"{e.requested_kw:g}", f"{e.allocated_kw:.1f}", e.source)  # fmt: skip
    console.print(table)


@app.command()
def verify(event_id: str) -> None:
    """Recompute an event's baselines and reductions now (e.g. after late data arrived)."""
    with cli_database(load_settings()) as url, connect(url) as conn:
        try:
            sites = verify_event(conn, event_id, datetime.now(UTC), VerificationConfig(), SchedulerMetrics())
        except LookupError:
            raise CliError(f"no DR event {event_id!r}; `vpp dr events` lists them") from None
    console.print(f"verified {sites} site(s) of {event_id}")


@app.command()
def settlement(as_csv: bool = typer.Option(False, "--csv", help="CSV on stdout instead of a table")) -> None:
    """Verified reductions × incentive, per event and site."""
    with cli_database(load_settings()) as url, connect(url) as conn:
        lines = settlement_lines(conn)
    if as_csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=list(asdict(lines[0]).keys()) if lines else ["event_id"])
        writer.writeheader()
        for line in lines:
            writer.writerow(asdict(line))
        return
    table = Table("event", "site", "delivered kWh", "settled kWh", "JPY/kWh", "amount JPY", "method")
    for line in lines:
        table.add_row(line.event_id, line.site_id, f"{line.delivered_kwh:.2f}", f"{line.settled_kwh:.2f}",
                      f"{line.incentive_jpy_per_kwh:g}", f"{line.amount_jpy:,.0f}", line.method)  # fmt: skip
    console.print(table)


@app.command("peak-programme")
def peak_programme(
    site: str = typer.Argument(..., help="Site id"),
    off: bool = typer.Option(False, "--off", help="Withdraw the site instead of enrolling it"),
) -> None:
    """Enrol a battery site in the day's peak programme (each 30-minute slot's import limit, sent by the
    scheduler from live telemetry), or withdraw it with --off. The dashboard's site panel shows what it does."""
    with cli_database(load_settings()) as url, connect(url) as conn:
        if not set_enrolled(conn, site, not off):
            raise CliError(f"no site {site!r}; `vpp status` lists the sites")
        conn.commit()
    if off:
        console.print(f"{site} withdrawn from the peak programme: the scheduler cancels its event for today")
    else:
        console.print(f"{site} enrolled in the peak programme: the scheduler sends its first limit within a slot")
