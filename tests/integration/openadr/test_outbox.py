"""The notification outbox end to end, with the `openadr3` package as business logic and as the VEN.

The DR scheduler's peak-cut (written by `publish_dr_event` in the planner's transaction, not through
the REST routes) reaches the subscribed VEN's webhook within 2 s; its revision, made while the API
process is down, arrives within 2 s of a new API process starting; its cancellation arrives too,
and the VEN's USAGE report for the cancelled event is still readable afterwards.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import httpx
import openadr3
import psycopg
import pytest
from psycopg.types.json import Jsonb

from services.api.main import create_app
from tests.integration.api.server import serving
from tests.integration.openadr.conftest import CLIENTS, validate_response, vtn_settings
from tests.integration.openadr.receiver import Receiver, receiving
from tests.integration.openadr.spec_validation import BASE_PATH
from tests.integration.openadr.vtn_setup import cancel_scheduler_event, scheduler_event
from vpp.domain.slots import JST
from vpp.postgres.openadr_clients import add_openadr_client

pytestmark = pytest.mark.integration

START = datetime(2030, 9, 2, 14, 0, tzinfo=JST)
DELIVERY_BOUND_S = 2.0


@contextmanager
def _api(db_url: str) -> Iterator[str]:
    """A fresh API process's worth of state (engine, delivery loop) serving the VTN."""
    with serving(create_app(vtn_settings(), database_url=db_url)) as url:
        yield url + BASE_PATH


def _validated(client: openadr3.OpenADRClient) -> openadr3.OpenADRClient:
    client._http.event_hooks["response"].append(validate_response)
    return client


def _ven(base: str) -> openadr3.OpenADRClient:
    ven = CLIENTS["ven_a"]
    return _validated(openadr3.create_ven_client(base, openadr3.fetch_token(base, ven.client_id, ven.secret)))


def _next_notification(receiver: Receiver, count: int, started: float) -> tuple[openadr3.Notification, float]:
    receiver.wait(count, timeout_s=10)
    raw, auth = receiver.received[count - 1]
    assert auth == "Bearer depot-webhook-secret"
    return openadr3.coerce_notification(raw), time.monotonic() - started


def _queued(db_url: str) -> int:
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT (SELECT count(*) FROM openadr_changes) + (SELECT count(*) FROM openadr_deliveries)")
        return int(row.fetchone()[0])  # type: ignore[index]


def test_scheduler_peak_cut_revision_and_cancellation_reach_the_ven_across_an_api_restart(vtn_db: str) -> None:
    bl_client = CLIENTS["bl"]
    report_body = {
        "clientName": "depot-a-ems",
        "resources": [
            {
                "resourceName": "meter-1",
                "intervalPeriod": {"start": START.isoformat(), "duration": "PT30M"},
                "intervals": [{"id": 0, "payloads": [{"type": "USAGE", "values": [17.5]}]}],
            }
        ],
    }
    subscription = {
        "clientName": "depot-a-ems",
        "objectOperations": [
            {
                "objects": ["EVENT"],
                "operations": ["CREATE", "UPDATE", "DELETE"],
                "callbackUrl": "",
                "bearerToken": "depot-webhook-secret",
            }
        ],
    }
    with receiving() as receiver:
        subscription["objectOperations"][0]["callbackUrl"] = receiver.url  # type: ignore[index]
        with _api(vtn_db) as base:
            bl_token = openadr3.fetch_token(base, bl_client.client_id, bl_client.secret)
            with _validated(openadr3.create_bl_client(base, bl_token)) as bl:
                granted = bl.create_ven(
                    {"objectType": "BL_VEN_REQUEST", "venName": "outbox-depot", "clientID": "ven-depot-a",
                     "targets": ["site:depot-a"]}
                )  # fmt: skip
                assert granted.status_code == 201, granted.text
            with _ven(base) as ven:
                sub = ven.create_subscription(subscription)
                assert sub.status_code == 201, sub.text

                started = time.monotonic()
                scheduler_event(vtn_db, "peak_cut", "dr-2030-09-02-pc", {"depot-a": 40.0, "office-b": 55.0}, START)
                created, took_s = _next_notification(receiver, 1, started)
                assert took_s < DELIVERY_BOUND_S
                assert (created.object_type, created.operation) == ("EVENT", "CREATE")
                event = created.object
                assert isinstance(event, openadr3.Event)
                assert event.targets == ["site:depot-a"]  # the depot's event only, office-b's target hidden
                assert str(event.event_name).endswith("r1")

                report = ven.create_report({"eventID": event.id, **report_body})
                assert report.status_code == 201, report.text
                report_id = openadr3.body(report)["id"]

        # The API process is gone; the scheduler re-plans meanwhile: the change waits in the outbox.
        scheduler_event(vtn_db, "peak_cut", "dr-2030-09-02-pc", {"depot-a": 35.0, "office-b": 55.0}, START, revision=2)
        assert _queued(vtn_db) >= 1
        assert len(receiver.received) == 1
        started = time.monotonic()
        with _api(vtn_db) as base:
            revised, took_s = _next_notification(receiver, 2, started)
            assert took_s < DELIVERY_BOUND_S
            assert isinstance(revised.object, openadr3.Event)
            assert (revised.operation, revised.object.id) == ("UPDATE", event.id)
            assert str(revised.object.event_name).endswith("r2")
            assert receiver.received[1][0]["object"]["intervals"][0]["payloads"] == [
                {"type": "IMPORT_CAPACITY_LIMIT", "values": [35.0]}
            ]

            started = time.monotonic()
            cancel_scheduler_event(vtn_db, "dr-2030-09-02-pc")
            cancelled, took_s = _next_notification(receiver, 3, started)
            assert took_s < DELIVERY_BOUND_S
            assert cancelled.operation == "DELETE"
            assert receiver.received[2][0]["object"]["id"] == event.id

            with _ven(base) as ven:
                assert event.id is not None
                assert ven.get_event_by_id(event.id).status_code == 404
                kept = ven.report(report_id)  # settlement evidence outlives the event
                assert kept.event_id == event.id
                assert [float(v) for v in kept.resources[0].intervals[0].payloads[0].values] == [17.5]
        # Nothing else: office-b's event is not the depot's to hear about.
        assert [raw["operation"] for raw, _ in receiver.received] == ["CREATE", "UPDATE", "DELETE"]
    assert _queued(vtn_db) == 0


