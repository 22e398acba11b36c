"""The DR routes against a real API server and database; the scheduler's side runs in the test with a
recording signal sink, so the request → scheduler → lifecycle hand-over is exercised without a broker."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from services.api.main import create_app
from services.dr_scheduler.scheduler import Scheduler
from tests.integration.api.api_fixtures import CLIENTS, add_clients, api_settings
from tests.integration.api.server import serving
from tests.integration.ingest_fixtures import DEPOT_DEVICES, register_depot
from vpp.domain.dr_events import parse_signal
from vpp.postgres import dr_events as store
from vpp.postgres.connect import asyncpg_url
from vpp.postgres.dr_requests import verified_savings_kwh
from vpp.postgres.dr_verification import ReductionRow, save_reductions
from vpp.postgres.registry import SiteRecord, register_site

pytestmark = pytest.mark.integration


class RecordingSink:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, str]] = []

    def publish(self, site_id: str, payload: bytes, status: str) -> None:
        self.sent.append((site_id, payload, status))


@pytest.fixture
def api(db_url: str) -> Iterator[tuple[httpx.Client, dict[str, str]]]:
    register_depot(db_url, "depot-a")
    add_clients(db_url)
    with serving(create_app(api_settings(), database_url=db_url)) as base, httpx.Client(base_url=base) as client:
        creds = CLIENTS["operator"]
        token = client.post(
            "/api/v1/oauth/token",
            data={"grant_type": "client_credentials", "client_id": creds.client_id, "client_secret": creds.secret},
        ).json()["access_token"]
        yield client, {"Authorization": f"Bearer {token}"}


def _window() -> tuple[datetime, datetime]:
    start = (datetime.now(UTC) + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    return start, start + timedelta(hours=1)


def test_request_is_carried_out_by_the_scheduler_and_audited(
    api: tuple[httpx.Client, dict[str, str]], db_url: str
) -> None:
    client, auth = api
    start, end = _window()
    body = {"start_at": start.isoformat(), "end_at": end.isoformat(), "requested_kw": 50, "event_id": "api-ev-1"}
    created = client.post("/api/v1/dr/events", json=body, headers=auth)
    assert created.status_code == 202, created.text
    assert created.json() == {"event_id": "api-ev-1", "status": "planned", "pending_action": "plan"}
    assert client.post("/api/v1/dr/events", json=body, headers=auth).status_code == 409

    sink = RecordingSink()
    with psycopg.connect(db_url) as conn:
        scheduler = Scheduler(conn, sink)
        now = datetime.now(UTC)
        scheduler.process_requests(now)
        # No metered history yet: the depot cannot be forecast, so nothing is allocated and it is all shortfall.
        event = store.get_event(conn, "api-ev-1")
        assert event is not None
        assert (event.pending_action, event.allocated_kw, event.shortfall_kw) == (None, 0.0, 50.0)
        scheduler.dispatch("api-ev-1", now=now, actor="scheduler")

        assert client.patch("/api/v1/dr/events/api-ev-1", json={"requested_kw": 30}, headers=auth).status_code == 202
        scheduler.process_requests(datetime.now(UTC))
        assert client.post("/api/v1/dr/events/api-ev-1/cancel", headers=auth).status_code == 202
        scheduler.process_requests(datetime.now(UTC))

    detail = client.get("/api/v1/dr/events/api-ev-1", headers=auth).json()
    assert detail["status"] == "cancelled"
    assert detail["requested_kw"] == 30
    actions = [(row["action"], row["to_status"]) for row in detail["audit"]]
    assert actions == [
        ("created", "planned"),
        ("allocation", None),
        ("allocated", "planned"),
        ("dispatched", "dispatched"),
        ("replan requested (30 kW)", "dispatched"),
        ("allocation", None),
        ("adjusted", "dispatched"),
        ("dispatched", "dispatched"),  # the new revision
        ("cancel requested", "dispatched"),
        ("cancelled", "cancelled"),
    ]
    # The operator learns why nothing was allocated, and what to do about it.
    allocation = detail["audit"][1]["detail"]
    assert (allocation["requested_kw"], allocation["allocated_kw"], allocation["deliverable_kw"]) == (50, 0, 0)
    assert "no complete" in allocation["sites_without_forecast"]["depot-a"]
    assert "--backfill-hours 192" in allocation["how_to_fix"]
    assert client.post("/api/v1/dr/events/api-ev-1/cancel", headers=auth).status_code == 409
    listed = client.get("/api/v1/dr/events", params={"status": "cancelled"}, headers=auth).json()
    assert [row["event_id"] for row in listed] == ["api-ev-1"]
    # Japan time by default, UTC on request; the same instant either way.
    assert detail["start_at"].endswith("+09:00")
    utc = client.get("/api/v1/dr/events/api-ev-1", params={"tz": "UTC"}, headers=auth).json()
    assert utc["start_at"].endswith(("Z", "+00:00"))
    assert datetime.fromisoformat(utc["start_at"]) == datetime.fromisoformat(detail["start_at"]) == start


def test_bad_requests_are_problems_not_crashes(api: tuple[httpx.Client, dict[str, str]]) -> None:
    client, auth = api
    start, _ = _window()
    misaligned = {"start_at": (start + timedelta(minutes=10)).isoformat(), "end_at": (start + timedelta(hours=1)).isoformat(),
                  "requested_kw": 5}  # fmt: skip
    response = client.post("/api/v1/dr/events", json=misaligned, headers=auth)
    assert response.status_code == 422
    assert "slot boundaries" in response.json()["detail"]
    assert client.get("/api/v1/dr/events/nope", headers=auth).status_code == 404
    assert client.get("/api/v1/dr/events").status_code == 401


def test_an_event_that_would_call_no_site_is_a_422(api: tuple[httpx.Client, dict[str, str]], db_url: str) -> None:
    """As for unknown sites and regions: an event whose sites are none would be "dispatched" to nobody."""
    client, auth = api
    with psycopg.connect(db_url) as conn:
        register_site(conn, SiteRecord("outside", "In no region"), DEPOT_DEVICES)
    start, end = _window()
    base = {"start_at": start.isoformat(), "end_at": end.isoformat(), "requested_kw": 5}
    for extra, field in (
        ({"site_ids": []}, "site_ids"),  # an empty list is not "every site"
        ({"region_id": "leading-area-private"}, "region_id"),  # a region without members
        ({"region_id": "kawasaki", "site_ids": ["outside"]}, "site_ids"),  # not a member
    ):
        response = client.post("/api/v1/dr/events", json={**base, **extra, "event_id": "dr-nobody"}, headers=auth)
        assert response.status_code == 422, (extra, response.text)
        assert field in response.json()["detail"]
    assert client.get("/api/v1/dr/events/dr-nobody", headers=auth).status_code == 404
    response = client.post(
        "/api/v1/dr/events", json={**base, "region_id": "kawasaki", "site_ids": ["depot-a"]}, headers=auth
    )
    assert response.status_code == 202


def test_settlement_report_in_json_and_csv(api: tuple[httpx.Client, dict[str, str]], db_url: str) -> None:
    client, auth = api
    start = datetime(2026, 11, 20, 5, 0, tzinfo=UTC)
    with psycopg.connect(db_url) as conn:
        event = store.create_event(
            conn, event_id="settle-1", kind="peak_cut", start_at=start, end_at=start + timedelta(hours=1),
            requested_kw=10, incentive_jpy_per_kwh=30.0, region_id=None, source="operator", actor="test", now=start,
        )  # fmt: skip
        site_pk = conn.execute("SELECT id FROM sites WHERE site_id = 'depot-a'").fetchone()[0]  # type: ignore[index]
        store.set_event_sites(conn, event.pk, [(site_pk, 10.0, 5.0, None)], allocated_kw=10.0, shortfall_kw=0.0)
        # Hand-computed: (12 − 9) + (11 − 10) = 4 kWh delivered × 30 JPY/kWh = 120 JPY.
        rows = [ReductionRow(start, 12.0, 9.0, 3.0), ReductionRow(start + timedelta(minutes=30), 11.0, 10.0, 1.0)]
        save_reductions(conn, event.pk, site_pk, rows, "high4of5", start)
        conn.commit()

    report = client.get("/api/v1/dr/settlement", params={"event_id": "settle-1"}, headers=auth).json()
    assert report["total_settled_kwh"] == pytest.approx(4.0)
    assert report["total_amount_jpy"] == pytest.approx(120.0)
    as_csv = client.get("/api/v1/dr/settlement", params={"format": "csv"}, headers=auth)
    assert as_csv.headers["content-type"].startswith("text/csv")
    (line,) = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert (line["event_id"], line["site_id"], float(line["amount_jpy"])) == ("settle-1", "depot-a", 120.0)
    detail = client.get("/api/v1/dr/events/settle-1", headers=auth).json()
    assert [v["reduction_kwh"] for v in detail["verified"]] == [3.0, 1.0]
    assert detail["settlement"][0]["amount_jpy"] == pytest.approx(120.0)
    assert asyncio.run(_savings(db_url, start)) == pytest.approx(4.0)


async def _savings(db_url: str, start: datetime) -> float:
    engine = create_async_engine(asyncpg_url(db_url))
    try:
        async with engine.connect() as conn:
            return await verified_savings_kwh(conn, start, start + timedelta(days=1))
    finally:
        await engine.dispose()


def test_signals_of_a_cancelled_event_clear_the_site(db_url: str) -> None:
    register_depot(db_url, "depot-a")
    sink = RecordingSink()
    start, end = _window()
    with psycopg.connect(db_url) as conn:
        event = store.create_event(
            conn, event_id="ev-c", kind="peak_cut", start_at=start, end_at=end, requested_kw=5,
            incentive_jpy_per_kwh=0, region_id=None, source="operator", actor="test", now=start,
        )  # fmt: skip
        site_pk = conn.execute("SELECT id FROM sites WHERE site_id = 'depot-a'").fetchone()[0]  # type: ignore[index]
        store.set_event_sites(conn, event.pk, [(site_pk, 5.0, 7.5, None)], allocated_kw=5.0, shortfall_kw=0.0)
        conn.commit()
        scheduler = Scheduler(conn, sink)
        scheduler.dispatch("ev-c", now=start, actor="test")
        scheduler.cancel("ev-c", now=start, actor="test")
    sent = [parse_signal(payload) for _site, payload, _status in sink.sent]
    assert [(s.status, s.revision) for s in sent] == [("active", 1), ("cancelled", 2)]
    assert sent[0].intervals[0].import_limit_kw == 7.5
    assert sent[1].intervals == ()


def test_increase_events_are_requested_through_the_api_and_never_count_as_savings(
    api: tuple[httpx.Client, dict[str, str]], db_url: str
) -> None:
    client, auth = api
    start, end = _window()
    body = {"start_at": start.isoformat(), "end_at": end.isoformat(), "requested_kw": 20, "event_id": "api-up-1",
            "direction": "increase"}  # fmt: skip
    assert client.post("/api/v1/dr/events", json=body, headers=auth).status_code == 202
    assert client.get("/api/v1/dr/events/api-up-1", headers=auth).json()["direction"] == "increase"
    sideways = client.post("/api/v1/dr/events", json={**body, "event_id": "x", "direction": "sideways"}, headers=auth)
    assert sideways.status_code == 422
    del body["direction"]
    assert client.post("/api/v1/dr/events", json={**body, "event_id": "api-down-1"}, headers=auth).status_code == 202
    assert client.get("/api/v1/dr/events/api-down-1", headers=auth).json()["direction"] == "reduce"

    with psycopg.connect(db_url) as conn:
        event = store.get_event(conn, "api-up-1")
        assert event is not None
        assert event.direction == "increase"
        site_pk = conn.execute("SELECT id FROM sites WHERE site_id = 'depot-a'").fetchone()[0]  # type: ignore[index]
        store.set_event_sites(conn, event.pk, [(site_pk, 20.0, None, None)], allocated_kw=20.0, shortfall_kw=0.0,
                              floors_kw=[[21.0, 22.0]])  # fmt: skip
        # 6 kWh more than the baseline over the hour: delivered, and settled, but no saving.
        rows = [ReductionRow(start, 4.0, 8.0, 4.0), ReductionRow(start + timedelta(minutes=30), 4.0, 6.0, 2.0)]
        save_reductions(conn, event.pk, site_pk, rows, "high4of5", start)
        conn.commit()
    (line,) = client.get("/api/v1/dr/settlement", params={"event_id": "api-up-1"}, headers=auth).json()["lines"]
    assert line["delivered_kwh"] == pytest.approx(6.0)
    assert asyncio.run(_savings(db_url, start)) == 0.0
    sites = client.get("/api/v1/dr/events/api-up-1", headers=auth).json()["sites"]
    assert sites[0]["import_floor_kw"] == [21.0, 22.0]
