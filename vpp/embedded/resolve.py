"""Resolve where the database and broker are: configured URLs, or private embedded servers."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

from vpp.embedded.broker import EmbeddedBroker
from vpp.embedded.postgres import EmbeddedPostgres
from vpp.mqtt import BrokerAddress, parse_broker_urls
from vpp.settings import Settings

__all__ = ["UnreachableServer", "embedded_postgres", "ensure_broker", "ensure_brokers", "ensure_database"]

log = logging.getLogger("vpp.embedded.resolve")


class UnreachableServer(RuntimeError):  # noqa: N818 - reads as what happened
    """A configured server does not answer; the message names the setting."""


def embedded_postgres(data_dir: Path) -> EmbeddedPostgres:
    return EmbeddedPostgres(data_dir / "postgres")


def ensure_database(settings: Settings) -> tuple[str, EmbeddedPostgres | None]:
    """The configured URL, or a private server under the data folder (started if needed)."""
    if settings.database_url:
        return settings.database_url, None
    server = embedded_postgres(settings.data_dir).start()
    return server.url, server


def ensure_broker(settings: Settings) -> tuple[BrokerAddress, EmbeddedBroker | None]:
    """The first configured broker (or the embedded one): for clients that serve a single broker."""
    brokers, server = ensure_brokers(settings)
    return brokers[0], server


def ensure_brokers(settings: Settings) -> tuple[list[BrokerAddress], EmbeddedBroker | None]:
    """Every configured broker (VPP_MQTT_URLS or VPP_MQTT_URL), or a private embedded one.

    With several brokers one that does not answer is a warning, not a refusal to start: surviving the
    loss of one broker is what the list is for, and the services connect to it when it comes back.
    """
    if settings.broker_urls:
        addresses = parse_broker_urls(settings.broker_urls)
        setting = "VPP_MQTT_URLS" if settings.mqtt_urls else "VPP_MQTT_URL"
        unreachable: list[str] = []
        for address in addresses:
            # Fail here, naming the setting, rather than after "✓ MQTT broker" when ingest cannot connect.
            try:
                socket.create_connection((address.host, address.port), timeout=5).close()
            except OSError as error:
                unreachable.append(f"{address.host}:{address.port} ({error.strerror or error})")
        if len(unreachable) == len(addresses):
            raise UnreachableServer(
                f"cannot reach the MQTT broker at {', '.join(unreachable)}; "
                f"check {setting} or unset it to use the embedded broker"
            )
        if unreachable:
            log.warning("a configured broker does not answer; starting on the others", extra={"brokers": unreachable})
        return addresses, None
    broker = EmbeddedBroker(settings.data_dir / "broker")
    info = broker.start()
    return [BrokerAddress(info.host, info.port, mqtt5=info.mqtt5)], broker
