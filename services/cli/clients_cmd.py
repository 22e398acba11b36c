"""`vpp clients add/list/revoke/grant/ungrant`: OAuth2 client-credentials clients of the API
(roles operator, city, site) and of the OpenADR VTN (roles bl: a utility's business logic, and ven).

OpenADR clients live in their own table with the spec's scopes (`vpp.postgres.openadr_clients`);
their tokens come from ``/openadr3/3.1.0/auth/token`` and are not valid on ``/api/v1``.
"""

from __future__ import annotations

from datetime import UTC, datetime

import typer
from rich.console import Console
from rich.table import Table

from services.cli.database import cli_database
from vpp.postgres.api_clients import Role, add_client, list_clients, new_secret, revoke_client
from vpp.postgres.connect import connect
from vpp.postgres.openadr_clients import (
    add_openadr_client,
    grant_ven_sites,
    list_openadr_clients,
    revoke_openadr_client,
    ungrant_ven_sites,
)
from vpp.settings import load_settings

app = typer.Typer(no_args_is_help=True, help="API clients (OAuth2 client credentials)")
console = Console()
_ROLES: tuple[Role, ...] = ("operator", "city", "site")
_OPENADR_ROLES = ("bl", "ven")


@app.command("add")
def add(
    client_id: str = typer.Argument(..., help="Client id, e.g. city-climate-office"),
    role: str = typer.Option(..., "--role", help="operator, city or site (REST API); bl or ven (OpenADR VTN)"),
    site: str | None = typer.Option(None, "--site", help="The site a `site` client may read"),
    description: str = typer.Option("", "--description", help="Who uses it, for the listing"),
    scope: list[str] | None = typer.Option(
        None, "--scope", help="OpenADR scope (repeatable); default: the role's scopes from the spec"
    ),
) -> None:
    """Create a client and print its secret once (only a hash is stored)."""
    if role not in _ROLES + _OPENADR_ROLES:
        console.print(f"[red]--role must be one of {', '.join(_ROLES + _OPENADR_ROLES)}[/red]")
        raise typer.Exit(2)
    if role in _OPENADR_ROLES and site is not None:
        console.print("[red]--site is for site clients; grant a VEN its sites with `vpp clients grant`[/red]")
        raise typer.Exit(2)
    if scope and role not in _OPENADR_ROLES:
        console.print("[red]--scope is for OpenADR clients (--role bl or ven)[/red]")
        raise typer.Exit(2)
    secret = new_secret()
    with cli_database(load_settings()) as url, connect(url) as conn:
        try:
            if role in _OPENADR_ROLES:
                add_openadr_client(conn, client_id, secret, role, scope or None, description)  # type: ignore[arg-type]
            else:
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
    """List clients of the API and of the OpenADR VTN (a VEN's sites: those granted to it); secrets are never shown."""
    with cli_database(load_settings()) as url, connect(url) as conn:
        clients = list_clients(conn)
        openadr_clients = list_openadr_clients(conn)
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
    for o in openadr_clients:
        table.add_row(
            o.client_id,
            f"{o.role} (OpenADR)",
            ", ".join(o.sites),
            o.created_at.isoformat(timespec="seconds"),
            o.revoked_at.isoformat(timespec="seconds") if o.revoked_at else "",
            o.description,
        )
    console.print(table)


@app.command("revoke")
def revoke(client_id: str = typer.Argument(..., help="The client to revoke")) -> None:
    """Revoke a client: no new tokens at once; its tokens stop working within seconds."""
    with cli_database(load_settings()) as url, connect(url) as conn:
        found = revoke_client(conn, client_id)
        found = revoke_openadr_client(conn, client_id) or found
        conn.commit()
    if not found:
        console.print(f"[red]no active client {client_id!r}[/red]")
        raise typer.Exit(1)
    console.print(f"client [bold]{client_id}[/bold] revoked")


@app.command("grant")
def grant(
    client_id: str = typer.Argument(..., help="The OpenADR VEN client, e.g. ven-depot-a"),
    site: list[str] = typer.Option(..., "--site", help="A site the VEN acts for (repeatable)"),
    ven_name: str | None = typer.Option(None, "--ven-name", help="Name of the ven object made on first grant"),
) -> None:
    """Grant a VEN its sites: the target site:<id> on its ven object, so it sees their programs and events."""
    with cli_database(load_settings()) as url, connect(url) as conn:
        try:
            ven_id, sites = grant_ven_sites(conn, client_id, site, datetime.now(UTC), ven_name)
        except ValueError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from None
        conn.commit()
    console.print(f"VEN [bold]{client_id}[/bold] (ven {ven_id}) now acts for: {', '.join(sites)}")


@app.command("ungrant")
def ungrant(
    client_id: str = typer.Argument(..., help="The OpenADR VEN client"),
    site: list[str] = typer.Option(..., "--site", help="A site to withdraw (repeatable)"),
) -> None:
    """Withdraw sites from a VEN: it stops seeing their programs and events at once."""
    with cli_database(load_settings()) as url, connect(url) as conn:
        try:
            sites = ungrant_ven_sites(conn, client_id, site, datetime.now(UTC))
        except ValueError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from None
        conn.commit()
    console.print(f"VEN [bold]{client_id}[/bold] now acts for: {', '.join(sites) or 'no site'}")
