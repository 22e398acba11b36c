"""`vpp status`: what the platform holds right now, for a person at a terminal."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import typer
from rich.console import Console
from rich.table import Table

from services.cli.database import CliError, cli_database
from services.cli.platform_file import leftover_servers, read_platform_record
from vpp.domain.slots import JST
from vpp.postgres.platform_status import (
    dead_letter_summary,
    latest_dead_letters,
    latest_slots,
    site_overview,
    totals,
)
from vpp.settings import Settings, load_settings

console = Console()


def status(
    slots: int = typer.Option(6, help="Latest 30-minute rows to show per site"),
    site: str | None = typer.Option(None, help="Only this site (its dead letters too)"),
    dead_letters: int = typer.Option(
        0, "--dead-letters", min=0, max=1000, help="Also list the N newest dead letters: reason, topic, detail"
    ),
) -> None:
    """Whether the platform runs; sites, their latest readings and 30-minute energy, dead letters by reason."""
    settings = load_settings()
    _platform_line(settings)
    with cli_database(settings) as url:
        try:
            _report(url, slots, site, dead_letters)
        except psycopg.errors.UndefinedTable:
            raise CliError(f"the database at {url} holds no platform tables; run `vpp db upgrade`") from None


def _platform_line(settings: Settings) -> None:
    """First line of the report: is a `vpp up` running on this data folder (the file alone may lie)."""
    if settings.database_url:
        console.print(f"database: {settings.database_url.split('@')[-1]} (VPP_DATABASE_URL)")
        return
    record = read_platform_record(settings.data_dir.resolve())
    if record is None:
        console.print("[yellow]platform not running[/yellow] (no `vpp up` on this data folder): stored data only")
    elif not record.alive:
        console.print(
            f"[red]platform not running[/red]: `vpp up` (pid {record.pid}) ended without stopping cleanly "
            "(killed or crashed); stored data only"
        )
        leftovers = leftover_servers(settings.data_dir.resolve(), record)
        if leftovers:
            names = ", ".join(f"{name} (pid {pid})" for name, pid in leftovers)
            console.print(f"  still running from it: {names}; the next `vpp up` takes them over")
    else:
        console.print(
            f"[green]platform running[/green] (pid {record.pid}, {record.phase}): {record.body.get('dashboard_url')}"
        )


def _report(url: str, slots: int, site: str | None, newest_dead: int = 0) -> None:
    now = datetime.now(UTC)
    with psycopg.connect(url) as conn:
        sites = site_overview(conn, site)
        overview = Table(title=f"Sites ({len(sites)} shown)")
        for column in ("site", "name", "devices", "status", "last reading"):
            overview.add_column(column)
        for _pk, site_id, name, last, devices, online in sites:
            age = f"{(now - last).total_seconds():.0f} s ago" if last else "never"
            state = "online" if online else ("offline" if online is False else "—")
            overview.add_row(site_id, name, str(devices), state, age)
        console.print(overview)
        for pk, site_id, *_ in sites[:5]:
            rows = latest_slots(conn, pk, slots)
            table = Table(title=f"{site_id}: latest 30-minute energy (kWh, JST)")
            for column in (
                "slot",
                "import",
                "export",
                "PV",
                "charge",
                "discharge",
                "EV",
                "load",
                "demand kW",
                "coverage",
            ):
                table.add_column(column, justify="right")
            for slot, *values, coverage in rows:
                table.add_row(
                    slot.astimezone(JST).strftime("%Y-%m-%d %H:%M"),
                    *(f"{v:.2f}" for v in values),
                    f"{values[0] * 2:.1f}",
                    f"{coverage:.0%}",
                )
            console.print(table)
        dead = dead_letter_summary(conn, site)
        newest = latest_dead_letters(conn, newest_dead, site) if newest_dead else []
        stored = totals(conn)
    console.print(f"readings stored: {stored[0]:,} · 30-minute rows: {stored[1]:,}")
    if dead:
        table = Table(title="Dead letters by reason")
        for column in ("reason", "messages", "latest"):
            table.add_column(column)
        for reason, count, latest in dead:
            table.add_row(reason, str(count), latest.astimezone(JST).isoformat(timespec="seconds"))
        console.print(table)
    else:
        console.print("dead letters: none")
    if newest:
        table = Table(title=f"Newest {len(newest)} dead letters")
        for column in ("received (JST)", "reason", "topic", "detail", "bytes"):
            table.add_column(column)
        for letter in newest:
            table.add_row(
                letter.received_at.astimezone(JST).isoformat(timespec="seconds"),
                letter.reason,
                letter.topic,
                letter.detail,
                str(letter.payload_bytes),
            )
        console.print(table)
