"""GET /api/v1/dashboard/vens: both VTNs' VENs, with the 2.0b ones' last poll and opt state."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest
from psycopg.types.json import Jsonb

from services.api.main import create_app
from tests.integration.api.api_fixtures import CLIENTS, add_clients, api_settings
from tests.integration.api.server import serving
from vpp.domain.oadr2b import signal_from_event_body
from vpp.domain.openadr import SiteCall, dr_event_body
from vpp.postgres import oadr2b as store
from vpp.postgres.dr_events import create_event, set_event_sites
from vpp.postgres.openadr_dr import publish_dr_event
from vpp.postgres.registry import SiteRecord, register_site

pytestmark = pytest.mark.integration
FINGERPRINT = "AA:BB:CC:DD:EE:FF:00:11:22:33"


def _seed(db_url: str, now: datetime) -> str:
    start = (now + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    with psycopg.connect(db_url) as conn:
        register_site(conn, SiteRecord("depot-a", "Depot A", 35.6, 139.6), ())
        store.add_ven(conn, "depot-gw", site_ids=["depot-a"], fingerprint=FINGERPRINT, ven_id="VEN-A")
        conn.execute(
            """INSERT INTO openadr_vens (id, ven_name, client_id, targets, body, created_at, modified_at)
               VALUES ('ven-31', 'office-31', 'ven-office', ARRAY['site:office-b'], %s, %s, %s)""",
            (Jsonb({"venName": "office-31"}), now, now),
        )
        event = create_event(
            conn, event_id="dash-1", kind="peak_cut", start_at=start, end_at=start + timedelta(hours=1),
            requested_kw=10.0, incentive_jpy_per_kwh=0.0, region_id=None, source="operator", actor="test", now=now,
        )  # fmt: skip
        site_pk = conn.execute("SELECT id FROM sites WHERE site_id = 'depot-a'").fetchone()[0]  # type: ignore[index]
        set_event_sites(conn, event.pk, [(site_pk, 10.0, 30.0, None)], allocated_kw=10.0, shortfall_kw=0.0)
        [event_id] = publish_dr_event(conn, "dash-1", now)
        conn.commit()
        body = dr_event_body(SiteCall("dash-1", "peak_cut", "depot-a", start, start + timedelta(hours=1), 30.0,
                                      10.0, 1, None), "p")  # fmt: skip

    async def deliver_and_opt() -> None:
        async with await psycopg.AsyncConnection.connect(db_url) as aconn:
            ven = await store.find_ven(aconn, ven_id="VEN-A")
            assert ven is not None
            await store.touch_poll(aconn, ven.pk, now)
            delivery = store.Delivery(event_id, event.pk, 0, signal_from_event_body(body), False, None)
            await store.record_delivery(aconn, ven.pk, delivery, now)
            assert await store.record_opt(aconn, ven.pk, event_id, "optIn", now)
            assert not await store.record_opt(aconn, ven.pk, "no-such-event", "optIn", now)
            await aconn.commit()

    asyncio.run(deliver_and_opt())
    return event_id


def test_dashboard_lists_vens_of_both_protocols_with_last_poll_and_opt_state(db_url: str) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    event_id = _seed(db_url, now)
    add_clients(db_url)
    with serving(create_app(api_settings(), database_url=db_url)) as base, httpx.Client(base_url=base) as client:
        creds = CLIENTS["operator"]
        token = client.post(
            "/api/v1/oauth/token",
            data={"grant_type": "client_credentials", "client_id": creds.client_id, "client_secret": creds.secret},
        ).json()["access_token"]
        response = client.get("/api/v1/dashboard/vens", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    vens = response.json()
    assert [(v["protocol"], v["ven_name"]) for v in vens] == [("2.0b", "depot-gw"), ("3.1", "office-31")]
    two_b, three_one = vens
    assert two_b["targets"] == ["site:depot-a"]
    assert datetime.fromisoformat(two_b["last_poll_at"]) == now
    assert two_b["events"] == [
        {"event_id": event_id, "dr_event_id": "dash-1", "modification_number": 0, "opt": "optIn"}
    ]
    assert (three_one["last_poll_at"], three_one["events"]) == (None, [])
