"""`vpp broker-config` against a real Mosquitto: sites are fenced into their own topics, bad passwords are
refused, rotation cuts over on SIGHUP, and ingest still gets every site's data.

Observed with Mosquitto 2.0.11 (the assertions accept only what a secure broker may answer):
- a denied QoS 1 publish gets PUBACK "Not authorized" (0x87) under MQTT v5 and is not delivered;
- a subscription to another site's topic is granted, but nothing is delivered on it (read access is
  checked per message, retained messages included);
- a Last Will on another site's status is accepted at CONNECT and then never published;
- a wrong password gets CONNACK "Not authorized" (0x87) or "Bad user name or password" (0x86);
- on SIGHUP the broker reloads both files and disconnects clients whose password no longer matches.
"""

from __future__ import annotations

import grp
import os
import pwd
import queue
import shutil
import signal
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
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode
from typer.testing import CliRunner

from services.cli.broker_cmd import broker_config
from tests.integration.ingest_fixtures import register_depot, running_ingest, scalar
from tests.support.waiting import wait_for
from vpp.embedded.broker import EmbeddedBroker
from vpp.mqtt import dr_signal_topic, make_client, status_topic, telemetry_topic
from vpp.postgres.migrate import upgrade

pytestmark = pytest.mark.integration

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
    ) -> None:
        self.connack: queue.Queue[ReasonCode] = queue.Queue()
        self.subacks: queue.Queue[list[ReasonCode]] = queue.Queue()
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.disconnected = threading.Event()
        self._pubacks: dict[int, ReasonCode] = {}
        self._cond = threading.Condition()
        self.client = make_client(client_id, username=username, password=password)
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
        self, client_id: str, username: str | None, password: str | None, will: tuple[str, bytes] | None = None
    ) -> Probe:
        p = Probe(self.broker.port, client_id, username, password, will)
        self.probes.append(p)
        return p

    def site(self, site_id: str, client_id: str | None = None) -> Probe:
        p = self.probe(client_id or f"gw-{site_id}", site_id, self.secrets[site_id])
        assert not p.connect_result.is_failure, p.connect_result
        return p

    def reload(self) -> None:
        process = self.broker._process
        assert process is not None
        process.send_signal(signal.SIGHUP)


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
    broker = EmbeddedBroker(broker_dir / "broker", password_file=auth_dir / "passwd", acl_file=auth_dir / "acl")
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


def test_site_cannot_publish_under_another_sites_topic(secured: SecuredBroker) -> None:
    watcher = secured.probe("watch-ingest", "ingest", INGEST_PASSWORD)
    assert watcher.subscribe("vpp/v1/+/+/telemetry")[0].value == 1
    site_a = secured.site("site-a")

    denied = site_a.publish(telemetry_topic("site-b", "meter-1"), b"forged")
    assert denied.value == NOT_AUTHORIZED
    assert site_a.publish("vpp/v1/site-a/dr/signal", b"self-issued plan").value == NOT_AUTHORIZED
    assert not site_a.publish(telemetry_topic("site-a", "meter-1"), b"genuine").is_failure

    # One publisher's messages arrive in order: once the genuine one is in, the forged one never will be.
    assert watcher.next_message() == (telemetry_topic("site-a", "meter-1"), b"genuine")
    assert watcher.messages.empty()


def test_site_cannot_leave_its_last_will_on_another_sites_status(secured: SecuredBroker) -> None:
    watcher = secured.probe("watch-status", "ingest", INGEST_PASSWORD)
    assert watcher.subscribe(status_topic("+"))[0].value == 1
    forged = secured.probe(
        "gw-a-forged", "site-a", secured.secrets["site-a"], will=(status_topic("site-b"), b"offline")
    )
    assert not forged.connect_result.is_failure  # 2.0.11 accepts the connection and drops the will later
    forged.client.disconnect(reasoncode=ReasonCode(PacketTypes.DISCONNECT, identifier=WITH_WILL))
    assert forged.disconnected.wait(TIMEOUT_S)

    site_a = secured.site("site-a", "gw-a-genuine")
    assert not site_a.publish(status_topic("site-a"), b"online").is_failure
    assert watcher.next_message() == (status_topic("site-a"), b"online")
    assert watcher.messages.empty(), "the forged will arrived"


def test_site_cannot_read_another_sites_dr_signals(secured: SecuredBroker) -> None:
    scheduler = secured.probe("scheduler", "scheduler", SCHEDULER_PASSWORD)
    assert not scheduler.publish(dr_signal_topic("site-b"), b"plan-b", retain=True).is_failure
    assert not scheduler.publish(dr_signal_topic("site-a"), b"plan-a", retain=True).is_failure
    site_a = secured.site("site-a")
    site_b = secured.site("site-b")

    # Mosquitto 2.0.11 grants the subscription and then delivers nothing on it; a refusal would do too.
    suback = site_a.subscribe(dr_signal_topic("site-b"), "vpp/v1/#", dr_signal_topic("site-a"))
    assert all(rc.value in (1, NOT_AUTHORIZED, 0x80) for rc in suback)
    assert site_b.subscribe(dr_signal_topic("site-b"))[0].value == 1
    assert site_b.next_message() == (dr_signal_topic("site-b"), b"plan-b")  # the retained plan is there

    assert not scheduler.publish(dr_signal_topic("site-b"), b"live-b").is_failure
    assert not scheduler.publish(dr_signal_topic("site-a"), b"live-a").is_failure
    assert site_b.next_message() == (dr_signal_topic("site-b"), b"live-b")
    # The broker sends in order: by the time A's live signal arrives, any of B's would have come first.
    # (A's own messages come once per matching subscription: its own topic and `vpp/v1/#`.)
    seen = [site_a.next_message()]
    while seen[-1][1] != b"live-a":
        seen.append(site_a.next_message())
    assert {topic for topic, _ in seen} == {dr_signal_topic("site-a")}, seen
    assert b"plan-a" in {payload for _, payload in seen}, "A does get its own retained plan"


