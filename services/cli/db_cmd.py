from __future__ import annotations

import typer
from rich.console import Console

from services.cli.database import cli_database
from vpp.embedded.resolve import ensure_database
from vpp.postgres import migrate
from vpp.settings import load_settings

app = typer.Typer(no_args_is_help=True)
console = Console()


@app.command()
def upgrade(revision: str = "head") -> None:
    """Apply migrations (to the embedded server when VPP_DATABASE_URL is unset)."""
    with cli_database(load_settings(), create=True) as url:
        migrate.upgrade(url, revision)
    console.print(f"[green]database at {revision}[/green]")


@app.command()
def downgrade(revision: str = "base") -> None:
    """Revert migrations down to `revision` (default: an empty database)."""
    with cli_database(load_settings()) as url:
        migrate.downgrade(url, revision)
    console.print(f"[yellow]database at {revision}[/yellow]")


@app.command()
def url() -> None:
    """Print the database URL in use (starting the embedded server if needed)."""
    database_url, _server = ensure_database(load_settings())
    print(database_url)
