"""Fixtures for the ECHONET Lite gateway: a LAN in network namespaces, an emulated home, the gateway."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from pychonet.lib.udpserver import UDPServer

from services.gateway.backlog import Backlog
from services.gateway.echonet import EchonetGateway, GatewayConfig
from services.gateway.publisher import GatewayPublisher
from vpp.embedded.broker import EmbeddedBroker
from vpp.mqtt import BrokerAddress, close_client, make_client, session_properties
from vpp.simulation.echonet_home import EmulatedHome, HomeState
from vpp.simulation.netns import EchonetLan, in_namespace

SITE = "jp-home-1"
POLL_S = 0.5


@pytest.fixture
def lan() -> Iterator[EchonetLan]:
    net = EchonetLan().create()
    yield net
    net.destroy()


@pytest.fixture
def home_state() -> HomeState:
    return HomeState()


@pytest.fixture
def home(lan: EchonetLan, home_state: HomeState) -> Iterator[EmulatedHome]:
    emulated = EmulatedHome(lan.device_ns, lan.device_ips, home_state).start()
    yield emulated
    emulated.stop()


@dataclass
class Watcher:
    """A platform-side MQTT client: telemetry and acks as they arrive (persistent session)."""

    client: mqtt.Client
    telemetry: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    acks: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def latest(self, kind: str) -> dict[str, Any] | None:
        with self.lock:
            return next((body for device, body in reversed(self.telemetry) if device.startswith(kind + "-")), None)

    def devices(self) -> set[str]:
        with self.lock:
            return {device for device, _ in self.telemetry}

    def keys(self) -> set[tuple[str, str]]:
        with self.lock:
            return {(device, body["ts"]) for device, body in self.telemetry}


@pytest.fixture
def watcher(broker: EmbeddedBroker) -> Iterator[Watcher]:
    client = make_client("platform-watcher")
    seen = Watcher(client)
    subscribed = threading.Event()

    def on_connect(c: mqtt.Client, *_: Any) -> None:
        c.subscribe([(f"vpp/v1/{SITE}/+/telemetry", 1), (f"vpp/v1/{SITE}/dr/ack", 1)])

    def on_message(_c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        parts = message.topic.split("/")
        body = json.loads(message.payload)
        with seen.lock:
            if parts[3] == "dr":
                seen.acks.append(body)
            else:
                seen.telemetry.append((parts[3], body))

    client.on_connect = on_connect
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_message = on_message
    client.connect("127.0.0.1", broker.port, clean_start=False, properties=session_properties())
    client.loop_start()
    assert subscribed.wait(10)
    yield seen
    close_client(client)


@dataclass
class RunningGateway:
    gateway: EchonetGateway
    backlog: Backlog
    enqueued: list[tuple[str, str]]  # (device_id, ts) of every reading handed to the publisher
    loop: asyncio.AbstractEventLoop
    stop: asyncio.Event
    thread: threading.Thread

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(15)
        self.backlog.close()


@pytest.fixture
def gateway_options() -> dict[str, Any]:
    """GatewayPublisher options. These tests run no ingest, so nothing would ever confirm a reading
    end to end: they confirm on PUBACK. tests/integration/echonet/test_confirmation.py runs ingest
    and overrides this with the default, the platform's `stored` confirmation."""
    return {"confirm_on_puback": True}


@pytest.fixture
def backlog_max() -> int:
    return 10_000


@pytest.fixture
def gateway(
    lan: EchonetLan,
    broker: EmbeddedBroker,
    tmp_path: Path,
    gateway_options: dict[str, Any],
    backlog_max: int,
) -> Iterator[RunningGateway]:
    config = GatewayConfig(SITE, lan.gateway_ip, poll_s=POLL_S, discover_s=30.0, timeout_s=1.0)
    backlog = Backlog(tmp_path / "gateway" / "backlog.sqlite3", max_messages=backlog_max)
    enqueued: list[tuple[str, str]] = []

    def make_publisher(on_signal: Any) -> GatewayPublisher:
        publisher = GatewayPublisher(SITE, BrokerAddress("127.0.0.1", broker.port), backlog, on_signal,
                                     reconnect_min_s=0.5, **gateway_options)  # fmt: skip
        original = publisher.enqueue

        def recording(topic: str, body: dict[str, Any]) -> int:
            enqueued.append((topic.split("/")[3], body["ts"]))
            return original(topic, body)

        publisher.enqueue = recording  # type: ignore[method-assign]
        return publisher

    gw = EchonetGateway(
        config, make_publisher,
        udp_factory=lambda: in_namespace(lan.gateway_ns, lambda: UDPServer(local_ip=lan.gateway_ip)),
    )  # fmt: skip
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(gw.run(stop))
        loop.close()

    thread = threading.Thread(target=run, name="echonet-gateway", daemon=True)
    thread.start()
    running = RunningGateway(gw, backlog, enqueued, loop, stop, thread)
    yield running
    running.close()
