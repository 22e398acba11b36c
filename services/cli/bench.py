"""`vpp bench …`: each benchmark reports ratios against a reference measured in the same run.

The harness itself is the top-level `bench` package of the source tree, outside the product: the wheel
and the Docker image leave it out. These commands import it lazily, from the checkout this package sits in.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True)

# services/cli/bench.py -> the source tree's root, where bench/ sits beside services/ and vpp/.
_SOURCE_ROOT = Path(__file__).resolve().parents[2]


@app.callback()
def _harness_from_source_checkout() -> None:
    """Benchmarks (ratios against references measured in the same run); they run from a source checkout."""
    if not (_SOURCE_ROOT / "bench" / "__init__.py").is_file():
        typer.echo("vpp bench: benchmarks run from a source checkout (git clone, then `make bench`).", err=True)
        raise typer.Exit(2)
    # The console script's sys.path holds the installed packages, not the checkout's root: add it, first,
    # so `bench` is this tree's harness (never an unrelated installed package of that name).
    if str(_SOURCE_ROOT) not in sys.path:
        sys.path.insert(0, str(_SOURCE_ROOT))


@app.command("ingest")
def ingest(
    messages: int = typer.Option(
        50_000, help="Messages per run of the 1-reading scenario; the 50-reading scenario sends 2/5 as many"
    ),
    naive_messages: int = typer.Option(1_000, help="Messages for the naive ORM reference (it is slow)"),
    modes: str = typer.Option("1,50", help="Readings per message, comma-separated scenarios"),
    database_url: str | None = typer.Option(
        None,
        "--database-url",
        envvar="VPP_TEST_DATABASE_URL",
        help="An external PostgreSQL or TimescaleDB server (role with CREATEDB) instead of a private embedded one",
    ),
) -> None:
    """Broker rate, COPY rate, end-to-end ingest and a naive ORM ingest, measured in one run."""
    from bench.ingest import run_bench_ingest

    run_bench_ingest(
        tuple(int(m) for m in modes.split(",")),
        messages=messages,
        naive_messages=naive_messages,
        database_url=database_url,
    )


@app.command("fuzz")
def fuzz(
    examples: int = typer.Option(100_000, help="Generated messages to run through ingest's decoders"),
    seed: int | None = typer.Option(None, help="Hypothesis seed (default: derandomized, the same every run)"),
) -> None:
    """Fuzz ingest's decoders with generated payloads; no input may end as processing_error."""
    from bench.fuzz import run_bench_fuzz

    run_bench_fuzz(examples, seed)


@app.command("faults")
def faults(
    rounds: int = typer.Option(10, help="Rounds, each with two faults at random moments"),
    seed: int | None = typer.Option(None, help="Seed of the fault schedule (printed; random by default)"),
    readings_per_device: int = typer.Option(150, help="Numbered readings per device per round (20 devices)"),
    resend_always: bool = typer.Option(
        False, help="Gateways resend unconfirmed readings in every round (default: only in broker-SIGKILL rounds)"
    ),
) -> None:
    """Randomized faults (ingest/rollup SIGKILL, broker graceful/SIGKILL, PostgreSQL SIGKILL) against
    independent gateways: published, PUBACKed, confirmed, stored, lost, duplicates, recovery."""
    from bench.faults import run_bench_faults

    run_bench_faults(rounds, seed, readings_per_device, resend_always)


@app.command("ha")
def ha(
    sites: int = typer.Option(2_000, help="Sites publishing, one meter each"),
    duration_s: float = typer.Option(60.0, "--duration", help="Seconds of publishing per fault"),
    interval_s: float = typer.Option(2.0, "--interval", help="Seconds between one site's readings"),
    broker_fault: bool = typer.Option(True, "--broker-fault/--no-broker-fault", help="Also SIGKILL one of two brokers"),
    standbys: int = typer.Option(
        1, min=1, help="PostgreSQL standbys; 2 adds number_sync_standbys = 1 (deploy/ha/README.md's layout)"
    ),
) -> None:
    """Lose one server at a time under load (PostgreSQL primary, a scheduler, an ingest worker, one of two
    brokers: SIGKILL): readings confirmed, stored, lost, duplicates, seconds until ingest commits again
    and until a DR signal issued during the fault reaches its site, events dispatched twice."""
    from bench.ha import run_bench_ha

    raise typer.Exit(
        0 if run_bench_ha(sites, duration_s, interval_s, broker_fault=broker_fault, standbys=standbys) else 1
    )


@app.command("api")
def api(
    sites: int = typer.Option(1050, help="Sites with a fiscal year of 30-minute data"),
    fiscal_year: int = typer.Option(2025, help="Japanese fiscal year to load and query"),
    samples: int = typer.Option(200, help="Latency samples of the fiscal-year query"),
    concurrency: int = typer.Option(32, help="Concurrent connections in the throughput phase"),
    duration_s: float = typer.Option(10.0, "--duration", help="Seconds per throughput phase"),
) -> None:
    """Fiscal-year sufficiency latency and throughput against /healthz, measured in one run."""
    from bench.api import run_bench_api

    run_bench_api(sites=sites, fiscal_year=fiscal_year, samples=samples, concurrency=concurrency, duration_s=duration_s)


@app.command("dr")
def dr(
    sites: int = typer.Option(1050, help="Simulated sites"),
    days: int = typer.Option(10, help="Days of simulated data"),
    regional_sites: int = typer.Option(40, help="Sites of the regional events table"),
    lookahead_slots: int = typer.Option(
        0, min=0, max=48, help="Re-plans also plan this many slots of the next day (0: the day ends at 24:00)"
    ),
    pv_day_index_known: bool = typer.Option(
        False, help="Forecast PV with each day's actual clear-sky index, as a perfect weather forecast would"
    ),
    stochastic_ceiling: bool = typer.Option(
        False, help="Also run the stochastic programme on the simulator's own load model (about 7 minutes more)"
    ),
    pv_forecast_error: float | None = typer.Option(
        None,
        min=0.0,
        max=1.0,
        help="Forecast PV with a day-ahead weather forecast that misses each day's clear-sky index by this sd "
        "(0: perfect); the programme prices in that error, as the scheduler learns it from the forecast's record",
    ),
) -> None:
    """Day-ahead DR planning time and peak reduction vs perfect foresight and a reactive controller."""
    from bench.dr import run_bench_dr

    if pv_day_index_known and pv_forecast_error is not None:
        raise typer.BadParameter("give --pv-day-index-known or --pv-forecast-error, not both")
    run_bench_dr(
        sites, days, regional_sites, lookahead_slots, pv_day_index_known, stochastic_ceiling, pv_forecast_error
    )


@app.command("soak")
def soak(
    sites: int = typer.Option(20_000, help="Simulated sites; each sends one 4-reading batch per interval"),
    minutes: float = typer.Option(5.0, help="How long the fleet publishes"),
    interval_s: float = typer.Option(10.0, "--interval", help="Seconds between one site's messages"),
    workers: int = typer.Option(2, help="Ingest worker processes on the shared subscription"),
    grace_s: float = typer.Option(
        30.0, "--grace", help="Seconds after each fault's restore left out of steady-state lag"
    ),
    timeline: Path | None = typer.Option(None, help="Write per-second lag and throughput to this CSV"),
) -> None:
    """Fault-injection load test: ingest SIGKILL, broker restart and PostgreSQL crash under a simulated fleet."""
    from rich.console import Console

    from bench.soak import run_soak

    result = run_soak(sites, minutes, interval_s, workers, grace_s=grace_s, timeline_csv=timeline, console=Console())
    raise typer.Exit(0 if result.passed else 1)