@pytest.mark.parametrize(
    ("username", "password"),
    [("site-a", "not-the-secret"), ("site-a", None), (None, None), ("nobody", "x"), ("ingest", "wrong")],
    ids=["wrong-password", "no-password", "anonymous", "unknown-user", "wrong-service-password"],
)
def test_bad_credentials_are_refused(secured: SecuredBroker, username: str | None, password: str | None) -> None:
    probe = secured.probe("intruder", username, password)
    assert probe.connect_result.value in (NOT_AUTHORIZED, BAD_CREDENTIALS), probe.connect_result


def test_another_sites_secret_does_not_open_this_site(secured: SecuredBroker) -> None:
    probe = secured.probe("intruder", "site-a", secured.secrets["site-b"])
    assert probe.connect_result.value in (NOT_AUTHORIZED, BAD_CREDENTIALS)


def test_ingest_with_its_account_still_receives_site_data(secured: SecuredBroker, db_url: str) -> None:
    with running_ingest(db_url, secured.broker.port, username="ingest", password=INGEST_PASSWORD):
        site_a = secured.site("site-a")
        assert site_a.publish(telemetry_topic("site-b", "meter-1"), reading(99.0)).value == NOT_AUTHORIZED
        assert not site_a.publish(telemetry_topic("site-a", "meter-1"), reading(12.5)).is_failure
        count_sql = """SELECT count(*) FROM readings r JOIN devices d ON d.id = r.device_pk
                       JOIN sites s ON s.id = d.site_pk WHERE s.site_id = %s"""
        wait_for(lambda: scalar(db_url, count_sql, "site-a"), lambda n: n == 1)
    assert scalar(db_url, count_sql, "site-b") == 0
    assert scalar(db_url, "SELECT power_kw FROM readings") == 12.5
    assert scalar(db_url, "SELECT count(*) FROM dead_letters") == 0


def test_rotation_and_revocation_take_effect_on_reload(secured: SecuredBroker) -> None:
    old_a = secured.site("site-a", "gw-a-old")
    site_b = secured.site("site-b")

    assert run_broker_config("--out-dir", str(secured.auth_dir)) == "", "a plain re-run issues nothing"
    new_secrets = read_secrets(run_broker_config("--out-dir", str(secured.auth_dir), "--rotate", "site-a"))
    assert list(new_secrets) == ["site-a"]
    assert new_secrets["site-a"] != secured.secrets["site-a"]
    assert not old_a.disconnected.is_set(), "nothing changes before the broker reloads"

    secured.reload()
    assert old_a.disconnected.wait(TIMEOUT_S), "the broker drops a session whose password was rotated"
    assert not site_b.publish(telemetry_topic("site-b", "meter-1"), b"still here").is_failure
    assert secured.probe("gw-a-stale", "site-a", secured.secrets["site-a"]).connect_result.is_failure
    assert not secured.probe("gw-a-new", "site-a", new_secrets["site-a"]).connect_result.is_failure

    assert run_broker_config("--out-dir", str(secured.auth_dir), "--revoke", "site-b") == ""
    assert "site-b" not in (secured.auth_dir / "passwd").read_text()
    assert "user site-b" not in (secured.auth_dir / "acl").read_text()
    assert run_broker_config("--out-dir", str(secured.auth_dir)) == "", "a revoked site is not re-issued"
    secured.reload()
    assert site_b.disconnected.wait(TIMEOUT_S)
    assert secured.probe("gw-b-again", "site-b", secured.secrets["site-b"]).connect_result.is_failure


def test_unknown_site_is_an_error_and_changes_nothing(secured: SecuredBroker) -> None:
    before = (secured.auth_dir / "passwd").read_text()
    app = typer.Typer()
    app.command()(broker_config)
    result = CliRunner().invoke(app, ["--out-dir", str(secured.auth_dir), "--rotate", "no-such-site"])
    assert result.exit_code == 2
    assert "no-such-site" in result.stderr
    assert (secured.auth_dir / "passwd").read_text() == before
    assert stat.S_IMODE(os.stat(secured.auth_dir / "passwd").st_mode) == 0o640


def test_no_issue_rewrites_the_files_without_issuing_secrets(secured: SecuredBroker, db_url: str) -> None:
    register_depot(db_url, "site-c")
    assert run_broker_config("--out-dir", str(secured.auth_dir), "--no-issue") == ""
    assert "site-c" not in (secured.auth_dir / "passwd").read_text()
    assert list(read_secrets(run_broker_config("--out-dir", str(secured.auth_dir)))) == ["site-c"]
    assert "user site-c" in (secured.auth_dir / "acl").read_text()
