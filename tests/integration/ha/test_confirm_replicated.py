"""Ingest's HA confirmation on a real pg_auto_failover formation: a site is told "stored" only for
readings a standby has flushed too. With the standby killed, pg_auto_failover lets the primary commit
alone (synchronous replication off): those readings are stored and the broker is acknowledged, but the
site is not told, so its gateway keeps them; once the standby is back, their resend is confirmed.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from bench.ha_formation import Formation, pg_auto_failover_installed
from tests.integration.ingest_fixtures import register_depot, running_ingest, scalar
from tests.support.mqtt_publisher import GatewayPublisher
from tests.support.waiting import wait_for
from vpp.embedded.broker import EmbeddedBroker
from vpp.mqtt import close_client, make_client, stored_topic
from vpp.postgres.migrate import upgrade

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SITE, TOPIC = "depot-a", "vpp/v1/depot-a/meter-1/telemetry"


@pytest.fixture
def formation(tmp_path: Path) -> Iterator[Formation]:
    if not pg_auto_failover_installed():
        pytest.fail("pg_auto_failover is not installed: run `make deps` (postgresql-15-auto-failover)")
    formation = Formation(tmp_path / "pg").start()
    try:
        yield formation
    finally:
        formation.destroy()


class Confirmations:
    """The site's side: every timestamp the platform reported stored."""

    def __init__(self, port: int) -> None:
        self.stamps: set[datetime] = set()
        self.arrived = threading.Condition()
        self.client = make_client("confirm-listener")
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(stored_topic(SITE), qos=1)
        self.client.loop_start()

    def _on_message(self, _c: object, _u: object, message: mqtt.MQTTMessage) -> None:
        body: dict[str, Any] = json.loads(message.payload)
        with self.arrived:
            self.stamps.update(datetime.fromisoformat(ts) for ts in body["stored"].get("meter-1", []))
            self.arrived.notify_all()

    def wait(self, stamp: datetime, timeout_s: float) -> bool:
        with self.arrived:
            return self.arrived.wait_for(lambda: stamp in self.stamps, timeout_s)


def _reading(ts: datetime, import_kwh: float) -> dict[str, Any]:
    return {"ts": ts.isoformat(), "power_kw": 5.0, "import_kwh": import_kwh, "export_kwh": 0.0}


def _stored(db_url: str, ts: datetime) -> bool:
    return bool(scalar(db_url, "SELECT count(*) FROM readings WHERE ts = %s", ts))


def test_readings_are_confirmed_only_once_a_standby_has_them(formation: Formation, broker: EmbeddedBroker) -> None:
    db_url = formation.url()
    upgrade(db_url)
    register_depot(db_url, SITE)
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    first, second = t0, t0 + timedelta(seconds=10)
    confirmations = Confirmations(broker.port)
    gateway = GatewayPublisher("127.0.0.1", broker.port, client_id="ha-gateway")
    try:
        with running_ingest(
            db_url, broker.port, client_id="ingest-ha", confirm_replicated=True, confirm_replicated_wait_s=0.5
        ) as worker:
            # Both servers up: stored on two, confirmed.
            gateway.publish(TOPIC, _reading(first, 100.0))
            assert confirmations.wait(first, 30), "a replicated reading was not confirmed"

            standby = next(s.name for s in formation.states() if s.name != formation.primary())
            formation.sigkill(standby)
            # pg_auto_failover turns synchronous replication off once it sees the standby gone; until then a
            # commit waits. Either way the reading ends up stored on the primary alone.
            gateway.publish(TOPIC, _reading(second, 100.5))
            wait_for(lambda: _stored(db_url, second), bool, timeout_s=90)
            assert not confirmations.wait(second, 3), "a reading on one server only was confirmed"
            assert worker.metrics.unreplicated_batches._value.get() >= 1

            formation.rejoin(standby)
            formation.wait_healthy(180)
            gateway.publish(TOPIC, _reading(second, 100.5))  # the gateway's resend of what was not confirmed
            assert confirmations.wait(second, 60), "the resend was not confirmed once the standby was back"
            assert scalar(db_url, "SELECT count(*) FROM readings WHERE ts = %s", second) == 1  # no duplicate
    finally:
        gateway.close()
        close_client(confirmations.client)
