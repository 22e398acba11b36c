"""Object privacy: a VEN sees programs and events targeted at it (or untargeted), and only its own
reports, subscriptions, vens and resources; other VENs' objects answer 404 like missing ones."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.integration.openadr.conftest import bearer
from tests.integration.openadr.vtn_setup import grant_sites

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def world(vtn: httpx.Client, tokens: dict[str, str]) -> dict[str, Any]:
    bl = bearer(tokens["bl"])
    vens = grant_sites(vtn, tokens["bl"])
    program_id = vtn.post("/programs", json={"programName": "privacy-dr"}, headers=bl).json()["id"]

    def event(name: str, targets: list[str] | None) -> dict[str, Any]:
        body: dict[str, Any] = {"programID": program_id, "eventName": name, "intervals": []}
        if targets is not None:
            body["targets"] = targets
        response = vtn.post("/events", json=body, headers=bl)
        assert response.status_code == 201, response.text
        return dict(response.json())

    return {
        "vens": vens,
        "program_id": program_id,
        "a": event("for-a", ["site:depot-a"]),
        "b": event("for-b", ["site:office-b"]),
        "both": event("for-both", ["site:depot-a", "site:office-b", "group-secret"]),
        "all": event("for-all", None),
    }


def _ids(response: httpx.Response) -> set[str]:
    assert response.status_code == 200, response.text
    return {obj["id"] for obj in response.json()}


def test_ven_sees_only_events_targeted_at_it(vtn: httpx.Client, tokens: dict[str, str], world: dict[str, Any]) -> None:
    a, b = bearer(tokens["ven_a"]), bearer(tokens["ven_b"])
    assert _ids(vtn.get("/events", headers=a)) == {world[k]["id"] for k in ("a", "both", "all")}
    assert _ids(vtn.get("/events", headers=b)) == {world[k]["id"] for k in ("b", "both", "all")}
    assert vtn.get(f"/events/{world['b']['id']}", headers=a).status_code == 404
    assert vtn.get(f"/events/{world['a']['id']}", headers=b).status_code == 404
    assert _ids(vtn.get("/events", headers=bearer(tokens["bl"]))) >= {world[k]["id"] for k in ("a", "b", "both", "all")}


def test_targets_are_hidden_and_query_targets_must_be_granted(
    vtn: httpx.Client, tokens: dict[str, str], world: dict[str, Any]
) -> None:
    a = bearer(tokens["ven_a"])
    seen = vtn.get(f"/events/{world['both']['id']}", headers=a).json()
    assert seen["targets"] == ["site:depot-a"]
    assert _ids(vtn.get("/events", params={"targets": "group-secret"}, headers=a)) == set()
    assert _ids(vtn.get("/events", params={"targets": "site:depot-a"}, headers=a)) == {
        world["a"]["id"],
        world["both"]["id"],
    }


def test_reports_are_private_to_their_ven(vtn: httpx.Client, tokens: dict[str, str], world: dict[str, Any]) -> None:
    a, b = bearer(tokens["ven_a"]), bearer(tokens["ven_b"])
    report = {
        "eventID": world["a"]["id"],
        "clientName": "depot-a-ems",
        "resources": [
            {"resourceName": "meter-1", "intervals": [{"id": 0, "payloads": [{"type": "USAGE", "values": [1.5]}]}]}
        ],
    }
    created = vtn.post("/reports", json=report, headers=a)
    assert created.status_code == 201, created.text
    assert created.json()["clientID"] == "ven-depot-a"
    report_id = created.json()["id"]
    assert _ids(vtn.get("/reports", headers=b)) == set()
    assert vtn.get(f"/reports/{report_id}", headers=b).status_code == 404
    assert vtn.put(f"/reports/{report_id}", json=report, headers=b).status_code == 404
    assert vtn.post("/reports", json={**report, "eventID": world["a"]["id"]}, headers=b).status_code == 400
    assert _ids(vtn.get("/reports", params={"eventID": world["a"]["id"]}, headers=a)) == {report_id}
    assert report_id in _ids(vtn.get("/reports", headers=bearer(tokens["bl"])))


def test_vens_and_resources_are_private(vtn: httpx.Client, tokens: dict[str, str], world: dict[str, Any]) -> None:
    a, b = bearer(tokens["ven_a"]), bearer(tokens["ven_b"])
    ven_a = world["vens"]["ven-depot-a"]
    assert _ids(vtn.get("/vens", headers=a)) == {ven_a["id"]}
    assert vtn.get(f"/vens/{ven_a['id']}", headers=b).status_code == 404
    resource = {"objectType": "VEN_RESOURCE_REQUEST", "resourceName": "battery-1", "venID": ven_a["id"]}
    created = vtn.post("/resources", json=resource, headers=a)
    assert created.status_code == 201, created.text
    assert created.json()["objectType"] == "RESOURCE"
    assert created.json()["clientID"] == "ven-depot-a"
    assert vtn.post("/resources", json=resource, headers=b).status_code == 400
    assert _ids(vtn.get("/resources", headers=b)) == set()
    # A VEN may not grant itself targets.
    grab = {"objectType": "VEN_VEN_REQUEST", "venName": "ven-depot-a", "targets": ["site:office-b"]}
    assert vtn.put(f"/vens/{ven_a['id']}", json=grab, headers=a).status_code == 403
    renamed = vtn.put(
        f"/vens/{ven_a['id']}", json={"objectType": "VEN_VEN_REQUEST", "venName": "ven-depot-a"}, headers=a
    )
    assert renamed.status_code == 200
    assert renamed.json()["targets"] == ["site:depot-a"]
