"""`vpp simulate --echonet-homes`: emulated homes behind gateways, into ingest and PostgreSQL, DR signal out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from services.gateway.fleet import EchonetFleet, register_home
from tests.integration.ingest_fixtures import running_ingest, scalar
from tests.support.waiting import wait_for
from vpp.domain.dr_events import DrSignal, SignalInterval, signal_payload
from vpp.embedded.broker import EmbeddedBroker
from vpp.mqtt import BrokerAddress, close_client, dr_signal_topic, make_client

pytestmark = pytest.mark.integration


def test_two_homes_reach_the_database_and_a_peak_cut_reaches_one_battery(
    db_url: str, broker: EmbeddedBroker, tmp_path: Path
) -> None:
    fleet = EchonetFleet(2, BrokerAddress("127.0.0.1", broker.port), tmp_path / "fleet", poll_s=0.5, seed=7)
    try:
        fleet.build()
        with psycopg.connect(db_url) as conn:
            for site_id, home in zip(fleet.site_ids(), fleet.emulated, strict=True):
                register_home(conn, site_id, home)
            conn.commit()
        with running_ingest(db_url, broker.port, client_id="ingest-echonet"):
            fleet.start()
            per_device = "SELECT count(DISTINCT r.device_pk) FROM readings r"
            wait_for(lambda: scalar(db_url, per_device), lambda n: n == 8, timeout_s=30)
            home = fleet.emulated[0]
            home.state.ev_connected = False  # the battery alone answers the signal here
            home.state.load_w, home.state.pv_w = 3000.0, 500.0
            limit_kw = 1.5  # 1 kW below the idle import of 2.5 kW
            now = datetime.now(UTC)
            signal = DrSignal("evt-homes", 1, "peak_cut", "active", now,
                              (SignalInterval(now - timedelta(minutes=1), now + timedelta(minutes=29), limit_kw),))  # fmt: skip
            client = make_client("test-scheduler")
            client.connect("127.0.0.1", broker.port)
            client.loop_start()
            client.publish(dr_signal_topic("jp-home-001"), signal_payload(signal), qos=1, retain=True).wait_for_publish(
                5
            )
            close_client(client)
            wait_for(lambda: home.state.battery_w, lambda w: w == pytest.approx(-1000.0), timeout_s=15)
            battery_kw = """SELECT r.power_kw FROM readings r JOIN devices d ON d.id = r.device_pk
                            JOIN sites s ON s.id = d.site_pk
                            WHERE s.site_id = 'jp-home-001' AND d.kind = 'battery' ORDER BY r.ts DESC LIMIT 1"""
            wait_for(lambda: scalar(db_url, battery_kw), lambda kw: kw == pytest.approx(1.0), timeout_s=15)
            assert fleet.emulated[1].state.battery_w == 0.0, "the other home had no signal"
            assert scalar(db_url, "SELECT count(*) FROM dead_letters") == 0
    finally:
        fleet.close()
