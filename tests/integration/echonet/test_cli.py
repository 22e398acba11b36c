"""`vpp gateway echonet` as a process: started inside the LAN namespace, stopped by SIGTERM.

The namespace has its own loopback, so the test runs a Mosquitto there too; the gateway's process then
has no route to any real interface at all.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from tests.support.waiting import wait_for
from vpp.mqtt import close_client, make_client
from vpp.simulation.echonet_home import EmulatedHome
from vpp.simulation.netns import EchonetLan, in_namespace

pytestmark = pytest.mark.integration
SITE = "jp-home-cli"


@pytest.fixture
def namespaced_broker(lan: EchonetLan, tmp_path: Path) -> Iterator[int]:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    conf = tmp_path / "mosquitto.conf"
    conf.write_text("listener 1883 127.0.0.1\nallow_anonymous true\n")
    process = subprocess.Popen(["ip", "netns", "exec", lan.gateway_ns, binary, "-c", str(conf)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    yield 1883
    process.terminate()
    process.wait(10)


def test_the_command_publishes_every_device_and_goes_offline_on_sigterm(
    lan: EchonetLan, home: EmulatedHome, namespaced_broker: int, tmp_path: Path
) -> None:
    received: list[tuple[str, bytes]] = []
    lock = threading.Lock()
    client = make_client("cli-watcher", reconnect_min_s=0.2)

    def on_message(_c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        with lock:
            received.append((message.topic, bytes(message.payload)))

    client.on_message = on_message
    client.on_connect = lambda c, *_: c.subscribe(f"vpp/v1/{SITE}/#", qos=1)

    def connect() -> None:
        wait_for(lambda: _try_connect(client, namespaced_broker), lambda ok: ok, timeout_s=10)

    in_namespace(lan.gateway_ns, connect)  # the client's socket lives in the LAN namespace
    client.loop_start()
    vpp = str(Path(sys.executable).with_name("vpp"))
    process = subprocess.Popen(
        ["ip", "netns", "exec", lan.gateway_ns, vpp, "gateway", "echonet", "--site", SITE,
         "--interface-ip", lan.gateway_ip, "--broker-url", f"mqtt://127.0.0.1:{namespaced_broker}",
         "--data-dir", str(tmp_path / "gw"), "--poll-s", "0.5", "--timeout-s", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:

        def kinds() -> set[str]:
            with lock:
                return {t.split("/")[3].split("-")[0] for t, _ in received if t.endswith("/telemetry")}

        wait_for(kinds, lambda k: k == {"meter", "pv", "battery", "ev_charger"}, timeout_s=20)
        with lock:
            battery = next(json.loads(p) for t, p in reversed(received) if "/battery-" in t)
        assert battery["soc_pct"] == pytest.approx(home.state.soc_pct, abs=1)
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0
        with lock:
            statuses = [p for t, p in received if t.endswith("/status")]
        assert statuses[0] == b"online"
        assert statuses[-1] == b"offline"
        assert (tmp_path / "gw" / SITE / "backlog.sqlite3").exists()
    finally:
        if process.poll() is None:
            process.kill()
        output = process.communicate(timeout=5)[0].decode(errors="replace")
        close_client(client)
    assert "Traceback" not in output, output


def _try_connect(client: mqtt.Client, port: int) -> bool:
    try:
        client.connect("127.0.0.1", port)
    except OSError:
        return False
    return True
