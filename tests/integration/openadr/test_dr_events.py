"""The scheduler's peak-cut event reaches the depot's VEN as an OpenADR event, and the VEN's USAGE
report comes back as the per-slot figures verification reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest

from tests.integration.openadr.conftest import bearer
from tests.integration.openadr.vtn_setup import grant_sites
from vpp.domain.slots import JST
from vpp.postgres.dr_events import create_event, set_event_sites
from vpp.postgres.openadr_dr import publish_dr_event, reported_usage_day, reported_usage_kwh

pytestmark = pytest.mark.integration

START = datetime(2030, 7, 1, 14, 0, tzinfo=JST)
END = START + timedelta(hours=1)


def _dr_event(db_url: str, kind: str, event_id: str, limits: dict[str, float | None]) -> tuple[int, dict[str, int]]:
    now = datetime.now(UTC)
    with psycopg.connect(db_url) as conn:
        event = create_event(
            conn, event_id=event_id, kind=kind, start_at=START, end_at=END, requested_kw=30.0,
            incentive_jpy_per_kwh=20.0, region_id=None, source="operator", actor="test", now=now,
        )  # fmt: skip
        site_pks = {row[0]: row[1] for row in conn.execute("SELECT site_id, id FROM sites").fetchall()}
        rows = [(site_pks[site], 15.0, limit, None) for site, limit in limits.items()]
        set_event_sites(conn, event.pk, rows, allocated_kw=15.0 * len(rows), shortfall_kw=0.0)
        publish_dr_event(conn, event_id, now)
        conn.commit()
    return event.pk, site_pks


def test_peak_cut_read_by_depot_ven_and_usage_report_reaches_verification(
    vtn: httpx.Client, tokens: dict[str, str], vtn_db: str
) -> None:
    grant_sites(vtn, tokens["bl"])
    event_pk, site_pks = _dr_event(vtn_db, "peak_cut", "dr-2030-07-01-pc", {"depot-a": 40.0, "office-b": 55.0})
    a = bearer(tokens["ven_a"])

    events = vtn.get("/events", params={"active": "true"}, headers=a).json()
    assert len(events) == 1
    event = events[0]
    assert event["targets"] == ["site:depot-a"]
    assert event["payloadDescriptors"] == [
        {"objectType": "EVENT_PAYLOAD_DESCRIPTOR", "payloadType": "IMPORT_CAPACITY_LIMIT", "units": "KW"}
    ]
    assert event["intervalPeriod"]["duration"] == "PT30M"
    assert datetime.fromisoformat(event["intervalPeriod"]["start"]) == START
    assert [i["payloads"] for i in event["intervals"]] == [[{"type": "IMPORT_CAPACITY_LIMIT", "values": [40.0]}]] * 2
    assert event["reportDescriptors"][0]["payloadType"] == "USAGE"
    program = vtn.get(f"/programs/{event['programID']}", headers=a)
    assert program.status_code == 200

    report = {
        "eventID": event["id"],
        "clientName": "depot-a-ems",
        "reportName": "usage during peak-cut",
        "payloadDescriptors": [
            {
                "objectType": "REPORT_PAYLOAD_DESCRIPTOR",
                "payloadType": "USAGE",
                "readingType": "DIRECT_READ",
                "units": "KWH",
            }
        ],
        "resources": [
            {
                "resourceName": "meter-1",
                "intervalPeriod": {"start": START.isoformat(), "duration": "PT30M"},
                "intervals": [
                    {"id": 0, "payloads": [{"type": "USAGE", "values": [18.5]}]},
                    {"id": 1, "payloads": [{"type": "USAGE", "values": [19.25]}]},
                ],
            }
        ],
    }
    posted = vtn.post("/reports", json=report, headers=a)
    assert posted.status_code == 201, posted.text

    with psycopg.connect(vtn_db) as conn:
        usage = reported_usage_kwh(conn, event_pk, site_pks["depot-a"])
        day = reported_usage_day(conn, event_pk, site_pks["depot-a"], START.date())
        assert reported_usage_kwh(conn, event_pk, site_pks["office-b"]) == {}
    assert usage == {START: 18.5, START + timedelta(minutes=30): 19.25}
    assert day[28:30] == [18.5, 19.25]  # 14:00 and 14:30 JST
    assert sum(v is not None for v in day) == 2


def test_replan_updates_and_cancel_removes_the_openadr_events(
    vtn: httpx.Client, tokens: dict[str, str], vtn_db: str
) -> None:
    event_pk, _ = _dr_event(vtn_db, "peak_shift", "dr-2030-07-01-ps", {"office-b": None})
    b = bearer(tokens["ven_b"])
    shift = [e for e in vtn.get("/events", headers=b).json() if e["eventName"].startswith("dr-2030-07-01-ps")]
    assert len(shift) == 1
    assert shift[0]["intervals"][0]["payloads"] == [{"type": "SIMPLE", "values": [2]}]
    with psycopg.connect(vtn_db) as conn:
        conn.execute("UPDATE dr_events SET status = 'cancelled' WHERE id = %s", (event_pk,))
        assert publish_dr_event(conn, "dr-2030-07-01-ps", datetime.now(UTC)) == []
        conn.commit()
    assert vtn.get(f"/events/{shift[0]['id']}", headers=b).status_code == 404
