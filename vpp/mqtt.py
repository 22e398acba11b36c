"""paho-mqtt 2 client factory and the v1 topic scheme (DESIGN.md section 3)."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from urllib.parse import urlparse

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from vpp.mqtt_socket import BufferedClient

__all__ = [
    "BrokerAddress",
    "close_client",
    "dr_ack_topic",
    "dr_signal_topic",
    "make_client",
    "parse_broker_url",
    "session_properties",
    "site_partition",
    "status_topic",
    "stored_topic",
    "telemetry_topic",
]

TELEMETRY_FILTER = "vpp/v1/+/+/telemetry"
STATUS_FILTER = "vpp/v1/+/status"
# Topics under vpp/v1/ that fit no part of the contract (too few or too many levels, a device
# level missing), so that ingest sees them and keeps them as dead letters instead of the broker
# dropping them unseen. None of them overlaps a valid topic: Mosquitto would deliver a message once
# per matching subscription. A five-level topic with a wrong last level is not caught, because
# `vpp/v1/+/+/+` would also match the DR topics.
MISFIT_FILTERS = ("vpp/v1", "vpp/v1/+", "vpp/v1/+/telemetry", "vpp/v1/+/+/+/+/#")
# Platform -> site: what the platform has durably stored of the site's telemetry (docs/DESIGN.md section 3, "Delivery levels").
# The one place this topic is spelled; the ACL grants each site read access to its own.
STORED_TOPIC = "vpp/v1/{site_id}/stored"


def telemetry_topic(site_id: str, device_id: str) -> str:
    return f"vpp/v1/{site_id}/{device_id}/telemetry"


def stored_topic(site_id: str) -> str:
    return STORED_TOPIC.format(site_id=site_id)


def site_partition(topic: str, partitions: int) -> int:
    """Which of `partitions` ingest workers owns the topic's site (CRC-32: the same in every process)."""
    if partitions <= 1:
        return 0
    parts = topic.split("/", 3)
    site = parts[2] if len(parts) > 2 else ""
    return zlib.crc32(site.encode("utf-8", "surrogatepass")) % partitions


def status_topic(site_id: str) -> str:
    return f"vpp/v1/{site_id}/status"


def dr_signal_topic(site_id: str) -> str:
    return f"vpp/v1/{site_id}/dr/signal"


def dr_ack_topic(site_id: str) -> str:
    return f"vpp/v1/{site_id}/dr/ack"


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    mqtt5: bool = True
    tls: bool = False


def parse_broker_url(url: str, *, mqtt5: bool = True) -> BrokerAddress:
    """`mqtt://host:1883` or `mqtts://host:8883`; `?protocol=3.1.1` for brokers without MQTT v5."""
    parsed = urlparse(url)
    if parsed.scheme not in {"mqtt", "mqtts"} or not parsed.hostname:
        raise ValueError(f"broker URL must look like mqtt://host:port, got {url!r}")
    tls = parsed.scheme == "mqtts"
    if "protocol=3.1.1" in parsed.query:
        mqtt5 = False
    return BrokerAddress(parsed.hostname, parsed.port or (8883 if tls else 1883), mqtt5, tls)


def make_client(
    client_id: str,
    *,
    mqtt5: bool = True,
    username: str | None = None,
    password: str | None = None,
    manual_ack: bool = False,
    tls: bool = False,
    reconnect_min_s: float = 1.0,
    max_inflight: int = 1000,
    buffered: bool = False,
) -> mqtt.Client:
    """A paho client with the platform's defaults: v5, backoff reconnects, unlimited offline queue.

    ``max_inflight=0`` lifts paho's own cap on unacknowledged QoS 1 messages. Publishers that may hold
    thousands unacknowledged should cap them themselves and pass 0: with a cap, paho walks every queued
    message on each PUBACK, so a backlog of n costs O(n) per ack and a publisher that falls behind
    never catches up (seen in the soak: 20,000 outstanding, the generator at 100% CPU).

    ``buffered=True`` batches socket reads and writes (`vpp.mqtt_socket`), for subscribers that take
    thousands of messages per second.
    """
    client = (BufferedClient if buffered else mqtt.Client)(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5 if mqtt5 else mqtt.MQTTv311,
        clean_session=None if mqtt5 else False,
        manual_ack=manual_ack,
    )
    if username:
        client.username_pw_set(username, password)
    if tls:
        client.tls_set()
    client.reconnect_delay_set(min_delay=reconnect_min_s, max_delay=10)  # type: ignore[arg-type]
    client.max_queued_messages_set(0)
    client.max_inflight_messages_set(max_inflight)
    return client


def close_client(client: mqtt.Client) -> None:
    """Disconnect, stop the network thread, and close paho's internal wake-up socket pair.

    paho 2 opens a loopback socket pair in `loop_start()` and leaves it open after `loop_stop()`; a
    long-running service would not notice, but every stopped client would leak two descriptors.
    """
    client.disconnect()
    client.loop_stop()
    client._reset_sockets(sockpair_only=True)  # private, but the only way to close the pair


def session_properties(receive_maximum: int = 65535, expiry_s: int = 7 * 24 * 3600) -> Properties:
    """CONNECT properties for a persistent MQTT v5 session."""
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = expiry_s
    props.ReceiveMaximum = receive_maximum
    return props
