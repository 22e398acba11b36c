"""CRUD and wire format of programs, events, subscriptions; pagination and filters; problems."""

from __future__ import annotations

import uuid
from datetime import datetime

import httpx
import pytest

from tests.integration.openadr.conftest import bearer

pytestmark = pytest.mark.integration


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _has_offset(text: str) -> bool:
    return datetime.fromisoformat(text).utcoffset() is not None


def test_program_lifecycle_and_wire_format(vtn: httpx.Client, tokens: dict[str, str]) -> None:
    bl = bearer(tokens["bl"])
    name = _name("tou")
    created = vtn.post(
        "/programs", json={"programName": name, "programDescriptions": [{"URL": "https://example.org/p"}]}, headers=bl
    )
    assert created.status_code == 201, created.text
    program = created.json()
    assert program["objectType"] == "PROGRAM"
    assert program["programName"] == name
    assert _has_offset(program["createdDateTime"])
    assert _has_offset(program["modificationDateTime"])

    taken = vtn.post("/programs", json={"programName": name}, headers=bl)
    assert taken.status_code == 409
    # The field, not the database's constraint name or message.
    assert taken.json()["detail"] == "the program conflicts with an existing one: programName is taken"
    assert vtn.get(f"/programs/{program['id']}", headers=bl).json() == program

    updated = vtn.put(f"/programs/{program['id']}", json={"programName": name, "targets": ["group-1"]}, headers=bl)
    assert updated.status_code == 200
    assert updated.json()["targets"] == ["group-1"]
    assert updated.json()["createdDateTime"] == program["createdDateTime"]

    deleted = vtn.delete(f"/programs/{program['id']}", headers=bl)
    assert deleted.status_code == 200
    assert deleted.json()["id"] == program["id"]
    assert vtn.get(f"/programs/{program['id']}", headers=bl).status_code == 404


def test_events_filters_and_pagination(vtn: httpx.Client, tokens: dict[str, str]) -> None:
    bl = bearer(tokens["bl"])
    program_id = vtn.post("/programs", json={"programName": _name("price")}, headers=bl).json()["id"]
    ids = []
    for hour in range(3):
        event = {
            "programID": program_id,
            "eventName": f"price {hour}",
            "payloadDescriptors": [
                {"objectType": "EVENT_PAYLOAD_DESCRIPTOR", "payloadType": "PRICE", "units": "KWH", "currency": "JPY"}
            ],
            "intervalPeriod": {"start": f"2030-07-01T1{hour}:00:00+09:00", "duration": "PT1H"},
            "intervals": [{"id": 0, "payloads": [{"type": "PRICE", "values": [12.5 + hour]}]}],
        }
        response = vtn.post("/events", json=event, headers=bl)
        assert response.status_code == 201, response.text
        assert response.json()["programID"] == program_id
        ids.append(response.json()["id"])
    listed = vtn.get("/events", params={"programID": program_id}, headers=bl).json()
    assert [e["id"] for e in listed] == ids
    page = vtn.get("/events", params={"programID": program_id, "skip": 1, "limit": 1}, headers=bl).json()
    assert [e["id"] for e in page] == ids[1:2]
    assert vtn.get("/events", params={"programID": program_id, "active": "true"}, headers=bl).json() == listed


@pytest.mark.parametrize(
    "params",
    [{"limit": "51"}, {"limit": "-1"}, {"skip": "-3"}, {"skip": "x"}, {"programID": "bad id!"}, {"active": "maybe"}],
)
def test_bad_queries_are_400_problems(vtn: httpx.Client, tokens: dict[str, str], params: dict[str, str]) -> None:
    response = vtn.get("/events", params=params, headers=bearer(tokens["bl"]))
    assert response.status_code == 400
    assert response.json()["status"] == 400
    assert response.json()["detail"]


def test_bad_bodies_are_400_problems(vtn: httpx.Client, tokens: dict[str, str]) -> None:
    bl = bearer(tokens["bl"])
    assert vtn.post("/programs", json={"programName": ""}, headers=bl).status_code == 400
    assert vtn.post("/programs", content=b"{", headers={**bl, "Content-Type": "application/json"}).status_code == 400
    assert vtn.post("/events", json={"programID": "no-such-program"}, headers=bl).status_code == 400
    naive = {"programName": _name("naive"), "intervalPeriod": {"start": "2030-01-01T00:00:00"}}
    assert vtn.post("/programs", json=naive, headers=bl).status_code == 400


def test_subscription_crud_stamps_client_id(vtn: httpx.Client, tokens: dict[str, str]) -> None:
    ven = bearer(tokens["ven_a"])
    request = {
        "clientName": "depot-a-ems",
        "objectOperations": [
            {"objects": ["EVENT"], "operations": ["CREATE", "UPDATE"], "callbackUrl": "http://127.0.0.1:9/cb"}
        ],
    }
    created = vtn.post("/subscriptions", json=request, headers=ven)
    assert created.status_code == 201, created.text
    sub = created.json()
    assert sub["objectType"] == "SUBSCRIPTION"
    assert sub["clientID"] == "ven-depot-a"
    assert [s["id"] for s in vtn.get("/subscriptions", params={"objects": "EVENT"}, headers=ven).json()] == [sub["id"]]
    assert vtn.get("/subscriptions", params={"objects": "REPORT"}, headers=ven).json() == []
    assert vtn.get(f"/subscriptions/{sub['id']}", headers=bearer(tokens["ven_b"])).status_code == 404
    assert vtn.delete(f"/subscriptions/{sub['id']}", headers=bearer(tokens["ven_b"])).status_code == 404
    assert vtn.delete(f"/subscriptions/{sub['id']}", headers=ven).json()["id"] == sub["id"]
