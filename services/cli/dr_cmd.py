"""`vpp dr ...`: run the DR scheduler, list events, re-verify one, print the settlement report."""

from __future__ import annotations

import csv
import sys
from dataclasses import asdict
from datetime import UTC, datetime

import typer
from rich.console import Console
from rich.table import Table

from services.dr_scheduler.metrics import SchedulerMetrics
from services.dr_scheduler.verification import VerificationConfig, verify_event
from vpp.embedded.resolve import ensure_database
from vpp.postgres.connect import connect
from vpp.postgres.dr_events import list_events
from vpp.postgres.dr_verification import settlement_lines
from vpp.settings import load_settings

app = typer.Typer(no_args_is_help=True)
console = Console()


@app.command()
def scheduler() -> None:
    """Run the DR scheduler process (as `python -m services.dr_scheduler`)."""
    from services.dr_scheduler.__main__ import main

    main()


@app.command()
def events(limit: int = typer.Option(50, help="How many, newest first")) -> None:
    """List DR events with their lifecycle status."""
    url, _server = ensure_database(load_settings())
    with connect(url) as conn:
        rows = list_events(conn, limit=limit)
    table = Table("event", "status", "start (UTC)", "end (UTC)", "requested kW", "allocated kW", "source")
    for e in rows:
        table.add_row(e.event_id, str(e.status), f"{e.start_at:%Y-%m-%d %H:%M}", f"{e.end_at:%H:%M}",
                      f"{e.requested_kw:g}", f"{e.allocated_kw:.1f}", e.source)  # fmt: skip
    console.print(table)


@app.command()
def verify(event_id: str) -> None:
    """Recompute an event's baselines and reductions now (e.g. after late data arrived)."""
    url, _server = ensure_database(load_settings())
    with connect(url) as conn:
        sites = verify_event(conn, event_id, datetime.now(UTC), VerificationConfig(), SchedulerMetrics())
    console.print(f"verified {sites} site(s) of {event_id}")


@app.command()
def settlement(as_csv: bool = typer.Option(False, "--csv", help="CSV on stdout instead of a table")) -> None:
    """Verified reductions × incentive, per event and site."""
    url, _server = ensure_database(load_settings())
    with connect(url) as conn:
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
