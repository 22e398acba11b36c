"""The `vpp` command: the composition root that may start every part of the platform.

Subcommands are imported only when they run: `vpp --help` and `vpp db --help` must not pay for FastAPI,
SciPy and pvlib (importing everything took about 5 s). Errors reach a person as one line naming what to
change; `--debug` (or VPP_DEBUG=1) shows the traceback instead.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import typer
from typer.core import TyperGroup

__all__ = ["app", "main"]

# name → (module, attribute, one-line help shown by `vpp --help` without importing the module)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "up": ("services.cli.platform", "up", "Start everything on embedded defaults, with simulated sites."),
    "status": ("services.cli.status_cmd", "status", "Is the platform running; sites, 30-minute energy, dead letters."),
    "ingest": ("services.cli.platform", "ingest", "Run one ingest worker."),
    "simulate": ("services.cli.platform", "simulate", "Publish realistic telemetry for N simulated sites."),
    "dr": ("services.cli.dr_cmd", "app", "Demand response: create, list, verify events; settlement; scheduler."),
    "sites": ("services.cli.sites_cmd", "app", "Register sites and their devices (commissioning)."),
    "clients": ("services.cli.clients_cmd", "app", "API clients (OAuth2 client credentials)."),
    "broker-config": ("services.cli.broker_cmd", "broker_config", "Mosquitto password and ACL files, site secrets."),
    "db": ("services.cli.db_cmd", "app", "Database migrations."),
    "bench": ("services.cli.bench", "app", "Benchmarks (ratios against references measured in the same run)."),
    "oadr2b": ("services.cli.oadr2b_cmd", "app", "OpenADR 2.0b VTN (JSCA DR interface) and its VENs."),
    "gateway": ("services.cli.gateway_cmd", "app", "Site gateways (ECHONET Lite)."),
}


def _load(name: str) -> Any:
    module_name, attribute, _help = COMMANDS[name]
    target = getattr(importlib.import_module(module_name), attribute)
    command: Any
    if isinstance(target, typer.Typer):
        target._add_completion = False  # completion is installed for `vpp`, not per subcommand
        command = typer.main.get_group(target)  # a group even with one subcommand (`vpp gateway echonet`)
    else:
        single = typer.Typer(add_completion=False)
        single.command(name)(target)
        command = typer.main.get_command(single)
    command.name = name
    return command


class LazyGroup(TyperGroup):
    """Typer's group, with subcommands imported on first use and help text that needs no import."""

    def list_commands(self, ctx: Any) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        return _load(cmd_name) if cmd_name in COMMANDS else None

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, text) for name, (_m, _a, text) in COMMANDS.items()])


# rich_markup_mode=None: Typer's rich help would load every subcommand to list it.
app = typer.Typer(cls=LazyGroup, add_completion=False, rich_markup_mode=None, no_args_is_help=True)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks instead of one-line errors (or VPP_DEBUG=1)."),
) -> None:
    """Kawasaki regional VPP platform."""
    if debug:
        os.environ["VPP_DEBUG"] = "1"


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `vpp` script: exit codes and one-line errors."""
    args = sys.argv[1:] if argv is None else argv
    command = typer.main.get_command(app)
    try:
        # Standalone mode: usage errors, Exit and Abort are reported by click and end in SystemExit.
        command.main(args=args, prog_name="vpp", standalone_mode=True)
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # the last line of defence: one line for a person
        if os.environ.get("VPP_DEBUG") == "1":
            raise
        from services.cli.errors import one_line

        typer.echo(f"error: {one_line(error)}", err=True)
        typer.echo("(run with --debug for the traceback)", err=True)
        return 1
    return 0


def _entry() -> Any:  # pragma: no cover - the console script
    sys.exit(main())


if __name__ == "__main__":
    _entry()
