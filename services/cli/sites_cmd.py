"""`vpp sites add/add-device/list`: register a real site and its devices, the first step of commissioning
(docs/runbook.md, "Commission a new site"); `vpp broker-config` then issues its broker secret.

Ingest accepts a device's telemetry only once the device is registered under its site, with the kind
that decides which quantities and signs it may report (DESIGN.md section 3). A site registered while
ingest runs is picked up at its first message (ingest asks the database before it dead-letters an id
it does not know).
"""

from __future__ import annotations

import re

import psycopg
import typer
from rich.console import Console
from rich.table import Table

from services.cli.database import cli_database
from vpp.domain.devices import DeviceKind
from vpp.postgres.connect import connect
from vpp.postgres.registry import (
    DeviceSpec,
    SiteRecord,
    add_devices,
    device_kinds,
    list_registered_sites,
    register_site,
    site_pk,
)
from vpp.settings import Settings, load_settings

app = typer.Typer(no_args_is_help=True, help="Sites and their devices (what ingest accepts telemetry for)")
console = Console()
err = Console(stderr=True)

# The database's own checks (migrations): a site id is also its MQTT username and a topic level.
_SITE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_DEVICE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_KINDS = ", ".join(k.value for k in DeviceKind)


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[red]{message}[/red]")
    return typer.Exit(code)


def parse_device(text: str) -> DeviceSpec:
    """``ID:KIND`` or ``ID:KIND:RATED_KW`` (e.g. ``pv-1:pv:45``); ValueError says what is wrong."""
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise ValueError(f"--device {text!r}: expected ID:KIND or ID:KIND:RATED_KW (kinds: {_KINDS})")
    device_id, kind = parts[0], parts[1]
    if not _DEVICE_ID.match(device_id):
        raise ValueError(f"--device {text!r}: device id must match {_DEVICE_ID.pattern}")
    try:
        device_kind = DeviceKind(kind)
    except ValueError:
        raise ValueError(f"--device {text!r}: kind {kind!r} is not one of {_KINDS}") from None
    rated: float | None = None
    if len(parts) == 3:
        try:
            rated = float(parts[2])
        except ValueError:
            raise ValueError(f"--device {text!r}: rated power {parts[2]!r} is not a number of kW") from None
        if not 0 < rated < 1e6:
            raise ValueError(f"--device {text!r}: rated power must be above 0 kW")
    return DeviceSpec(device_id, device_kind, rated)


def _devices(texts: list[str]) -> list[DeviceSpec]:
    try:
        devices = [parse_device(t) for t in texts]
    except ValueError as error:
        raise _fail(str(error)) from None
    ids = [d.device_id for d in devices]
    if len(set(ids)) != len(ids):
        raise _fail(f"a device id is given twice: {sorted(i for i in set(ids) if ids.count(i) > 1)}")
    return devices


def _service_usernames(settings: Settings) -> set[str]:
    return {*settings.ingest_accounts, settings.mqtt_scheduler_username, *settings.openadr_publisher_accounts}


