"""The `vpp` command: the composition root that may start every part of the platform."""

from __future__ import annotations

import typer

from services.cli import bench, broker_cmd, clients_cmd, db_cmd, dr_cmd, gateway_cmd, platform, status_cmd

app = typer.Typer(no_args_is_help=True, help="Kawasaki regional VPP platform", add_completion=False)
app.command("up")(platform.up)
app.command("ingest")(platform.ingest)
app.command("simulate")(platform.simulate)
app.command("status")(status_cmd.status)
app.command("broker-config")(broker_cmd.broker_config)
app.add_typer(db_cmd.app, name="db", help="Database migrations")
app.add_typer(dr_cmd.app, name="dr", help="Demand response")
app.add_typer(clients_cmd.app, name="clients", help="API clients (OAuth2 client credentials)")
app.add_typer(gateway_cmd.app, name="gateway", help="Site gateways (ECHONET Lite)")
app.add_typer(bench.app, name="bench", help="Benchmarks (ratios against references measured in the same run)")

if __name__ == "__main__":
    app()
