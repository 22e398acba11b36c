"""Webhook delivery through the outbox with retry and back-off, against a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.openadr.conftest import bearer
from tests.integration.openadr.receiver import receiving
from tests.integration.openadr.vtn_setup import grant_sites

pytestmark = pytest.mark.integration


def test_vtn_notifies_subscribers_of_events_they_may_see(vtn: httpx.Client, tokens: dict[str, str]) -> None:
    bl, a = bearer(tokens["bl"]), bearer(tokens["ven_a"])
    grant_sites(vtn, tokens["bl"])
    program_id = vtn.post("/programs", json={"programName": "webhook-dr"}, headers=bl).json()["id"]
    with receiving([503]) as receiver:
        sub = {
            "clientName": "depot-a-ems",
            "programID": program_id,
            "objectOperations": [
                {
                    "objects": ["EVENT"],
                    "operations": ["CREATE"],
                    "callbackUrl": receiver.url,
                    "bearerToken": "depot-secret",
                }
            ],
        }
        assert vtn.post("/subscriptions", json=sub, headers=a).status_code == 201
        other = {"programID": program_id, "eventName": "office only", "targets": ["site:office-b"], "intervals": []}
        assert vtn.post("/events", json=other, headers=bl).status_code == 201
        mine = {
            "programID": program_id,
            "eventName": "depot",
            "targets": ["site:depot-a", "site:office-b"],
            "intervals": [],
        }
        created = vtn.post("/events", json=mine, headers=bl).json()
        receiver.wait(1)
    assert receiver.attempts == 2  # the first answer was 503: delivered on the retry
    [(notification, auth)] = receiver.received
    assert auth == "Bearer depot-secret"
    assert notification["objectType"] == "EVENT"
    assert notification["operation"] == "CREATE"
    assert notification["object"]["id"] == created["id"]
    assert notification["object"]["targets"] == ["site:depot-a"]  # hidden as the VEN would read it
