"""Sites, their time series (JSON and CSV, paginated), demand and self-sufficiency, over ingested data."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.integration.api.api_fixtures import HOURS, SITES
from tests.integration.api.conftest import bearer
from vpp.domain.slots import JST

pytestmark = pytest.mark.integration

DEPOT = next(s for s in SITES if s.site_id == "depot-a")


def _window(t0: datetime) -> dict[str, str]:
    return {"start": t0.isoformat(), "end": (t0 + timedelta(hours=HOURS)).isoformat()}


def test_operator_lists_every_site_city_public_ones_site_its_own(api: httpx.Client, tokens: dict[str, str]) -> None:
    def ids(role: str) -> list[str]:
        response = api.get("/api/v1/sites", headers=bearer(tokens[role]))
        assert response.status_code == 200
        return [s["site_id"] for s in response.json()["items"]]

    assert ids("operator") == sorted(s.site_id for s in SITES)
    assert ids("city") == sorted(s.site_id for s in SITES if s.public)
    assert ids("site") == ["depot-a"]


def test_site_list_pages(api: httpx.Client, tokens: dict[str, str]) -> None:
    first = api.get("/api/v1/sites", params={"limit": 3}, headers=bearer(tokens["operator"]))
    assert first.json()["next_offset"] == 3
    assert 'rel="next"' in first.headers["link"]
    second = api.get("/api/v1/sites", params={"limit": 3, "offset": 3}, headers=bearer(tokens["operator"])).json()
    assert second["next_offset"] is None
    assert len(second["items"]) == len(SITES) - 3


def test_site_detail_has_devices_and_regions(api: httpx.Client, tokens: dict[str, str]) -> None:
    body = api.get("/api/v1/sites/depot-a", headers=bearer(tokens["site"])).json()
    assert [d["device_id"] for d in body["devices"]] == ["meter-1", "pv-1"]
    assert "kawasaki" in body["regions"]
    assert body["last_reading_at"] is not None
    assert body["last_reading_at"].endswith("+09:00")  # Japan time, as everything a person reads


def test_energy_30min_json_and_csv(api: httpx.Client, tokens: dict[str, str], t0: datetime) -> None:
    headers = bearer(tokens["site"])
    body = api.get("/api/v1/sites/depot-a/energy", params=_window(t0), headers=headers).json()
    assert len(body["items"]) == HOURS * 2
    slot = body["items"][0]
    assert slot["import_kwh"] == pytest.approx(DEPOT.slot_import_kwh)
    assert slot["demand_kw"] == pytest.approx(DEPOT.import_kw)
    assert slot["load_kwh"] == pytest.approx(DEPOT.slot_load_kwh)
    response = api.get("/api/v1/sites/depot-a/energy", params={**_window(t0), "format": "csv"}, headers=headers)
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == HOURS * 2
    assert float(rows[0]["pv_kwh"]) == pytest.approx(DEPOT.pv_kw / 2)
    # Japan time by default, in the download as in the JSON; tz=UTC for UTC. Same instants either way.
    assert rows[0]["slot_start"] == t0.astimezone(JST).isoformat()
    assert slot["slot_start"] == t0.astimezone(JST).isoformat()
    utc = api.get("/api/v1/sites/depot-a/energy", params={**_window(t0), "format": "csv", "tz": "UTC"}, headers=headers)
    utc_rows = list(csv.DictReader(io.StringIO(utc.text)))
    assert utc_rows[0]["slot_start"] == t0.astimezone(UTC).isoformat()
    assert [datetime.fromisoformat(r["slot_start"]) for r in utc_rows] == [
        datetime.fromisoformat(r["slot_start"]) for r in rows
    ]


def test_telemetry_raw_bucketed_and_paged(api: httpx.Client, tokens: dict[str, str], t0: datetime) -> None:
    headers = bearer(tokens["operator"])
    raw = api.get(
        "/api/v1/sites/depot-a/telemetry",
        params={**_window(t0), "device_id": "meter-1", "limit": 10},
        headers=headers,
    ).json()
    assert len(raw["items"]) == 10
    assert raw["next_offset"] == 10
    assert raw["items"][0]["power_kw"] == pytest.approx(DEPOT.import_kw - DEPOT.export_kw)
    hourly = api.get(
        "/api/v1/sites/depot-a/telemetry", params={**_window(t0), "bucket": "1h", "device_id": "pv-1"}, headers=headers
    ).json()
    assert [b["readings"] for b in hourly["items"]] == [12] * HOURS
    assert hourly["items"][0]["power_kw_avg"] == pytest.approx(DEPOT.pv_kw)
    csv_text = api.get(
        "/api/v1/sites/depot-a/telemetry", params={**_window(t0), "bucket": "30m", "format": "csv"}, headers=headers
    ).text
    assert csv_text.splitlines()[0].startswith("device_id,kind,bucket_start")


def test_monthly_demand_and_ratchet(api: httpx.Client, tokens: dict[str, str], t0: datetime) -> None:
    month = t0.astimezone(JST).strftime("%Y-%m")
    rows = api.get(
        "/api/v1/sites/depot-a/demand",
        params={"from_month": month, "to_month": month},
        headers=bearer(tokens["site"]),
    ).json()
    assert rows[0]["month"] == month
    assert rows[0]["max_demand_kw"] == pytest.approx(DEPOT.import_kw)
    assert rows[0]["ratchet_contract_demand_kw"] == pytest.approx(DEPOT.import_kw)
    text = api.get(
        "/api/v1/sites/depot-a/demand",
        params={"from_month": month, "to_month": month, "format": "csv"},
        headers=bearer(tokens["site"]),
    ).text
    assert text.splitlines()[0] == "month,max_demand_kw,max_demand_slot_start,ratchet_contract_demand_kw"


def test_site_self_sufficiency(api: httpx.Client, tokens: dict[str, str], t0: datetime) -> None:
    value = f"{t0.isoformat()}/{(t0 + timedelta(hours=HOURS)).isoformat()}"
    body = api.get(
        "/api/v1/sites/depot-a/sufficiency", params={"period": "range", "value": value}, headers=bearer(tokens["site"])
    ).json()
    supply = (DEPOT.slot_pv_on_site_kwh + DEPOT.slot_import_kwh * DEPOT.renewable_share) * HOURS * 2
    assert body["site_id"] == "depot-a"
    assert body["ratio"] == pytest.approx(supply / (DEPOT.slot_load_kwh * HOURS * 2))


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({"start": "2026-11-01T00:00:00", "end": "2026-11-02T00:00:00+09:00"}, "query.start"),
        ({"start": "2026-11-02T00:00:00+09:00", "end": "2026-11-01T00:00:00+09:00"}, "query.end"),
        ({"start": "2025-01-01T00:00:00+09:00", "end": "2026-11-01T00:00:00+09:00"}, "query.end"),
    ],
)
def test_bad_windows_name_the_field(
    api: httpx.Client, tokens: dict[str, str], params: dict[str, str], detail: str
) -> None:
    response = api.get("/api/v1/sites/depot-a/telemetry", params=params, headers=bearer(tokens["operator"]))
    assert response.status_code == 422
    assert response.json()["detail"].startswith(detail)


def test_operator_enrols_a_site_in_the_peak_programme_and_withdraws_it(
    api: httpx.Client, tokens: dict[str, str]
) -> None:
    operator = bearer(tokens["operator"])
    url = "/api/v1/sites/depot-a/peak-programme"
    try:
        enrolled = api.put(url, json={"enrolled": True}, headers=operator)
        assert enrolled.status_code == 200
        assert enrolled.json() == {"site_id": "depot-a", "enrolled": True}
        assert api.get("/api/v1/sites/depot-a", headers=operator).json()["peak_programme"] is True
        # The site itself may read that it is enrolled, not change it.
        assert api.get("/api/v1/sites/depot-a", headers=bearer(tokens["site"])).json()["peak_programme"] is True
        assert api.put(url, json={"enrolled": False}, headers=bearer(tokens["site"])).status_code == 403
    finally:
        withdrawn = api.put(url, json={"enrolled": False}, headers=operator)
    assert withdrawn.json() == {"site_id": "depot-a", "enrolled": False}
    assert api.get("/api/v1/sites/depot-a", headers=operator).json()["peak_programme"] is False

    unknown = api.put("/api/v1/sites/no-such-site/peak-programme", json={"enrolled": True}, headers=operator)
    assert unknown.status_code == 404
    assert unknown.headers["content-type"].startswith("application/problem+json")
    assert "no-such-site" in unknown.json()["detail"]
    # A toggle takes true or false only ("yes", 1 and "\x00" are refused), and no other field (a typo is refused).
    for bad, status, named in (({"enrolled": "yes"}, 422, "enrolled"), ({"enrolled": 1}, 422, "enrolled"),
                               ({}, 422, "enrolled"), ({"enrolled": True, "enroled": False}, 422, "enroled"),
                               ({"enrolled": "\x00"}, 400, "NUL")):  # fmt: skip
        response = api.put(url, json=bad, headers=operator)
        assert response.status_code == status, (bad, response.text)
        assert named in response.text
    assert api.get("/api/v1/sites/depot-a", headers=operator).json()["peak_programme"] is False


def test_a_region_filter_naming_no_region_is_a_422_not_an_empty_list(api: httpx.Client, tokens: dict[str, str]) -> None:
    ops = bearer(tokens["operator"])
    for path in ("/api/v1/sites", "/api/v1/dashboard/live"):
        unknown = api.get(path, params={"region": "nope"}, headers=ops)
        assert unknown.status_code == 422, (path, unknown.text)
        assert unknown.json()["detail"] == "query.region: no region 'nope'"
        known = api.get(path, params={"region": "kawasaki"}, headers=ops)
        assert known.status_code == 200, (path, known.text)
    members = api.get("/api/v1/sites", params={"region": "kawasaki"}, headers=ops).json()["items"]
    assert len(members) == 4
