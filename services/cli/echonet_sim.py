"""`vpp simulate --echonet-homes N`: households on ECHONET Lite, each behind its own gateway.

The DR loop end to end on households: the scheduler's signals reach each home's gateway, which
writes the emulated battery and EV charger; their effect shows in the meter readings ingest stores.
"""

from __future__ import annotations

import os
import time

import typer
from rich.console import Console

from vpp.embedded.resolve import ensure_broker, ensure_database
from vpp.mqtt import BrokerAddress, parse_broker_urls
from vpp.postgres.connect import connect
from vpp.postgres.migrate import upgrade
from vpp.settings import Settings

__all__ = ["simulate_echonet_homes"]

console = Console()


def simulate_echonet_homes(
    settings: Settings,
    homes: int,
    interval_s: float,
    duration_s: float,
    broker_url: str | None,
    register: bool,
    seed: int,
) -> None:
    if os.geteuid() != 0:
        raise typer.BadParameter("emulated homes live in network namespaces: run as root", param_hint="--echonet-homes")
    try:
        from services.gateway.fleet import EchonetFleet, register_home
    except ImportError as missing:  # uecho emulates the devices; it comes with the dev extra
        raise typer.BadParameter(f"{missing}: install with `pip install -e '.[dev]'`") from None
    configured = broker_url or ",".join(settings.broker_urls)
    broker: BrokerAddress = parse_broker_urls(configured)[0] if configured else ensure_broker(settings)[0]
    fleet = EchonetFleet(homes, broker, settings.data_dir.resolve() / "echonet-fleet", poll_s=interval_s, seed=seed)
    try:
        fleet.build()
        if register:
            database_url, _ = ensure_database(settings)
            upgrade(database_url)
            with connect(database_url) as conn:
                for site_id, home in zip(fleet.site_ids(), fleet.emulated, strict=True):
                    register_home(conn, site_id, home)
                conn.commit()
        fleet.start()
        deadline = time.monotonic() + duration_s
        while time.monotonic() < deadline:
            time.sleep(min(interval_s, max(deadline - time.monotonic(), 0)))
            console.print(
                f"{homes} homes: {fleet.devices_online()} devices answering, {fleet.readings_published():,} readings "
                f"published, {fleet.readings_pending():,} awaiting confirmation, {len(fleet.signals())} with a DR signal"
            )
    finally:
        fleet.close()