def _metric(api_url: str, name: str, missing: float | None = None) -> float:
    for line in httpx.get(api_url + "/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    if missing is not None:
        return missing
    raise AssertionError(f"{name} not exported")


def test_refused_webhook_is_a_dead_letter_in_the_metrics(vtn_url: str, vtn_db: str) -> None:
    base = vtn_url + BASE_PATH
    bl_client = CLIENTS["bl"]
    with receiving([404]) as receiver:
        with _validated(
            openadr3.create_bl_client(base, openadr3.fetch_token(base, bl_client.client_id, bl_client.secret))
        ) as bl:
            sub = bl.create_subscription(
                {"clientName": "bl-audit", "objectOperations": [
                    {"objects": ["PROGRAM"], "operations": ["CREATE"], "callbackUrl": receiver.url}]}
            )  # fmt: skip
            assert sub.status_code == 201, sub.text
            assert bl.create_program({"programName": "dead-letter-check"}).status_code == 201
        deadline = time.monotonic() + 10
        while _metric(vtn_url, "vpp_openadr_notifications_failed") < 1:
            assert time.monotonic() < deadline, "the refused delivery never showed as failed"
            time.sleep(0.2)
    assert receiver.attempts == 1  # a 404 is the subscriber's error: not retried
    with psycopg.connect(vtn_db) as conn:
        [(error, attempts)] = conn.execute(
            "SELECT last_error, attempts FROM openadr_deliveries WHERE failed_at IS NOT NULL"
        ).fetchall()
    assert (error, attempts) == ("HTTP 404", 1)
    assert _metric(vtn_url, "vpp_openadr_notifications_pending") == 0
    assert _metric(vtn_url, "vpp_openadr_notifications_oldest_pending_seconds") == 0
    assert _metric(vtn_url, 'vpp_openadr_webhook_attempts_total{outcome="failed"}') == 1


def test_two_api_processes_share_the_outbox_without_sending_twice(db_url: str) -> None:
    bl_client = CLIENTS["bl"]
    with psycopg.connect(db_url) as conn:
        add_openadr_client(conn, bl_client.client_id, bl_client.secret, "bl")
        conn.commit()
    count = 40
    with (
        receiving() as receiver,
        _api(db_url) as first,
        _api(db_url) as second,
        _validated(
            openadr3.create_bl_client(first, openadr3.fetch_token(first, bl_client.client_id, bl_client.secret))
        ) as bl,
    ):
        sub = {"clientName": "bl-audit", "objectOperations": [
            {"objects": ["PROGRAM"], "operations": ["CREATE"], "callbackUrl": receiver.url}]}  # fmt: skip
        assert bl.create_subscription(sub).status_code == 201
        with psycopg.connect(db_url) as conn:  # written outside either process: both loops race for them
            for n in range(count):
                conn.execute(
                    """INSERT INTO openadr_programs (id, program_name, client_id, body, created_at, modified_at)
                       VALUES (%s, %s, 'cli', %s, now(), now())""",
                    (f"p-{n}", f"p-{n}", Jsonb({"programName": f"p-{n}"})),
                )
            conn.commit()
        receiver.wait(count, timeout_s=10)
        time.sleep(0.5)  # a duplicate would arrive within a few poll intervals
        delivered = 'vpp_openadr_webhook_attempts_total{outcome="delivered"}'
        per_process = [_metric(api.removesuffix(BASE_PATH), delivered, missing=0.0) for api in (first, second)]
        assert sum(per_process) == count
    ids = [raw["object"]["id"] for raw, _ in receiver.received]
    assert sorted(ids) == sorted(f"p-{n}" for n in range(count))
