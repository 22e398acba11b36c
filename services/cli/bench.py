"""`vpp bench …`: each benchmark reports ratios against a reference measured in the same run."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True)


@app.command("ingest")
def ingest(
    messages: int = typer.Option(20_000, help="Messages per scenario (1 reading each; batch scenario scales)"),
    naive_messages: int = typer.Option(1_000, help="Messages for the naive ORM reference (it is slow)"),
    modes: str = typer.Option("1,50", help="Readings per message, comma-separated scenarios"),
) -> None:
    """Broker rate, COPY rate, end-to-end ingest and a naive ORM ingest, measured in one run."""
    from services.cli.bench_ingest import run_bench_ingest

    run_bench_ingest(tuple(int(m) for m in modes.split(",")), messages=messages, naive_messages=naive_messages)
