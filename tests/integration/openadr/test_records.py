"""Reports are records: deleting an event keeps its reports, a program with events or reports is not
deleted, and a deletion that removes children (a ven's resources) notifies each object removed."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.openadr.conftest import bearer
from tests.integration.openadr.receiver import receiving
from tests.integration.openadr.vtn_setup import grant_sites

pytestmark = pytest.mark.integration


def test_deleting_an_event_keeps_its_reports_and_its_program(vtn: httpx.Client, tokens: dict[str, str]) -> None:
    bl, a = bearer(tokens["bl"]), bearer(tokens["ven_a"])
    grant_sites(vtn, tokens["bl"])
    program_id = vtn.post("/programs", json={"programName": "records"}, headers=bl).json()["id"]
    event = {"programID": program_id, "eventName": "to cancel", "targets": ["site:depot-a"], "intervals": []}
    event_id = vtn.post("/events", json=event, headers=bl).json()["id"]
    report = {"eventID": event_id, "clientName": "depot-a-ems", "resources": []}
    report_id = vtn.post("/reports", json=report, headers=a).json()["id"]

    refused = vtn.delete(f"/programs/{program_id}", headers=bl)
    assert refused.status_code == 400
    assert "still has events or reports" in refused.json()["detail"]
    assert vtn.delete(f"/events/{event_id}", headers=bl).status_code == 200

    kept = vtn.get(f"/reports/{report_id}", headers=a)
    assert kept.status_code == 200
    assert kept.json()["eventID"] == event_id
    assert [r["id"] for r in vtn.get("/reports", params={"eventID": event_id}, headers=bl).json()] == [report_id]
    assert vtn.delete(f"/programs/{program_id}", headers=bl).status_code == 400  # the report still names it
    assert vtn.get(f"/programs/{program_id}", headers=bl).status_code == 200


def test_deleting_a_ven_notifies_each_resource_removed_with_it(vtn: httpx.Client, tokens: dict[str, str]) -> None:
    bl = bearer(tokens["bl"])
    with receiving() as receiver:
        sub = {
            "clientName": "bl-audit",
            "objectOperations": [
                {"objects": ["VEN", "RESOURCE"], "operations": ["DELETE"], "callbackUrl": receiver.url}
            ],
        }
        assert vtn.post("/subscriptions", json=sub, headers=bl).status_code == 201
        ven = {"objectType": "BL_VEN_REQUEST", "venName": "to-remove", "clientID": "ven-office-b", "targets": []}
        ven_id = vtn.post("/vens", json=ven, headers=bl).json()["id"]
        resource_ids = set()
        for name in ("battery", "ev-charger"):
            resource = {
                "objectType": "BL_RESOURCE_REQUEST",
                "resourceName": name,
                "venID": ven_id,
                "clientID": "ven-office-b",
            }
            created = vtn.post("/resources", json=resource, headers=bl)
            assert created.status_code == 201, created.text
            resource_ids.add(created.json()["id"])
        assert vtn.delete(f"/vens/{ven_id}", headers=bl).status_code == 200
        receiver.wait(3, timeout_s=5)
    removed = {(n["objectType"], n["object"]["id"]) for n, _ in receiver.received}
    assert removed == {("VEN", ven_id)} | {("RESOURCE", rid) for rid in resource_ids}
