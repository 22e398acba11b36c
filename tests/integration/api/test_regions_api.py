"""Regions, declared figures and renewable capacity progress."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.api.conftest import bearer
from vpp.published import CAPACITY_CSV, published_csv

pytestmark = pytest.mark.integration


def test_kawasaki_default_regions_exist(api: httpx.Client, tokens: dict[str, str]) -> None:
    regions = {r["region_id"]: r for r in api.get("/api/v1/regions", headers=bearer(tokens["city"])).json()}
    assert {"kawasaki", "leading-area", "leading-area-private", "leading-area-public"} <= regions.keys()
    assert regions["kawasaki"]["name_ja"] == "川崎市"
    assert regions["kawasaki"]["member_sites"] == 4


def test_region_detail_hides_private_members_from_the_city(api: httpx.Client, tokens: dict[str, str]) -> None:
    city = api.get("/api/v1/regions/kawasaki", headers=bearer(tokens["city"])).json()
    ops = api.get("/api/v1/regions/kawasaki", headers=bearer(tokens["operator"])).json()
    assert city["site_ids"] == ["hall-d", "school-c"]
    assert ops["site_ids"] == ["depot-a", "hall-d", "office-b", "school-c"]
    assert city["private_sites"] == ops["private_sites"] == 2


def test_put_region_validates_sites_and_replaces_members(api: httpx.Client, tokens: dict[str, str]) -> None:
    ops = bearer(tokens["operator"])
    bad = api.put("/api/v1/regions/takatsu", json={"name": "Takatsu", "site_ids": ["depot-a", "nope"]}, headers=ops)
    assert bad.status_code == 422
    assert bad.json()["detail"].startswith("body.site_ids.1")
    made = api.put(
        "/api/v1/regions/takatsu", json={"name": "Takatsu", "site_ids": ["depot-a", "office-b"]}, headers=ops
    )
    assert made.json()["member_sites"] == 2
    changed = api.put("/api/v1/regions/takatsu", json={"name": "Takatsu ward", "site_ids": ["depot-a"]}, headers=ops)
    assert changed.json()["site_ids"] == ["depot-a"]
    assert changed.json()["data_version"] > made.json()["data_version"]


def test_posted_declared_figure_counts_in_its_period(api: httpx.Client, tokens: dict[str, str]) -> None:
    ops = bearer(tokens["operator"])
    body = {
        "period": "month",
        "value": "2024-05",
        "renewable_supply_kwh": 30,
        "saving_kwh": 10,
        "demand_kwh": 100,
        "source": "test",
    }
    assert api.post("/api/v1/regions/leading-area-private/declared", json=body, headers=ops).status_code == 201
    report = api.get(
        "/api/v1/regions/leading-area-private/sufficiency", params={"period": "month", "value": "2024-05"}, headers=ops
    ).json()
    assert report["ratio"] == pytest.approx(0.4)
    assert report["declared_sources"] == "test"
    wrong = api.post("/api/v1/regions/leading-area-private/declared", json={**body, "value": "2024-13"}, headers=ops)
    assert wrong.status_code == 422
    assert wrong.json()["detail"].startswith("body.value: ")
    assert "01-12" in wrong.json()["detail"]


def test_capacity_progress_from_city_statistics(api: httpx.Client, tokens: dict[str, str]) -> None:
    ops = bearer(tokens["operator"])
    imported = api.post(
        "/api/v1/regions/kawasaki/renewable-capacity/csv",
        content=published_csv(CAPACITY_CSV).encode(),
        headers={**ops, "Content-Type": "text/csv"},
    )
    assert imported.json() == {"imported": 3}
    body = api.get("/api/v1/regions/kawasaki/renewable-capacity", headers=ops).json()
    assert body["declared_kw"] == pytest.approx(204_895)
    assert body["registered_pv_kw"] == pytest.approx(58.0)
    assert body["installed_kw"] == pytest.approx(204_953)
    assert body["target_kw"] == 330_000
    assert body["progress"] == pytest.approx(204_953 / 330_000)
    assert body["provenance"] == "mixed"


def test_registered_pv_over_fewer_than_k_private_sites_is_suppressed_for_the_city(
    api: httpx.Client, tokens: dict[str, str]
) -> None:
    # Kawasaki's registered PV sums two private sites (depot-a, office-b) and two public ones whose PV the
    # city reads from /sites: the difference is the two companies' own capacity, as in sufficiency (k = 3).
    refused = api.get("/api/v1/regions/kawasaki/renewable-capacity", headers=bearer(tokens["city"]))
    assert refused.status_code == 403, refused.text
    assert refused.json()["type"] == "/problems/aggregate-suppressed"
    only_public = api.get("/api/v1/regions/leading-area-public/renewable-capacity", headers=bearer(tokens["city"]))
    assert only_public.status_code == 200, only_public.text
    assert only_public.json()["registered_pv_kw"] == pytest.approx(8.0)


@pytest.mark.parametrize(
    ("csv_text", "words"),
    [
        ("source,fy2020_actual_kw\nsolar,abc\n", "line 2"),
        ("source,fy2020_actual_kw\nsolar,10\ntotal,11\n", "differs"),
        ("source,potential\nsolar,10\n", "fy2020_actual_kw"),
    ],
)
def test_bad_capacity_csv_is_422(api: httpx.Client, tokens: dict[str, str], csv_text: str, words: str) -> None:
    response = api.post(
        "/api/v1/regions/kawasaki/renewable-capacity/csv",
        content=csv_text.encode(),
        headers={**bearer(tokens["operator"]), "Content-Type": "text/csv"},
    )
    assert response.status_code == 422
    assert words in response.json()["detail"]
