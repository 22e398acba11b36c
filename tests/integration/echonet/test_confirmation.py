"""End-to-end confirmation for the ECHONET Lite gateway: readings leave its on-disk backlog only when
the platform's ingest reports them stored on `vpp/v1/{site}/stored`, never on the broker's PUBACK.

Real Mosquitto, the real ingest worker and PostgreSQL; the devices are uecho-emulated inside network
namespaces (no ECHONET Lite packet leaves the machine).
"""

from __future__ import annotations

import logging
import os
import time
from datetime import datetime
from typing import Any

import psycopg
import pytest

from services.gateway.fleet import register_home
from tests.integration.echonet.conftest import POLL_S, SITE, RunningGateway, Watcher
from tests.integration.ingest_fixtures import running_ingest
from tests.support.waiting import wait_for
from vpp.embedded.broker import EmbeddedBroker
from vpp.simulation.echonet_home import EmulatedHome

pytestmark = pytest.mark.integration

DEVICES = 4
DOWN_S = float(os.environ.get("VPP_TEST_BROKER_DOWN_S", "10"))  # VPP_TEST_BROKER_DOWN_S=60: the full minute
IN_FLIGHT = 2 * DEVICES  # the last poll or two may still be on its way when a check runs


def stored_keys(db_url: str) -> set[tuple[str, datetime]]:
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT d.device_id, r.ts FROM readings r JOIN devices d ON d.id = r.device_pk"
            " JOIN sites s ON s.id = d.site_pk WHERE s.site_id = %s",
            (SITE,),
        ).fetchall()
    return {(str(device), ts) for device, ts in rows}


def as_instants(keys: list[tuple[str, str]]) -> set[tuple[str, datetime]]:
    return {(device, datetime.fromisoformat(ts)) for device, ts in keys}


@pytest.fixture
def gateway_options() -> dict[str, Any]:
    return {"resend_after_s": 3.0}  # end-to-end confirmation (the default), resends after 3 s


@pytest.mark.slow
def test_readings_stay_on_disk_until_stored_through_ingest_and_broker_outages(
    db_url: str, broker: EmbeddedBroker, home: EmulatedHome, gateway: RunningGateway, watcher: Watcher
) -> None:
    with psycopg.connect(db_url) as conn:
        register_home(conn, SITE, home)
        conn.commit()
    publisher = wait_for(lambda: gateway.gateway.publisher, lambda p: p is not None, timeout_s=10)
    assert publisher is not None
    assert not publisher.confirm_on_puback

    with running_ingest(db_url, broker.port, client_id="ingest-echonet"):
        wait_for(lambda: {d for d, _ in stored_keys(db_url)}, lambda d: len(d) == DEVICES, timeout_s=30)
        wait_for(lambda: publisher.confirmed_count, lambda n: n >= 3 * DEVICES, timeout_s=20)
        wait_for(lambda: gateway.backlog.size(), lambda n: n <= IN_FLIGHT, timeout_s=20)

    # Ingest down, broker up: every reading is PUBACKed, none confirmed, so all of them stay on disk.
    confirmed_before = publisher.confirmed_count
    enqueued_before = len(gateway.enqueued)
    time.sleep(8 * POLL_S)
    taken = len(gateway.enqueued) - enqueued_before
    assert taken >= 4 * DEVICES
    wait_for(lambda: publisher.inflight, lambda n: n == 0, timeout_s=5)  # the broker has them all
    assert gateway.backlog.size() >= taken, "a PUBACK does not release a reading"
    assert publisher.confirmed_count == confirmed_before

    # Then the broker goes down too, for DOWN_S: the backlog keeps growing on disk.
    broker.stop()
    time.sleep(DOWN_S)
    held = gateway.backlog.size()
    assert held >= taken + DEVICES * int(DOWN_S / POLL_S * 0.6), held
    broker.start()
    assert publisher.connected_event.wait(30)
    time.sleep(4 * POLL_S)  # the gateway resends its backlog to a broker no ingest listens to yet
    assert gateway.backlog.size() >= held, "still nothing is confirmed: ingest is down"

    # Ingest back (its persistent session, whatever the broker kept): the backlog drains as it stores.
    with running_ingest(db_url, broker.port, client_id="ingest-echonet"):
        wait_for(lambda: gateway.backlog.size(), lambda n: n <= IN_FLIGHT, timeout_s=60)
        expected = as_instants(gateway.enqueued[: len(gateway.enqueued) - IN_FLIGHT])
        missing = wait_for(lambda: expected - stored_keys(db_url), lambda m: not m, timeout_s=20)
        assert not missing, f"{len(missing)} readings lost, e.g. {sorted(missing)[:3]}"
    assert gateway.backlog.dropped() == 0
    print(
        f"\nend-to-end: {len(gateway.enqueued)} readings taken, {held} held on disk during the outage,"
        f" {publisher.confirmations} stored messages confirmed {publisher.confirmed_count} readings,"
        f" {publisher.resent} resent for lack of a confirmation, 0 lost"
    )


@pytest.mark.parametrize(("backlog_max", "gateway_options"), [(20, {"resend_after_s": 1.0})])
def test_a_platform_that_never_confirms_keeps_the_backlog_bounded(
    home: EmulatedHome, gateway: RunningGateway, watcher: Watcher, caplog: pytest.LogCaptureFixture
) -> None:
    """No ingest: the broker PUBACKs everything and nobody confirms. The backlog stays within its 20
    messages (2.5 s of readings), the oldest go (counted, with a warning), and the unconfirmed ones are
    sent again after a second."""
    caplog.set_level(logging.WARNING, logger="vpp.gateway.backlog")
    sizes: list[int] = []

    def dropped_noting_the_size() -> int:
        sizes.append(gateway.backlog.size())
        return gateway.backlog.dropped()

    wait_for(dropped_noting_the_size, lambda n: n >= 2 * DEVICES, timeout_s=30)
    publisher = gateway.gateway.publisher
    assert publisher is not None
    wait_for(lambda: publisher.resent, lambda n: n > 0, timeout_s=15)
    assert max(sizes) <= 20
    assert gateway.backlog.size() == 20
    assert any("backlog full" in r.getMessage() for r in caplog.records)
    assert publisher.confirmed_count == 0
    # The kept ones are the newest: the oldest were dropped.
    kept = [p.seq for p in gateway.backlog.pending(0, limit=100)]
    assert kept == list(range(kept[0], kept[0] + len(kept)))
    assert kept[0] > gateway.backlog.dropped() - DEVICES
