"""Irradiance forecasts: stored as issued, the day-ahead issue found for a place, bad input refused by field."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.api.conftest import bearer

pytestmark = pytest.mark.integration

URL = "/api/v1/weather/forecasts"


def _issue(issued_at: str, ghi_w_m2: float, *, latitude: float = 35.6, longitude: float = 139.7) -> dict[str, object]:
    return {
        "latitude": latitude,
        "longitude": longitude,
        "source": "test provider",
        "issued_at": issued_at,
        "slots": [
            {"start": f"2026-08-1{day}T{hour:02d}:{minute:02d}:00+09:00", "ghi_w_m2": ghi_w_m2}
            for day in (4, 5)
            for hour in range(24)
            for minute in (0, 30)
        ],
    }


def test_a_day_uses_the_latest_issue_before_it_began_at_the_nearest_point(
    api: httpx.Client, tokens: dict[str, str]
) -> None:
    ops, city = bearer(tokens["operator"]), bearer(tokens["city"])
    for issued_at, ghi in (
        ("2026-08-13T09:00:00+09:00", 500.0),
        ("2026-08-13T21:00:00+09:00", 600.0),  # the day-ahead issue for the 14th
        ("2026-08-14T09:00:00+09:00", 700.0),  # issued during the 14th: the 15th's day-ahead, not the 14th's
    ):
        made = api.post(URL, json=_issue(issued_at, ghi), headers=ops)
        assert made.status_code == 201, made.text
        assert len(made.json()["slots"]) == 96
    api.post(URL, json=_issue("2026-08-13T22:00:00+09:00", 100.0, latitude=36.5), headers=ops)  # ~100 km north

    near = {"latitude": 35.55, "longitude": 139.65}  # ~7 km from the point
    for day, ghi in (("2026-08-14", 600.0), ("2026-08-15", 700.0)):
        got = api.get(f"{URL}/day-ahead", params={**near, "day": day}, headers=city)
        assert got.status_code == 200, got.text
        body = got.json()
        assert (body["latitude"], body["longitude"]) == (35.6, 139.7)
        assert len(body["slots"]) == 48
        assert {slot["ghi_w_m2"] for slot in body["slots"]} == {ghi}
        assert body["slots"][0]["start"] == f"{day}T00:00:00+09:00"

    far = api.get(f"{URL}/day-ahead", params={"latitude": 34.0, "longitude": 135.0, "day": "2026-08-14"}, headers=city)
    assert far.status_code == 404
    assert "within 25 km" in far.json()["detail"]
    before = api.get(f"{URL}/day-ahead", params={**near, "day": "2026-08-13"}, headers=city)
    assert before.status_code == 404


def test_posting_the_same_issue_again_replaces_its_slots(api: httpx.Client, tokens: dict[str, str]) -> None:
    ops = bearer(tokens["operator"])
    first = api.post(URL, json=_issue("2026-08-13T20:00:00+09:00", 10.0, latitude=40.0), headers=ops).json()
    again = _issue("2026-08-13T20:00:00+09:00", 20.0, latitude=40.0)
    again["slots"] = again["slots"][:48]  # type: ignore[index]
    second = api.post(URL, json=again, headers=ops).json()
    assert second["id"] == first["id"]
    got = api.get(f"{URL}/day-ahead", params={"latitude": 40.0, "longitude": 139.7, "day": "2026-08-14"}, headers=ops)
    assert {slot["ghi_w_m2"] for slot in got.json()["slots"]} == {20.0}
    gone = api.get(f"{URL}/day-ahead", params={"latitude": 40.0, "longitude": 139.7, "day": "2026-08-15"}, headers=ops)
    assert gone.status_code == 404


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"issued_at": "2026-08-13T21:00:00"}, "body.issued_at"),  # no offset
        ({"latitude": 91}, "body.latitude"),
        ({"longitude": "east"}, "body.longitude"),
        ({"source": ""}, "body.source"),
        ({"slots": []}, "body.slots"),
        ({"slots": [{"start": "2026-08-14T12:10:00+09:00", "ghi_w_m2": 1}]}, "body.slots.0.start"),
        ({"slots": [{"start": "2026-08-14T12:00:00", "ghi_w_m2": 1}]}, "body.slots.0.start"),
        ({"slots": [{"start": "2026-08-14T12:00:00+09:00", "ghi_w_m2": -1}]}, "body.slots.0.ghi_w_m2"),
        ({"slots": [{"start": "2026-08-14T12:00:00+09:00", "ghi_w_m2": 1e6}]}, "body.slots.0.ghi_w_m2"),
        ({"slots": [{"start": "2026-08-14T12:00:00+09:00", "ghi_w_m2": "NaN"}]}, "body.slots.0.ghi_w_m2"),
        ({"slots": [{"start": "2026-08-14T12:00:00+09:00", "ghi": 1}]}, "body.slots.0"),
        ({"slots": [{"start": "2026-08-14T12:00:00+09:00", "ghi_w_m2": 1}] * 2}, "body.slots"),
        ({"slots": [{"start": "2026-08-14T12:00:00+09:00", "ghi_w_m2": 1}] * 337}, "body.slots"),
        ({"extra": 1}, "body.extra"),
    ],
)
def test_a_bad_issue_is_refused_naming_the_field_and_nothing_is_stored(
    api: httpx.Client, tokens: dict[str, str], change: dict[str, object], field: str
) -> None:
    ops = bearer(tokens["operator"])
    body = {**_issue("2026-08-13T21:00:00+09:00", 1.0, latitude=-10.0), **change}
    refused = api.post(URL, json=body, headers=ops)
    assert refused.status_code == 422, refused.text
    problem = refused.json()
    assert problem["status"] == 422
    assert problem["detail"].startswith(field), problem["detail"]
    stored = api.get(
        f"{URL}/day-ahead", params={"latitude": -10.0, "longitude": 139.7, "day": "2026-08-14"}, headers=ops
    )
    assert stored.status_code == 404


def test_nul_in_text_and_bad_queries_are_4xx(api: httpx.Client, tokens: dict[str, str]) -> None:
    ops = bearer(tokens["operator"])
    nul = api.post(URL, content=b'{"source": "a\\u0000b"}', headers={**ops, "content-type": "application/json"})
    assert nul.status_code == 400
    cases: list[tuple[dict[str, str | float], str]] = [
        ({"longitude": 139.7, "day": "2026-08-14"}, "query.latitude"),
        ({"latitude": 35.6, "longitude": 139.7, "day": "2026-02-30"}, "query.day"),
        ({"latitude": "inf", "longitude": 139.7, "day": "2026-08-14"}, "query.latitude"),
    ]
    for params, field in cases:
        bad = api.get(f"{URL}/day-ahead", params=params, headers=ops)
        assert bad.status_code == 422, bad.text
        assert bad.json()["detail"].startswith(field), bad.json()["detail"]
