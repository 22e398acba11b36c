"""Resolve where the database and broker are: configured URLs, or private embedded servers."""

from __future__ import annotations

import socket
from pathlib import Path

from vpp.embedded.broker import EmbeddedBroker
from vpp.embedded.postgres import EmbeddedPostgres
from vpp.mqtt import BrokerAddress, parse_broker_url
from vpp.settings import Settings

__all__ = ["UnreachableServer", "embedded_postgres", "ensure_broker", "ensure_database"]


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
    if settings.mqtt_url:
        address = parse_broker_url(settings.mqtt_url)
        # Fail here, naming the setting, rather than after "✓ MQTT broker" when ingest cannot connect.
        try:
            socket.create_connection((address.host, address.port), timeout=5).close()
        except OSError as error:
            raise UnreachableServer(
                f"cannot reach the MQTT broker at {address.host}:{address.port} ({error.strerror or error}); "
                "check VPP_MQTT_URL or unset it to use the embedded broker"
            ) from None
        return address, None
    broker = EmbeddedBroker(settings.data_dir / "broker")
    info = broker.start()
    return BrokerAddress(info.host, info.port, mqtt5=info.mqtt5), broker