@app.command("add")
def add(
    site_id: str = typer.Argument(..., help="The site's id: its MQTT username and topic level (a-z, 0-9, _ -)"),
    name: str = typer.Option(..., "--name", help="What operators read on the dashboard"),
    device: list[str] = typer.Option(
        [], "--device", metavar="ID:KIND[:RATED_KW]", help=f"A device (repeatable); kinds: {_KINDS}"
    ),
    region: list[str] = typer.Option([], "--region", help="A region the site belongs to (repeatable), e.g. kawasaki"),
    public: bool = typer.Option(False, "--public", help="A city facility (the city role may read its data)"),
    latitude: float | None = typer.Option(None, "--latitude", min=-90, max=90),
    longitude: float | None = typer.Option(None, "--longitude", min=-180, max=180),
    pv_kw: float = typer.Option(0.0, "--pv-kw", min=0, help="Installed PV, kW"),
    battery_kwh: float = typer.Option(0.0, "--battery-kwh", min=0, help="Battery capacity, kWh"),
    battery_kw: float = typer.Option(0.0, "--battery-kw", min=0, help="Battery power, kW"),
    contract_demand_kw: float | None = typer.Option(None, "--contract-demand-kw", min=0.001),
    demand_target_kw: float | None = typer.Option(None, "--demand-target-kw", min=0.001),
    renewable_share: float = typer.Option(0.0, "--renewable-share", min=0, max=1, help="Of its grid supply, 0..1"),
) -> None:
    """Register a new site and its devices; then `vpp broker-config` issues its broker secret."""
    if not _SITE_ID.match(site_id):
        raise _fail(f"site id {site_id!r} must match {_SITE_ID.pattern} (it is the site's MQTT username)")
    settings = load_settings()
    if site_id in _service_usernames(settings):
        raise _fail(f"site id {site_id!r} is a service account's broker username; choose another")
    devices = _devices(device)
    record = SiteRecord(
        site_id=site_id,
        name=name,
        latitude=latitude,
        longitude=longitude,
        pv_kw=pv_kw,
        battery_kwh=battery_kwh,
        battery_kw=battery_kw,
        contract_demand_kw=contract_demand_kw,
        demand_target_kw=demand_target_kw,
        renewable_share=renewable_share,
        is_public=public,
        regions=tuple(region),
    )
    with cli_database(settings) as url, connect(url, application_name="vpp-sites") as conn:
        if site_pk(conn, site_id) is not None:
            raise _fail(f"site {site_id!r} is already registered; add devices with `vpp sites add-device`", 1)
        try:
            register_site(conn, record, devices)
        except psycopg.errors.IntegrityError as error:
            conn.rollback()
            raise _fail(f"refused by the database: {error.diag.message_primary}", 1) from None
        conn.commit()
    console.print(f"site [bold]{site_id}[/bold] registered with {len(devices)} device(s)")
    if not devices:
        console.print("it has no devices yet: ingest refuses its telemetry until `vpp sites add-device` adds them")
    console.print("next: `vpp broker-config` issues its broker secret (docs/runbook.md, Commission a new site)")


@app.command("add-device")
def add_device(
    site_id: str = typer.Argument(..., help="A registered site"),
    device: list[str] = typer.Argument(..., metavar="ID:KIND[:RATED_KW]...", help=f"Devices; kinds: {_KINDS}"),
) -> None:
    """Add devices to a registered site (an existing device id gets the rating given; its kind cannot change)."""
    devices = _devices(device)
    with cli_database(load_settings()) as url, connect(url, application_name="vpp-sites") as conn:
        pk = site_pk(conn, site_id)
        if pk is None:
            raise _fail(f"no site {site_id!r}: register it with `vpp sites add`", 1)
        # Stored readings keep the sign convention of the kind they arrived under: a new kind would
        # reinterpret them (a meter's import as a PV's generation). A new device id is the way.
        known = device_kinds(conn, pk)
        changed = [
            f"{d.device_id} is a {known[d.device_id]}" for d in devices if known.get(d.device_id, d.kind) != d.kind
        ]
        if changed:
            raise _fail(f"a device's kind cannot change ({'; '.join(changed)}): register it under a new id", 1)
        add_devices(conn, pk, devices)
        conn.commit()
    console.print(f"site [bold]{site_id}[/bold]: {', '.join(d.device_id for d in devices)} registered")


@app.command("list")
def list_() -> None:
    """Registered sites, their devices, and whether each has a broker secret."""
    with cli_database(load_settings()) as url, connect(url, application_name="vpp-sites") as conn:
        sites = list_registered_sites(conn)
    table = Table("site_id", "name", "public", "regions", "devices", "broker secret")
    for s in sites:
        devices = ", ".join(
            f"{d.device_id} ({d.kind}{f', {d.rated_power_kw:g} kW' if d.rated_power_kw else ''})" for d in s.devices
        )
        table.add_row(s.site_id, s.name, "yes" if s.is_public else "no", ", ".join(s.regions), devices, s.broker_secret)
    console.print(table)
