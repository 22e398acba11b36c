"""Polling that cannot miss: with 200 ended events on record, a VEN polling `GET /events` with default
parameters (the `openadr3` package's `events()`) still sees a new peak-cut; ended events past the
retention setting are deleted while their reports stay."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx
import openadr3
import psycopg
import pytest
from psycopg.types.json import Jsonb

from services.api.main import create_app
from tests.integration.api.server import serving
from tests.integration.openadr.conftest import CLIENTS, validate_response, vtn_settings
from tests.integration.openadr.spec_validation import BASE_PATH
from tests.integration.openadr.vtn_setup import grant_sites, scheduler_event
from vpp.domain.slots import JST
from vpp.postgres.registry import SiteRecord, register_site

pytestmark = pytest.mark.integration


def _ended_events(conn: psycopg.Connection, program_id: str, count: int, ended_days_ago: float) -> None:
    """`count` events of the depot that ended `ended_days_ago` or more days ago, as business logic made them."""
    now = datetime.now(UTC)
    for n in range(count):
        start = now - timedelta(days=ended_days_ago, hours=1 + n)
        body = {"programID": program_id, "eventName": f"past-{n}", "intervals": [],
                "intervalPeriod": {"start": start.isoformat(), "duration": "PT1H"}}  # fmt: skip
        conn.execute(
            """INSERT INTO openadr_events (id, program_id, client_id, targets, body, created_at, modified_at, ends_at)
               VALUES (%s, %s, 'bl-operator', ARRAY['site:depot-a'], %s, %s, %s, %s)""",
            (f"past-{n}", program_id, Jsonb(body), start - timedelta(days=1), start, start + timedelta(hours=1)),
        )


def _program(conn: psycopg.Connection, name: str) -> str:
    now = datetime.now(UTC)
    conn.execute(
        """INSERT INTO openadr_programs (id, program_name, client_id, body, created_at, modified_at)
           VALUES (%s, %s, 'bl-operator', %s, %s, %s)""",
        (name, name, Jsonb({"programName": name}), now, now),
    )
    return name


def test_ven_polling_with_defaults_sees_a_new_event_behind_200_ended_ones(
    vtn: httpx.Client, tokens: dict[str, str], vtn_url: str, vtn_db: str
) -> None:
    grant_sites(vtn, tokens["bl"])
    with psycopg.connect(vtn_db) as conn:
        _ended_events(conn, _program(conn, "past-program"), 200, ended_days_ago=1)
        conn.commit()
    scheduler_event(vtn_db, "peak_cut", "dr-2030-11-05-pc", {"depot-a": 42.0}, datetime(2030, 11, 5, 14, tzinfo=JST))

    base = vtn_url + BASE_PATH
    ven_client = CLIENTS["ven_a"]
    token = openadr3.fetch_token(base, ven_client.client_id, ven_client.secret)
    with openadr3.create_ven_client(base, token) as ven:
        ven._http.event_hooks["response"].append(validate_response)
        polled = ven.events()
    page = vtn.get("/events", headers={"Authorization": f"Bearer {token}"}).json()
    assert len(page) == 50  # the default page is full: 201 events are visible to the depot's VEN
    assert [e.event_name for e in polled] == [e["eventName"] for e in page]
    assert page[0]["eventName"] == "dr-2030-11-05-pc peak-cut depot-a r1"
    assert all(e["eventName"].startswith("past-") for e in page[1:])


def test_ended_events_past_retention_are_deleted_and_their_reports_kept(db_url: str) -> None:
    now = datetime.now(UTC)
    with psycopg.connect(db_url) as conn:
        register_site(conn, SiteRecord("depot-a", "Depot A", 35.6, 139.6), ())
        program_id = _program(conn, "retention")
        _ended_events(conn, program_id, 2, ended_days_ago=3)  # past the retention of 2 days
        conn.execute(
            """INSERT INTO openadr_events (id, program_id, client_id, body, created_at, modified_at, ends_at)
               VALUES ('recent', %s, 'bl', %s, %s, %s, %s)""",
            (program_id, Jsonb({"programID": program_id, "intervals": []}), now, now, now - timedelta(days=1)),
        )
        conn.execute(
            """INSERT INTO openadr_reports (id, event_id, program_id, client_name, client_id, body, created_at,
                                            modified_at)
               VALUES ('usage-1', 'past-0', %s, 'ems', 'ven-depot-a', %s, %s, %s)""",
            (program_id, Jsonb({"eventID": "past-0", "clientName": "ems", "resources": []}), now, now),
        )
        conn.commit()
    with serving(create_app(vtn_settings(openadr_event_retention_days=2), database_url=db_url)):
        deadline = time.monotonic() + 10
        while True:
            with psycopg.connect(db_url) as conn:
                left = [r[0] for r in conn.execute("SELECT id FROM openadr_events ORDER BY id")]
            if left == ["recent"] or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    assert left == ["recent"]
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT event_id, body->>'eventID' FROM openadr_reports").fetchall() == [
            ("past-0", "past-0")
        ]
