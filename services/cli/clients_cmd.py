"""`vpp clients add/list/revoke`: OAuth2 client-credentials clients of the API."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from services.cli.database import cli_database
from vpp.postgres.api_clients import Role, add_client, list_clients, new_secret, revoke_client
from vpp.postgres.connect import connect
from vpp.settings import load_settings

app = typer.Typer(no_args_is_help=True, help="API clients (OAuth2 client credentials)")
console = Console()
_ROLES: tuple[Role, ...] = ("operator", "city", "site")


@app.command("add")
def add(
    client_id: str = typer.Argument(..., help="Client id, e.g. city-climate-office"),
    role: str = typer.Option(..., "--role", help="operator, city or site"),
    site: str | None = typer.Option(None, "--site", help="The site a `site` client may read"),
    description: str = typer.Option("", "--description", help="Who uses it, for the listing"),
) -> None:
    """Create a client and print its secret once (only a hash is stored)."""
    if role not in _ROLES:
        console.print(f"[red]--role must be one of {', '.join(_ROLES)}[/red]")
        raise typer.Exit(2)
    secret = new_secret()
    with cli_database(load_settings()) as url, connect(url) as conn:
        try:
            add_client(conn, client_id, secret, role, site, description)  # type: ignore[arg-type]
        except ValueError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from None
        conn.commit()
    console.print(f"client [bold]{client_id}[/bold] ({role}{f', site {site}' if site else ''}) created")
    console.print("client secret (shown once, store it now):")
    print(secret)


@app.command("list")
def list_() -> None:
    """List clients; secrets are never shown."""
    with cli_database(load_settings()) as url, connect(url) as conn:
        clients = list_clients(conn)
    table = Table("client_id", "role", "site", "created", "revoked", "description")
    for c in clients:
        table.add_row(
            c.client_id,
            c.role,
            c.site_id or "",
            c.created_at.isoformat(timespec="seconds"),
            c.revoked_at.isoformat(timespec="seconds") if c.revoked_at else "",
            c.description,
        )
    console.print(table)


@app.command("revoke")
def revoke(client_id: str = typer.Argument(..., help="The client to revoke")) -> None:
    """Revoke a client: no new tokens at once; its tokens stop working within seconds."""
    with cli_database(load_settings()) as url, connect(url) as conn:
        found = revoke_client(conn, client_id)
        conn.commit()
    if not found:
        console.print(f"[red]no active client {client_id!r}[/red]")
        raise typer.Exit(1)
    console.print(f"client [bold]{client_id}[/bold] revoked")
