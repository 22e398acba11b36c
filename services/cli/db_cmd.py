from __future__ import annotations

import typer
from rich.console import Console

from vpp.embedded.resolve import ensure_database
from vpp.postgres import migrate
from vpp.settings import load_settings

app = typer.Typer(no_args_is_help=True)
console = Console()


@app.command()
def upgrade(revision: str = "head") -> None:
    """Apply migrations (to the embedded server when VPP_DATABASE_URL is unset)."""
    url, _server = ensure_database(load_settings())
    migrate.upgrade(url, revision)
    console.print(f"[green]database at {revision}[/green]")


@app.command()
def downgrade(revision: str = "base") -> None:
    """Revert migrations down to `revision` (default: an empty database)."""
    url, _server = ensure_database(load_settings())
    migrate.downgrade(url, revision)
    console.print(f"[yellow]database at {revision}[/yellow]")


@app.command()
def url() -> None:
    """Print the database URL in use (starting the embedded server if needed)."""
    database_url, _server = ensure_database(load_settings())
    print(database_url)
