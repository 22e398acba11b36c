"""The dashboard's own endpoints against real PostgreSQL and Mosquitto: alarms, flows, the page's files.

One site imports far above its demand target inside the running slot, another has gone offline, and
a gateway sends garbage: the live endpoint must raise all three alarms, and only for operators.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from services.api.main import create_app
from services.dr_scheduler.peak_programme import PeakProgramme
from services.dr_scheduler.scheduler import Scheduler
from tests.e2e.platform import DEV_OPERATOR
from tests.integration.api.server import serving
from tests.integration.dr.test_dr_api import RecordingSink
from tests.integration.ingest_fixtures import DEPOT_DEVICES, running_ingest
from tests.support.mqtt_publisher import GatewayPublisher
from tests.support.waiting import wait_for
from vpp.domain.devices import DeviceKind
from vpp.domain.slots import JST, SLOT, slot_start
from vpp.embedded.broker import EmbeddedBroker
from vpp.postgres.peak_programme import set_enrolled
from vpp.postgres.registry import DeviceSpec, SiteRecord, register_site
from vpp.settings import load_settings

pytestmark = pytest.mark.integration

HOT_KW, TARGET_KW = 50.0, 20.0


def _register(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "INSERT INTO regions (region_id, name) VALUES ('kawasaki', 'Kawasaki City') ON CONFLICT DO NOTHING"
        )
        for site_id, target in (("hot-site", TARGET_KW), ("quiet-site", None)):
            record = SiteRecord(
                site_id, site_id.title(), demand_target_kw=target, renewable_share=0.5, regions=("kawasaki",)
            )
            register_site(conn, record, [DeviceSpec("meter-1", DeviceKind.METER)])
        conn.commit()


def _meter(ts: datetime, seconds: float) -> dict[str, Any]:
    return {"ts": ts.isoformat(), "power_kw": HOT_KW, "import_kwh": 100 + HOT_KW * seconds / 3600, "export_kwh": 0.0}


def _token(client: httpx.Client, client_id: str, secret: str) -> dict[str, str]:
    response = client.post(
        "/api/v1/oauth/token",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
    )
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@pytest.fixture
def api(db_url: str, broker: EmbeddedBroker) -> Iterator[httpx.Client]:
    _register(db_url)
    with running_ingest(db_url, broker.port, client_id="ingest-dashboard-api"):
        gateway = GatewayPublisher("127.0.0.1", broker.port, client_id="dashboard-api-gateway")
        try:
            now = datetime.now(UTC).replace(microsecond=0)
            if now - slot_start(now) < timedelta(seconds=5):  # both readings inside the running slot
                time.sleep(5)
                now = datetime.now(UTC).replace(microsecond=0)
            # A reading a minute since the slot began: the slot's energy so far is known, as in production.
            first = slot_start(now)
            elapsed_s = int((now - first).total_seconds()) - 1
            readings = [_meter(first + timedelta(seconds=t), t) for t in [*range(0, elapsed_s, 60), elapsed_s]]
            gateway.publish("vpp/v1/hot-site/meter-1/telemetry", {"readings": readings})
            gateway.publish("vpp/v1/quiet-site/meter-1/telemetry", _meter(now - timedelta(hours=2), 0))
            gateway.publish("vpp/v1/quiet-site/status", b"offline")
            for _ in range(10):
                gateway.publish("vpp/v1/hot-site/meter-1/telemetry", b"not json")
            gateway.wait_acked()
        finally:
            gateway.close()
        app = create_app(load_settings(environment="development"), database_url=db_url)
        with serving(app) as base_url, httpx.Client(base_url=base_url, timeout=30) as client:
            yield client


def test_live_raises_demand_offline_and_dead_letter_alarms(api: httpx.Client) -> None:
    operator = _token(api, *DEV_OPERATOR)

    def live() -> dict[str, Any]:
        response = api.get("/api/v1/dashboard/live", params={"region": "kawasaki"}, headers=operator)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    body = wait_for(
        live,
        lambda b: bool(b["alarms"]["demand"]) and b["alarms"]["dead_letters"]["last_5min"] >= 10,
        timeout_s=30,
    )
    sites = {s["site_id"]: s for s in body["sites"]}
    hot = sites["hot-site"]
    assert hot["online"] is True
    assert hot["grid_kw"] == pytest.approx(HOT_KW)
    # 50 kW since the slot began and 50 kW assumed to its end (less the seconds the rollup lags).
    assert hot["predicted_demand_kw"] == pytest.approx(HOT_KW, rel=0.05)
    assert hot["demand_level"] == "over"
    (alarm,) = body["alarms"]["demand"]
    assert (alarm["site_id"], alarm["level"], alarm["target_kw"]) == ("hot-site", "over", TARGET_KW)
    assert [s["site_id"] for s in body["alarms"]["offline"]] == ["quiet-site"]
    assert sites["quiet-site"]["age_s"] > 3600
    dead = body["alarms"]["dead_letters"]
    assert dead["alarm"] is True
    assert dead["by_reason"] == {"malformed_json": 10}


def test_flows_timeline_and_roles(api: httpx.Client) -> None:
    operator = _token(api, *DEV_OPERATOR)
    flows = wait_for(
        lambda: api.get("/api/v1/dashboard/regions/kawasaki/flows", headers=operator).json(),
        lambda body: any(s["running"] for s in body["slots"]),
        timeout_s=30,
    )
    running = next(s for s in flows["slots"] if s["running"])
    # Half the hot site's import is on a renewable contract; all of it feeds the site's load.
    assert running["contract_renewable_kw"] > 0
    assert running["contract_renewable_kw"] == pytest.approx(running["other_import_kw"])
    assert running["contract_renewable_kw"] + running["other_import_kw"] == pytest.approx(running["demand_kw"])
    assert api.get("/api/v1/dashboard/dr/timeline", headers=operator).json() == []
    assert api.get("/api/v1/dashboard/regions/nowhere/flows", headers=operator).status_code == 404

    city = _token(api, "dev-city", "dev-city-secret")
    assert api.get("/api/v1/dashboard/live", headers=city).status_code == 403
    assert api.get("/api/v1/dashboard/live").status_code == 401


def test_page_and_assets(api: httpx.Client) -> None:
    page = api.get("/")
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert '<html lang="ja">' in page.text
    for asset in ("app.js", "i18n.js", "api.js", "charts.js", "dr.js", "app.css", "vendor/chart.umd.min.js"):
        assert api.get(f"/static/{asset}").status_code == 200, asset
    assert api.get("/static/../main.py").status_code == 404
    assert api.get("/static/nothing.js").status_code == 404


def test_timeline_and_scheduler_alarms_from_stored_rows(api: httpx.Client, db_url: str) -> None:
    """A verified event with one dispatched, acked site, and a scheduler alarm, as the dashboard lists them."""
    operator = _token(api, *DEV_OPERATOR)
    now = datetime.now(UTC).replace(microsecond=0)
    past_slot = slot_start(now) - timedelta(hours=2)
    with psycopg.connect(db_url) as conn:
        event = conn.execute(
            """INSERT INTO dr_events (event_id, kind, status, start_at, end_at, requested_kw, allocated_kw, revision)
               VALUES ('timeline-1', 'peak_cut', 'completed', %s, %s, 12, 10, 2) RETURNING id""",
            (past_slot, past_slot + timedelta(hours=1)),
        ).fetchone()
        assert event is not None
        site = conn.execute("SELECT id FROM sites WHERE site_id = 'hot-site'").fetchone()
        assert site is not None
        conn.execute(
            """INSERT INTO dr_event_sites (event_pk, site_pk, allocated_kw, dispatched_at, ack_status, acked_revision)
               VALUES (%s, %s, 10, now(), 'accepted', 2)""",
            (event[0], site[0]),
        )
        conn.execute(
            """INSERT INTO dr_verified_reductions (event_pk, site_pk, slot_start, baseline_kwh, actual_kwh,
                                                   reduction_kwh, method, verified_at)
               VALUES (%s, %s, %s, 20, 17, 3, 'test', now()), (%s, %s, %s, 20, 18, 2, 'test', now())""",
            (event[0], site[0], past_slot, event[0], site[0], past_slot + timedelta(minutes=30)),
        )
        conn.execute(
            """INSERT INTO site_alarms (site_pk, slot_start, kind, level, predicted_kw, target_kw, raised_at)
               VALUES (%s, %s, 'demand', 'warn', 19.5, 20, %s)""",
            (site[0], past_slot, past_slot + timedelta(minutes=20)),
        )
        conn.commit()
    (row,) = api.get("/api/v1/dashboard/dr/timeline", headers=operator).json()
    assert (row["event_id"], row["requested_kw"], row["allocated_kw"], row["revision"]) == ("timeline-1", 12, 10, 2)
    assert (row["sites"], row["dispatched_sites"], row["acked_sites"]) == (1, 1, 1)
    assert (row["verified_slots"], row["verified_reduction_kwh"]) == (2, pytest.approx(5.0))
    assert row["unreachable_sites"] == 0
    alarms = api.get("/api/v1/dashboard/live", headers=operator).json()["alarms"]["demand"]
    stored = [a for a in alarms if a["origin"] == "scheduler"]
    assert [(a["site_id"], a["level"], a["predicted_kw"]) for a in stored] == [("hot-site", "warn", 19.5)]


def _enrolled_battery_site(conn: psycopg.Connection, site_id: str, midnight: datetime, ev_kwh: float = 0.0) -> int:
    """A battery site in the region with eight days of metered slots before ``midnight`` (the evening its peak),
    EV charging overnight when ``ev_kwh``, its SoC reported a minute ago, enrolled in the peak programme."""
    record = SiteRecord(site_id, site_id, 35.57, 139.6, battery_kwh=60.0, battery_kw=15.0, regions=("kawasaki",))
    site_pk = register_site(conn, record, DEPOT_DEVICES)
    with conn.cursor().copy(
        "COPY site_energy_30min (site_pk, slot_start, import_kwh, load_kwh, pv_kwh, ev_kwh, coverage) FROM STDIN"
    ) as copy:
        for slot in range(8 * 48):
            start = midnight - timedelta(days=8) + slot * SLOT
            hour = start.astimezone(JST).hour
            ev = ev_kwh if hour < 4 else 0.0
            load_kwh = 0.5 * (12.0 + 8.0 * (8 <= hour < 20) + 10.0 * (17 <= hour < 20)) + ev
            copy.write_row((site_pk, start, load_kwh, load_kwh, 0.0, ev, 1.0))
    conn.execute(
        "INSERT INTO readings (device_pk, ts, soc_pct) SELECT id, %s, 50 FROM devices"
        " WHERE site_pk = %s AND kind = 'battery'",
        (datetime.now(UTC) - timedelta(minutes=1), site_pk),
    )
    set_enrolled(conn, site_id, True)
    return site_pk


def test_live_shows_what_the_peak_programme_does_at_each_enrolled_site(api: httpx.Client, db_url: str) -> None:
    operator = _token(api, *DEV_OPERATOR)
    now = datetime.now(UTC)
    midnight = datetime.combine(now.astimezone(JST).date(), datetime.min.time(), JST)
    with psycopg.connect(db_url) as conn:
        _enrolled_battery_site(conn, "battery-site", midnight)
        _enrolled_battery_site(conn, "vans-site", midnight, ev_kwh=20.0)
        record = SiteRecord("new-site", "new-site", battery_kwh=30.0, battery_kw=10.0, regions=("kawasaki",))
        register_site(conn, record, DEPOT_DEVICES)  # no history yet: no forecast
        set_enrolled(conn, "new-site", True)
        conn.commit()
        # The scheduler's programme, a minute and a half into the running slot (its slot before is settled).
        running = slot_start(now)
        PeakProgramme(Scheduler(conn, RecordingSink()), background=False).run(running + timedelta(seconds=90))
        set_enrolled(conn, "hot-site", True)  # enrolled after the programme looked: waiting for its next pass
        conn.commit()
        limits: dict[str, float] = dict(
            conn.execute(
                """SELECT s.site_id, es.import_limit_kw FROM dr_event_sites es JOIN dr_events e ON e.id = es.event_pk
                   JOIN sites s ON s.id = es.site_pk WHERE e.source = 'peak_programme'"""
            ).fetchall()
        )
    assert set(limits) == {"battery-site", "vans-site"}

    response = api.get("/api/v1/dashboard/live", params={"region": "kawasaki"}, headers=operator)
    assert response.status_code == 200, response.text
    sites = {s["site_id"]: s["peak_programme"] for s in response.json()["sites"]}
    slot = int((running - midnight) / SLOT)
    for site_id in ("battery-site", "vans-site"):  # the stochastic programme; the LP re-plan (vans)
        programme = sites[site_id]
        limit_kw = limits[site_id]
        assert (programme["state"], programme["why"], programme["limit_kw"]) == ("holding", None, limit_kw)
        assert programme["limits_kw"] == [None] * slot + [limit_kw]
    new = sites["new-site"]
    assert (new["state"], new["why"], new["limit_kw"], new["limits_kw"]) == ("left_out", "no_forecast", None, [])
    assert "no forecast" in new["reason"]
    assert sites["hot-site"] == {"state": "waiting", "why": None, "reason": None, "checked_at": None,
                                 "limit_kw": None, "limits_kw": []}  # fmt: skip
    assert sites["quiet-site"] is None  # not enrolled
    # The programme's day events are the sites' own control: out of the DR timeline unless asked for, so that a
    # city's worth of them (one per site and day) cannot crowd out the DR events.
    timeline = api.get("/api/v1/dashboard/dr/timeline", headers=operator)
    assert timeline.status_code == 200
    assert timeline.json() == []
    own = api.get("/api/v1/dashboard/dr/timeline", params={"own_control": "true"}, headers=operator).json()
    assert sorted(row["source"] for row in own) == ["peak_programme", "peak_programme"]
    refused = api.get("/api/v1/dashboard/dr/timeline", params={"own_control": "\x00"}, headers=operator)
    assert refused.status_code in (400, 422)
    assert "own_control" in refused.text or "NUL" in refused.text
