"""`vpp oadr2b serve/add-ven/list`: the OpenADR 2.0b VTN and the VENs onboarded to it."""

from __future__ import annotations

from datetime import UTC, datetime

import typer
from rich.console import Console
from rich.table import Table

from vpp.embedded.resolve import ensure_database
from vpp.postgres.connect import connect
from vpp.postgres.oadr2b import add_ven, current_opt_states, list_vens, revoke_ven
from vpp.settings import load_settings

app = typer.Typer(no_args_is_help=True, help="OpenADR 2.0b VTN (JSCA DR interface) and its VENs")
console = Console()


def _database_url() -> str:
    url, _server = ensure_database(load_settings())
    return url


@app.command("serve")
def serve() -> None:
    """Run the 2.0b VTN (settings VPP_OADR2B_*: TLS certificate, key and the VENs' CA, port)."""
    from pydantic import ValidationError

    from services.oadr2b.__main__ import main

    try:
        main()
    except ValidationError as exc:
        for error in exc.errors():
            console.print(f"[red]{error['msg']}[/red]")
        raise typer.Exit(2) from None


@app.command("add-ven")
def add(
    ven_name: str = typer.Argument(..., help="The venName the VEN registers with"),
    fingerprint: str = typer.Option(..., "--fingerprint", help="Its client certificate's OpenADR fingerprint"),
    site: list[str] = typer.Option(..., "--site", help="A site the VEN speaks for (repeatable)"),
    ven_id: str | None = typer.Option(None, "--ven-id", help="The venID to assign (default: generated)"),
) -> None:
    """Onboard a VEN: it may register only with the certificate of this fingerprint, and sees its sites' events."""
    with connect(_database_url()) as conn:
        try:
            ven = add_ven(conn, ven_name, site_ids=site, fingerprint=fingerprint, ven_id=ven_id)
        except ValueError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from None
        conn.commit()
    console.print(
        f"2.0b VEN [bold]{ven.ven_name}[/bold] onboarded as venID {ven.ven_id}, targets {', '.join(ven.targets)}"
    )


@app.command("list")
def list_() -> None:
    """List onboarded 2.0b VENs: targets, registration, last poll, and their opt state on events not yet ended."""
    with connect(_database_url()) as conn:
        vens = list_vens(conn)
        opts = current_opt_states(conn, datetime.now(UTC))
    table = Table("ven_name", "ven_id", "targets", "registered", "last poll", "revoked", "events (mod: opt)")
    for v in vens:
        last = v.last_poll_at.isoformat(timespec="seconds") if v.last_poll_at else ""
        events = "; ".join(f"{e} ({n}: {opt or 'no answer'})" for e, n, opt in opts.get(v.ven_name, []))
        table.add_row(v.ven_name, v.ven_id, ", ".join(v.targets), "yes" if v.registration_id else "no", last,
                      "yes" if v.revoked else "", events)  # fmt: skip
    console.print(table)


@app.command("revoke")
def revoke(ven_name: str = typer.Argument(..., help="The VEN to revoke")) -> None:
    """Revoke a VEN: it can no longer register, and its polls are answered with a re-registration request."""
    with connect(_database_url()) as conn:
        found = revoke_ven(conn, ven_name)
        conn.commit()
    if not found:
        console.print(f"[red]no active 2.0b VEN {ven_name!r}[/red]")
        raise typer.Exit(1)
    console.print(f"2.0b VEN [bold]{ven_name}[/bold] revoked")
