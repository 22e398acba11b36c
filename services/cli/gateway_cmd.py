"""`vpp gateway ...`: site-side gateways that speak the v1 MQTT contract for devices that do not.

`vpp gateway echonet --site ID --interface-ip 192.168.1.10` runs at a Japanese household or small
building: it finds the ECHONET Lite smart meter, PV, battery and EV charger on the LAN, publishes their
readings under the site's topics, and carries DR signals out to the battery and EV charger.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import typer

from services.gateway.backlog import Backlog
from services.gateway.echonet import EchonetGateway, GatewayConfig
from services.gateway.publisher import GatewayPublisher
from vpp.log import configure_logging
from vpp.mqtt import parse_broker_urls

__all__ = ["app", "echonet"]

app = typer.Typer(no_args_is_help=True, help="Site gateways (ECHONET Lite)")


@app.command("echonet")
def echonet(
    site: str = typer.Option(..., "--site", help="The site's id, as registered on the platform"),
    interface_ip: str = typer.Option(
        ..., "--interface-ip", help="This machine's address on the site LAN; multicast leaves only through it"
    ),
    broker_url: str = typer.Option(
        ...,
        "--broker-url",
        envvar="VPP_GATEWAY_BROKER_URL",
        help="mqtt(s)://host:port; several independent brokers comma-separated (it fails over between them)",
    ),
    username: str | None = typer.Option(None, "--username", help="MQTT user (default: the site id)"),
    password: str | None = typer.Option(None, envvar="VPP_GATEWAY_PASSWORD", help="The site's MQTT secret"),
    data_dir: Path = typer.Option(Path(".vpp-data/gateway"), "--data-dir", help="Where the backlog file lives"),
    poll_s: float = typer.Option(10.0, "--poll-s", min=0.2, help="Seconds between reads of every device"),
    discover_s: float = typer.Option(300.0, "--discover-s", min=5, help="Seconds between multicast discoveries"),
    timeout_s: float = typer.Option(5.0, "--timeout-s", min=0.2, help="Seconds a device has to answer"),
    backlog_max: int = typer.Option(
        200_000, "--backlog-max", min=1, help="Messages kept on disk while unconfirmed (oldest dropped beyond)"
    ),
    confirm: str = typer.Option(
        "stored",
        "--confirm",
        help="When a reading leaves the backlog: 'stored' (the platform's vpp/v1/{site}/stored confirmation: "
        "nothing is lost when a broker dies; the default) or 'puback' (the broker has it: for a platform that "
        "does not confirm)",
    ),
    log_level: str = typer.Option("INFO", "--log-level"),
) -> None:
    """Run the ECHONET Lite gateway for one site until interrupted."""
    configure_logging(log_level, "console")
    if confirm not in ("stored", "puback"):
        raise typer.BadParameter("--confirm must be 'stored' or 'puback'")
    brokers = parse_broker_urls(broker_url)
    backlog = Backlog(data_dir / site / "backlog.sqlite3", max_messages=backlog_max)
    config = GatewayConfig(site, interface_ip, poll_s=poll_s, discover_s=discover_s, timeout_s=timeout_s)
    gateway = EchonetGateway(
        config,
        lambda on_signal: GatewayPublisher(
            site,
            brokers,
            backlog,
            on_signal,
            username=username or site,
            password=password,
            confirm_on_puback=confirm == "puback",
        ),
    )

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await gateway.run(stop)

    try:
        asyncio.run(main())
    finally:
        backlog.close()
