"""A real Mosquitto enforcing the files `vpp broker-config` writes, and probes that record its answers."""

from __future__ import annotations

import grp
import os
import pwd
import queue
import shutil
import stat
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import typer
from paho.mqtt.reasoncodes import ReasonCode
from typer.testing import CliRunner

from services.cli.broker_cmd import DYNSEC_FILE, broker_config
from tests.integration.ingest_fixtures import register_depot, scalar
from vpp.embedded.broker import EmbeddedBroker
from vpp.mqtt import make_client
from vpp.postgres.migrate import upgrade

INGEST_PASSWORD = "ingest-secret-for-tests"
SCHEDULER_PASSWORD = "scheduler-secret-for-tests"
NOT_AUTHORIZED = 0x87
BAD_CREDENTIALS = 0x86
WITH_WILL = 0x04  # DISCONNECT reason "Disconnect with Will Message": the broker publishes the will
TIMEOUT_S = 10.0


class Probe:
    """A paho client that records what the broker answers, for assertions without sleeps."""

    def __init__(
        self,
        port: int,
        client_id: str,
        username: str | None,
        password: str | None,
        will: tuple[str, bytes] | None = None,
        *,
        mqtt5: bool = True,
    ) -> None:
        self.connack: queue.Queue[ReasonCode] = queue.Queue()
        self.subacks: queue.Queue[list[ReasonCode]] = queue.Queue()
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.disconnected = threading.Event()
        self._pubacks: dict[int, ReasonCode] = {}
        self._cond = threading.Condition()
        self.client = make_client(client_id, username=username, password=password, mqtt5=mqtt5)
        self.client.on_connect = lambda _c, _u, _f, rc, _p: self.connack.put(rc)
        self.client.on_subscribe = lambda _c, _u, _mid, rcs, _p: self.subacks.put(list(rcs))
        self.client.on_message = lambda _c, _u, m: self.messages.put((m.topic, bytes(m.payload)))
        self.client.on_publish = self._on_publish
        self.client.on_disconnect = lambda *_a: self.disconnected.set()
        if will:
            self.client.will_set(*will, qos=1)
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        self.connect_result = self.connack.get(timeout=TIMEOUT_S)

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, rc: ReasonCode, _p: Any) -> None:
        with self._cond:
            self._pubacks[mid] = rc
            self._cond.notify_all()

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> ReasonCode:
        """Publish at QoS 1 and return the PUBACK's reason code."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        with self._cond:
            if not self._cond.wait_for(lambda: info.mid in self._pubacks, TIMEOUT_S):
                raise AssertionError(f"no PUBACK for {topic}")
            return self._pubacks.pop(info.mid)

    def subscribe(self, *topics: str) -> list[ReasonCode]:
        self.client.subscribe([(t, 1) for t in topics])
        return self.subacks.get(timeout=TIMEOUT_S)

    def next_message(self) -> tuple[str, bytes]:
        return self.messages.get(timeout=TIMEOUT_S)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@dataclass
class SecuredBroker:
    broker: EmbeddedBroker
    auth_dir: Path
    secrets: dict[str, str]
    probes: list[Probe]

    def probe(
        self,
        client_id: str,
        username: str | None,
        password: str | None,
        will: tuple[str, bytes] | None = None,
        *,
        mqtt5: bool = True,
    ) -> Probe:
        p = Probe(self.broker.port, client_id, username, password, will, mqtt5=mqtt5)
        self.probes.append(p)
        return p

    def site(self, site_id: str, client_id: str | None = None) -> Probe:
        p = self.probe(client_id or f"gw-{site_id}", site_id, self.secrets[site_id])
        assert not p.connect_result.is_failure, p.connect_result
        return p

    def apply(self) -> None:
        """Apply regenerated files: the dynamic-security plugin reads its file at start only, so
        Mosquitto restarts (sessions and queued messages survive in its persistence file)."""
        self.broker.restart()


def _broker_group() -> list[str]:
    # Started as root, Mosquitto drops to its own user before it reads the password and ACL files.
    if os.geteuid() != 0:
        return []
    return ["--group", grp.getgrgid(pwd.getpwnam("mosquitto").pw_gid).gr_name]


def run_broker_config(*args: str) -> str:
    app = typer.Typer()
    app.command()(broker_config)
    result = CliRunner().invoke(app, [*args, *_broker_group()])
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stdout


def read_secrets(text: str) -> dict[str, str]:
    return dict(line.split("\t") for line in text.splitlines())


@pytest.fixture
def broker_dir() -> Iterator[Path]:
    # Started as root, Mosquitto drops to its own user before it reads its files. pytest's tmp_path
    # sits below a mode-0700 directory out of that user's reach, so use a directory of our own.
    work = Path(tempfile.mkdtemp(prefix="vpp-broker-test-"))
    work.chmod(0o755)
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture
def secured(db_url: str, broker_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SecuredBroker]:
    upgrade(db_url)
    register_depot(db_url, "site-a")
    register_depot(db_url, "site-b")
    monkeypatch.setenv("VPP_ENVIRONMENT", "test")
    monkeypatch.setenv("VPP_DATABASE_URL", db_url)
    monkeypatch.setenv("VPP_MQTT_INGEST_PASSWORD", INGEST_PASSWORD)
    # Further ingest-role accounts: a second worker, and a watcher the tests read the broker through.
    monkeypatch.setenv("VPP_MQTT_INGEST_ACCOUNTS", "ingest-2,watcher")
    monkeypatch.setenv("VPP_MQTT_SCHEDULER_PASSWORD", SCHEDULER_PASSWORD)
    monkeypatch.setenv("VPP_API_SIGNING_KEY", "api-signing-key-for-tests")
    auth_dir = broker_dir / "auth"
    secrets_path = tmp_path / "new-secrets.tsv"
    stdout = run_broker_config("--out-dir", str(auth_dir), "--secrets-out", str(secrets_path))
    assert stdout == "", "with --secrets-out the plaintext must not also go to stdout"
    assert stat.S_IMODE(secrets_path.stat().st_mode) == 0o600
    secrets = read_secrets(secrets_path.read_text())
    assert sorted(secrets) == ["site-a", "site-b"]
    stored = str(scalar(db_url, "SELECT string_agg(encode(password_hash, 'base64'), '') FROM broker_credentials"))
    assert all(s not in stored for s in secrets.values())
    broker = EmbeddedBroker(broker_dir / "broker", dynamic_security_file=auth_dir / DYNSEC_FILE)
    broker.start()
    env = SecuredBroker(broker, auth_dir, secrets, [])
    try:
        yield env
    finally:
        for p in env.probes:
            p.close()
        broker.stop()


def reading(power_kw: float) -> bytes:
    ts = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    return f'{{"ts": "{ts.isoformat()}", "power_kw": {power_kw}}}'.encode()
