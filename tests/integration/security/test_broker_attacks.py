"""A hostile site against a real Mosquitto running the `vpp broker-config` rules, with the real ingest
worker consuming while it attacks. Each case asserts the refusal and that nothing was read or lost:
the victim's readings are all stored, the attacker received nothing, no service was kicked off.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from services.ingest.subscriber import Subscriber
from tests.integration.ingest_fixtures import running_ingest, scalar
from tests.integration.security.conftest import (
    INGEST_PASSWORD,
    NOT_AUTHORIZED,
    SCHEDULER_PASSWORD,
    TIMEOUT_S,
    WITH_WILL,
    Probe,
    SecuredBroker,
)
from tests.support.waiting import wait_for
from vpp.broker_roles import MAX_PACKET_BYTES
from vpp.mqtt import dr_signal_topic, status_topic, telemetry_topic

pytestmark = pytest.mark.integration

READINGS = 60
COUNT_SQL = """SELECT count(*) FROM readings r JOIN devices d ON d.id = r.device_pk
               JOIN sites s ON s.id = d.site_pk WHERE s.site_id = %s"""


def victim_reading(i: int) -> bytes:
    ts = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=2) + timedelta(seconds=i)
    return f'{{"ts": "{ts.isoformat()}", "power_kw": {10 + i}}}'.encode()


def attack_subscriptions(attacker: Probe) -> None:
    """Every way to read another site's data or join ingest's stream is refused at SUBACK."""
    filters = [
        "$share/ingest/vpp/v1/+/+/telemetry",  # join ingest's shared group and take its share
        "$share/attack/vpp/v1/site-b/+/telemetry",
        "$SYS/#",
        "vpp/v1/site-b/+/telemetry",
        "vpp/v1/+/+/telemetry",
        "vpp/v1/#",
        "#",
        dr_signal_topic("site-b"),
        "vpp/v1/+/dr/signal",
    ]
    assert [rc.value for rc in attacker.subscribe(*filters)] == [NOT_AUTHORIZED] * len(filters)


def test_hostile_site_steals_and_loses_nothing_while_ingest_runs(secured: SecuredBroker, db_url: str) -> None:
    with running_ingest(
        db_url, secured.broker.port, client_id="ingest-1", username="ingest", password=INGEST_PASSWORD
    ) as worker:
        assert isinstance(worker.subscriber, Subscriber)
        ingest_client = worker.subscriber.client
        scheduler = secured.probe("dr-scheduler", "scheduler", SCHEDULER_PASSWORD)
        victim = secured.site("site-b", "gw-site-b")
        attacker = secured.site("site-a", "gw-site-a")
        attack_subscriptions(attacker)

        # Client-id takeover: the broker replaces the id by the username, so these only replace the
        # attacker's own session. Ingest, the scheduler and the victim stay connected.
        hijackers = [
            secured.probe(client_id, "site-a", secured.secrets["site-a"])
            for client_id in ("ingest-1", "ingest", "dr-scheduler", "scheduler", "gw-site-b", "site-b")
        ]
        assert all(not h.connect_result.is_failure for h in hijackers)
        for h in hijackers[-1:]:  # the newest of the attacker's sessions survives; it joins the attack
            attack_subscriptions(h)

        for i in range(READINGS):
            assert not victim.publish(telemetry_topic("site-b", "meter-1"), victim_reading(i)).is_failure
            if i % 10 == 0:  # forged readings in the victim's name, interleaved with the genuine ones
                assert hijackers[-1].publish(telemetry_topic("site-b", "meter-1"), b'{"power_kw": -1}').value == (
                    NOT_AUTHORIZED
                )

        wait_for(lambda: scalar(db_url, COUNT_SQL, "site-b"), lambda n: n == READINGS, timeout_s=20)
        assert ingest_client.is_connected()
        assert not victim.disconnected.is_set()
        assert not scheduler.disconnected.is_set()
        assert all(h.messages.empty() for h in [attacker, *hijackers])
    assert scalar(db_url, "SELECT count(*) FROM dead_letters") == 0
    assert scalar(db_url, "SELECT min(power_kw) FROM readings") == 10.0


def test_last_will_and_retained_messages_cannot_land_on_another_site(secured: SecuredBroker) -> None:
    scheduler = secured.probe("dr-scheduler", "scheduler", SCHEDULER_PASSWORD)
    assert not scheduler.publish(dr_signal_topic("site-b"), b"plan-b", retain=True).is_failure
    watcher = secured.probe("watch", "watcher", INGEST_PASSWORD)
    assert watcher.subscribe(status_topic("+"))[0].value == 1

    attacker = secured.site("site-a")
    assert attacker.publish(dr_signal_topic("site-b"), b"forged plan", retain=True).value == NOT_AUTHORIZED
    assert attacker.publish(status_topic("site-b"), b"offline", retain=True).value == NOT_AUTHORIZED
    attacker.close()
    willing = secured.probe("gw-a", "site-a", secured.secrets["site-a"], will=(status_topic("site-b"), b"offline"))
    if not willing.connect_result.is_failure:
        willing.client.disconnect(reasoncode=ReasonCode(PacketTypes.DISCONNECT, identifier=WITH_WILL))
        assert willing.disconnected.wait(TIMEOUT_S)

    # A fresh subscriber of site B gets the scheduler's retained plan and B's status as B left it.
    victim = secured.site("site-b")
    assert not victim.publish(status_topic("site-b"), b"online", retain=True).is_failure
    assert victim.subscribe(dr_signal_topic("site-b"))[0].value == 1
    assert victim.next_message() == (dr_signal_topic("site-b"), b"plan-b")
    assert watcher.next_message() == (status_topic("site-b"), b"online")
    assert watcher.messages.empty(), "the forged will or retained status arrived"
    late = secured.probe("watch-late", "ingest-2", INGEST_PASSWORD)
    assert late.subscribe(status_topic("site-b"))[0].value == 1
    assert late.next_message() == (status_topic("site-b"), b"online")


@pytest.mark.parametrize("mqtt5", [False, True], ids=["mqtt311", "mqtt5"])
def test_oversized_packet_is_refused_and_the_site_keeps_working(
    secured: SecuredBroker, db_url: str, mqtt5: bool
) -> None:
    with running_ingest(db_url, secured.broker.port, client_id="ingest-1", username="ingest", password=INGEST_PASSWORD):
        attacker = secured.probe("gw-a", "site-a", secured.secrets["site-a"], mqtt5=mqtt5)
        assert not attacker.connect_result.is_failure
        # QoS 0: paho would resend a QoS 1 message for ever after each reconnect (v5 loops reconnecting).
        attacker.client.publish(telemetry_topic("site-a", "meter-1"), b"x" * (MAX_PACKET_BYTES + 1024), qos=0)
        assert attacker.disconnected.wait(TIMEOUT_S), "the broker kept a client that sent an oversized packet"
        attacker.close()
        again = secured.site("site-a", "gw-a")
        assert not again.publish(telemetry_topic("site-a", "meter-1"), victim_reading(1)).is_failure
        wait_for(lambda: scalar(db_url, COUNT_SQL, "site-a"), lambda n: n == 1)
    assert scalar(db_url, "SELECT count(*) FROM dead_letters") == 0
