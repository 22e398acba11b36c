"""Shared set-up for the ingest integration tests: a registered depot and a running worker."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from services.ingest.worker import IngestConfig, IngestWorker
from vpp.domain.devices import DeviceKind
from vpp.mqtt import BrokerAddress
from vpp.postgres.registry import DeviceSpec, SiteRecord, register_site

DEPOT_DEVICES = (
    DeviceSpec("meter-1", DeviceKind.METER),
    DeviceSpec("pv-1", DeviceKind.PV, rated_power_kw=45.0),
    DeviceSpec("battery-1", DeviceKind.BATTERY, rated_power_kw=20.0),
    DeviceSpec("ev-1", DeviceKind.EV_CHARGER, rated_power_kw=150.0),
)


def register_depot(db_url: str, site_id: str = "depot-a") -> None:
    with psycopg.connect(db_url) as conn:
        register_site(
            conn,
            SiteRecord(
                site_id,
                "Test depot",
                35.57,
                139.6,
                pv_kw=45,
                battery_kwh=61,
                battery_kw=20,
                renewable_share=1.0,
                regions=("kawasaki",),
            ),
            DEPOT_DEVICES,
        )
        conn.commit()


@contextmanager
def running_ingest(
    db_url: str, port: int, client_id: str = "ingest-test", **overrides: object
) -> Iterator[IngestWorker]:
    config = IngestConfig(
        database_url=db_url,
        broker=BrokerAddress("127.0.0.1", port),
        client_id=client_id,
        batch_max_wait_s=0.05,
        rollup_interval_s=0.2,
        rollup_delay_s=0.0,
        **overrides,  # type: ignore[arg-type]
    )
    worker = IngestWorker(config)
    thread = worker.start_in_thread()
    if not worker.subscriber.subscribed.wait(10):
        worker.stop()
        raise AssertionError("ingest did not connect to the broker")
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(30)


def scalar(db_url: str, sql: str, *params: object) -> Any:  # a database value: its type is the column's
    with psycopg.connect(db_url) as conn:
        row = conn.execute(sql, params).fetchone()
        return row[0] if row else None
