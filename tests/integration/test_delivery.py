"""End-to-end delivery: confirmations to the site, no window on a broker restart, crash-safe rollup,
and physically impossible energy kept out of the 30-minute rows."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
import pytest

from services.cli.seed import register_simulated_site
from tests.integration.ingest_fixtures import register_depot, running_ingest, scalar
from tests.support.mqtt_publisher import GatewayPublisher
from tests.support.waiting import wait_for
from vpp.embedded.broker import EmbeddedBroker
from vpp.mqtt import BrokerAddress, close_client, make_client, site_partition, stored_topic
from vpp.postgres.readings import ReadingWriter
from vpp.postgres.rollup import _CLAIM, run_rollup
from vpp.simulation.model import SiteSimulator, SiteSpec
from vpp.simulation.publisher import SimulationPublisher

pytestmark = pytest.mark.integration


def _hour_ago() -> datetime:
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)


def test_site_gets_exactly_its_stored_readings_confirmed(db_url: str, broker: EmbeddedBroker) -> None:
    register_depot(db_url)
    got: list[dict[str, Any]] = []
    arrived = threading.Event()
    site = make_client("site-listener")

    def on_message(_c: object, _u: object, m: mqtt.MQTTMessage) -> None:
        got.append(json.loads(m.payload))
        arrived.set()

    site.on_message = on_message
    site.connect("127.0.0.1", broker.port)
    site.subscribe(stored_topic("depot-a"), qos=1)
    site.loop_start()
    t0 = _hour_ago()
    with running_ingest(db_url, broker.port):
        gateway = GatewayPublisher("127.0.0.1", broker.port)
        try:
            stamps = [t0 + timedelta(seconds=10 * i) for i in range(5)]
            body = {"readings": [{"ts": ts.astimezone(UTC).isoformat(), "power_kw": 1.0} for ts in stamps]}
            gateway.publish("vpp/v1/depot-a/meter-1/telemetry", body)
            gateway.publish("vpp/v1/depot-a/meter-1/telemetry", {"ts": "garbage", "power_kw": 1.0})  # never confirmed
            gateway.wait_acked()
            wait_for(lambda: arrived.is_set(), bool)
            wait_for(lambda: scalar(db_url, "SELECT count(*) FROM dead_letters"), lambda n: n == 1)
        finally:
            gateway.close()
            close_client(site)
    confirmed = {datetime.fromisoformat(ts) for m in got for ts in m["stored"]["meter-1"]}
    assert confirmed == set(stamps)
    assert all(m["v"] == 1 and set(m["stored"]) == {"meter-1"} for m in got)


def test_simulated_gateway_keeps_readings_until_confirmed_and_resends_after_reconnect(
    db_url: str, broker: EmbeddedBroker
) -> None:
    spec = SiteSpec(site_id="depot-a")
    with psycopg.connect(db_url) as conn:
        register_simulated_site(conn, spec)
        conn.commit()
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    publisher = SimulationPublisher([SiteSimulator(spec, start)], BrokerAddress("127.0.0.1", broker.port))
    try:
        # Ingest is not running and has never subscribed: the broker drops these (no subscriber).
        for i in range(1, 4):
            publisher.step(start + timedelta(seconds=10 * i))
        publisher.wait_acked(10)
        assert len(publisher.backlog) > 0
        assert scalar(db_url, "SELECT count(*) FROM readings") == 0
        kept = len(publisher.backlog)
        with running_ingest(db_url, broker.port):
            broker.restart()  # the gateway reconnects and resends everything unconfirmed
            wait_for(lambda: publisher._resend_due.is_set() or publisher._connects > 1, bool)
            publisher.step(start + timedelta(seconds=40))
            wait_for(lambda: len(publisher.backlog), lambda n: n == 0)
        stored = scalar(db_url, "SELECT count(*) FROM readings")
        # Every reading was confirmed once it was stored, including the ones the broker had dropped.
        assert publisher.backlog.confirmed == stored
        assert stored >= kept
        assert publisher.resent > 0
    finally:
        publisher.close()


def test_partitioned_workers_miss_nothing_published_while_they_are_away_across_a_broker_restart(
    db_url: str, broker: EmbeddedBroker
) -> None:
    sites = ["depot-a", "depot-d"]  # CRC-32 puts them in different partitions of two
    assert {site_partition(f"vpp/v1/{s}/x/telemetry", 2) for s in sites} == {0, 1}
    for site in sites:
        register_depot(db_url, site)
    t0 = _hour_ago()
    workers = [
        running_ingest(db_url, broker.port, client_id=f"ingest-p{i}", partition=i, partitions=2) for i in range(2)
    ]
    for w in workers:
        w.__enter__()  # subscribe once: the sessions now exist
    for w in workers:
        w.__exit__(None, None, None)
    broker.restart()  # graceful: the plain subscriptions come back from the persistence file
    gateway = GatewayPublisher("127.0.0.1", broker.port)
    try:
        for i in range(200):
            ts = (t0 + timedelta(seconds=i)).isoformat()
            for site in sites:
                gateway.publish(f"vpp/v1/{site}/meter-1/telemetry", {"ts": ts, "power_kw": 1.0})
        gateway.wait_acked()
        with (
            running_ingest(db_url, broker.port, client_id="ingest-p0", partition=0, partitions=2),
            running_ingest(db_url, broker.port, client_id="ingest-p1", partition=1, partitions=2),
        ):
            wait_for(lambda: scalar(db_url, "SELECT count(*) FROM readings"), lambda n: n == 400, timeout_s=30)
    finally:
        gateway.close()


def _meter(db_url: str) -> int:
    return int(scalar(db_url, "SELECT id FROM devices WHERE device_id = 'meter-1'"))  # type: ignore[call-overload]


def test_rollup_killed_after_its_claim_is_finished_by_the_next_rollup(db_url: str) -> None:
    register_depot(db_url)
    meter, slot = _meter(db_url), _hour_ago()
    with psycopg.connect(db_url) as conn:
        ReadingWriter(conn).write(
            [(meter, slot + timedelta(minutes=m), None, 100.0 + m, None, None, None) for m in (1, 11)]
        )
    # A rollup that claimed and then died (its connection gone before the recompute committed).
    crashed = psycopg.connect(db_url)
    crashed.execute(_CLAIM, {"limit": 5000, "delay": 0})
    crashed.commit()
    crashed.close()
    assert scalar(db_url, "SELECT count(*) FROM energy_dirty") == 0
    assert scalar(db_url, "SELECT count(*) FROM energy_claims") > 0
    with psycopg.connect(db_url) as conn:
        run_rollup(conn)
    assert scalar(db_url, "SELECT import_kwh FROM site_energy_30min WHERE slot_start = %s", slot) == pytest.approx(10.0)
    assert scalar(db_url, "SELECT count(*) FROM energy_claims") == 0


@pytest.mark.parametrize("offset_kwh", [5000.0, 0.5])  # far apart, and close enough to pass the rating alone
def test_interleaved_counters_of_two_gateways_are_anomalies_not_demand(db_url: str, offset_kwh: float) -> None:
    register_depot(db_url)
    battery = int(scalar(db_url, "SELECT id FROM devices WHERE device_id = 'battery-1'"))  # type: ignore[call-overload]
    slot = _hour_ago()
    rows = []
    for i in range(60):  # two gateways, one counter ahead of the other, 10 kW discharge
        counter = 1000.0 + i * 10 * 10 / 3600 + (offset_kwh if i % 2 else 0.0)
        rows.append((battery, slot + timedelta(seconds=10 * i), 10.0, counter, 0.0, 50.0, None))
    with psycopg.connect(db_url) as conn:
        ReadingWriter(conn).write(rows)
        run_rollup(conn)
        pos, anomalies = conn.execute(
            "SELECT pos_kwh, anomalies FROM device_energy_30min WHERE device_pk = %s AND slot_start = %s",
            (battery, slot),
        ).fetchone()  # type: ignore[misc]
    # 590 s at 10 kW from the power readings, not thousands of kWh from the counter jumps.
    assert pos == pytest.approx(10.0 * 590 / 3600, rel=1e-6)
    assert anomalies == (59 if offset_kwh > 100 else 29)  # every interval, or every step back


def test_a_site_registered_moments_ago_has_its_first_messages_stored_and_unknown_ids_stay_dead_letters(
    db_url: str, broker: EmbeddedBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    import services.ingest.database as database_module

    probes: list[int] = []
    real_probe = database_module.registered_any  # type: ignore[attr-defined]  # the registry adapter's import, patched below

    def counting_probe(*args: object) -> bool:
        probes.append(1)
        return real_probe(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(database_module, "registered_any", counting_probe)
    ts = _hour_ago().isoformat()
    dead = "SELECT count(*) FROM dead_letters WHERE topic LIKE %s"
    with running_ingest(db_url, broker.port, registry_probe_interval_s=0.5):
        gateway = GatewayPublisher("127.0.0.1", broker.port)
        try:
            # Ingest looks at the registry right now (an unknown site's messages), so the site below
            # is registered after ingest's newest copy of it: its first messages are misses.
            gateway.publish("vpp/v1/nowhere/meter-1/telemetry", {"ts": ts, "power_kw": 1.0})
            gateway.publish("vpp/v1/nowhere/status", b"online")
            gateway.wait_acked()
            wait_for(lambda: scalar(db_url, dead, "vpp/v1/nowhere/%"), lambda n: n == 2)
            register_depot(db_url, "depot-new")
            gateway.publish("vpp/v1/depot-new/status", b"online")
            gateway.publish("vpp/v1/depot-new/meter-1/telemetry", {"ts": ts, "power_kw": 2.0, "import_kwh": 5.0})
            gateway.wait_acked()
            wait_for(
                lambda: scalar(
                    db_url,
                    "SELECT count(*) FROM readings r JOIN devices d ON d.id = r.device_pk"
                    " JOIN sites s ON s.id = d.site_pk WHERE s.site_id = 'depot-new'",
                ),
                lambda n: n == 1,
            )
            wait_for(
                lambda: scalar(
                    db_url,
                    "SELECT online FROM site_status st JOIN sites s ON s.id = st.site_pk WHERE s.site_id = 'depot-new'",
                ),
                lambda online: online is True,
            )
            assert scalar(db_url, dead, "vpp/v1/depot-new/%") == 0

            # Still unknown after the probe: dead letters with their reason, and a flood of made-up
            # site ids costs at most one registry probe per interval, not one per message.
            probes.clear()
            for n in range(300):
                gateway.publish(f"vpp/v1/made-up-{n}/status", b"online")
            gateway.wait_acked()
            wait_for(lambda: scalar(db_url, dead, "vpp/v1/made-up-%"), lambda n: n == 300)
            reasons = scalar(
                db_url, "SELECT array_agg(DISTINCT reason) FROM dead_letters WHERE topic LIKE %s", "vpp/v1/made-up-%"
            )
            assert reasons == ["unknown_site"]
            assert 1 <= len(probes) < 300
        finally:
            gateway.close()
