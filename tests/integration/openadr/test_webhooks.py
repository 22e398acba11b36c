"""Webhook delivery with retry and back-off, against a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from services.api.openadr.webhooks import RetryPolicy, WebhookDeliverer
from tests.integration.openadr.conftest import bearer
from tests.integration.openadr.receiver import receiving
from tests.integration.openadr.vtn_setup import grant_sites

pytestmark = pytest.mark.integration

FAST = RetryPolicy(attempts=4, first_delay_s=0.02, factor=2.0, max_delay_s=1.0, jitter=0.0)


def _deliver(policy: RetryPolicy, url: str) -> tuple[bool, list[float]]:
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)
        await asyncio.sleep(seconds)

    deliverer = WebhookDeliverer(policy, sleep=sleep)
    ok = asyncio.run(deliverer.deliver(url, {"objectType": "EVENT", "operation": "CREATE", "object": {}}, "tok"))
    return ok, delays


def test_retries_server_errors_with_exponential_back_off() -> None:
    with receiving([503, 500]) as receiver:
        ok, delays = _deliver(FAST, receiver.url)
    assert ok
    assert receiver.attempts == 3
    assert delays == [0.02, 0.04]
    assert receiver.received[0][1] == "Bearer tok"


def test_gives_up_after_the_last_attempt() -> None:
    with receiving([503] * 10) as receiver:
        ok, delays = _deliver(FAST, receiver.url)
    assert not ok
    assert receiver.attempts == FAST.attempts
    assert delays == [0.02, 0.04, 0.08]


def test_client_errors_are_not_retried() -> None:
    with receiving([404]) as receiver:
        ok, delays = _deliver(FAST, receiver.url)
    assert not ok
    assert receiver.attempts == 1
    assert delays == []


def test_unreachable_receiver_is_retried() -> None:
    with receiving() as receiver:
        url = receiver.url
    ok, delays = _deliver(FAST, url)  # the server is gone: connection refused
    assert not ok
    assert len(delays) == FAST.attempts - 1


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
