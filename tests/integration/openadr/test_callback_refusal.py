"""Outside development, a VEN cannot point the VTN's webhooks into the VTN's own host or link (SSRF): refused
when the subscription is written, and again at each delivery (a name can be re-pointed after it was accepted)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import psycopg
import pytest

from services.api.main import create_app
from tests.integration.api.server import serving
from tests.integration.openadr.conftest import CLIENTS, bearer, fetch_token, validate_response, vtn_settings
from tests.integration.openadr.receiver import receiving
from tests.integration.openadr.spec_validation import BASE_PATH
from tests.integration.openadr.vtn_setup import grant_sites
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


def _subscription(url: str, program_id: str | None = None) -> dict[str, object]:
    body: dict[str, object] = {
        "clientName": "depot-a-ems",
        "objectOperations": [{"objects": ["EVENT"], "operations": ["CREATE"], "callbackUrl": url}],
    }
    if program_id is not None:
        body["programID"] = program_id
    return body


@pytest.fixture
def guarded_vtn(vtn_db: str) -> Iterator[httpx.Client]:
    """The VTN as deployed: local callbacks not allowed (the production default)."""
    app = create_app(vtn_settings(openadr_callback_allow_local=False), database_url=vtn_db)
    with (
        serving(app) as base_url,
        httpx.Client(
            base_url=base_url + BASE_PATH, timeout=30, event_hooks={"response": [validate_response]}
        ) as client,
    ):
        yield client


def test_the_production_default_refuses_local_callbacks() -> None:
    from vpp.settings import Settings

    assert Settings(environment="production").openadr_local_callbacks_allowed is False
    assert Settings(environment="development").openadr_local_callbacks_allowed is True
    assert (
        Settings(environment="development", openadr_callback_allow_local=False).openadr_local_callbacks_allowed is False
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/admin",
        "http://localhost/cb",
        "http://[::1]:9101/metrics",
        "http://169.254.169.254/latest/meta-data/",
        "http://0.0.0.0:5432/",
        "http://[::ffff:127.0.0.1]/cb",
    ],
)
def test_a_subscription_pointing_into_the_vtns_host_is_refused_and_not_stored(
    guarded_vtn: httpx.Client, url: str
) -> None:
    ven = bearer(fetch_token(guarded_vtn, CLIENTS["ven_a"]))
    before = guarded_vtn.get("/subscriptions", headers=ven).json()
    refused = guarded_vtn.post("/subscriptions", json=_subscription(url), headers=ven)
    assert refused.status_code == 400, refused.text
    assert refused.json()["detail"].startswith("objectOperations.0.callbackUrl: refused")
    assert guarded_vtn.get("/subscriptions", headers=ven).json() == before
    # An update cannot sneak it in either.
    made = guarded_vtn.post("/subscriptions", json=_subscription("http://10.20.30.40/cb"), headers=ven)
    assert made.status_code == 201, made.text  # a VEN on the utility's private network
    update = guarded_vtn.put(f"/subscriptions/{made.json()['id']}", json=_subscription(url), headers=ven)
    assert update.status_code == 400
    assert (
        guarded_vtn.get(f"/subscriptions/{made.json()['id']}", headers=ven).json()["objectOperations"][0]["callbackUrl"]
        == "http://10.20.30.40/cb"
    )
    guarded_vtn.delete(f"/subscriptions/{made.json()['id']}", headers=ven)


def test_a_stored_local_callback_is_given_up_at_delivery_not_called(vtn_db: str, guarded_vtn: httpx.Client) -> None:
    with receiving() as receiver:
        # Stored while allowed (a VTN run in test), as a name accepted then re-pointed at 127.0.0.1 would be.
        # That VTN is stopped before the event: from then on only the guarded one delivers.
        allowing = create_app(vtn_settings(openadr_callback_allow_local=True), database_url=vtn_db)
        with serving(allowing) as base_url, httpx.Client(base_url=base_url + BASE_PATH, timeout=30) as vtn:
            bl = bearer(fetch_token(vtn, CLIENTS["bl"]))
            grant_sites(vtn, fetch_token(vtn, CLIENTS["bl"]))
            program_id = vtn.post("/programs", json={"programName": "ssrf-guard"}, headers=bl).json()["id"]
            ven = bearer(fetch_token(vtn, CLIENTS["ven_a"]))
            assert (
                vtn.post("/subscriptions", json=_subscription(receiver.url, program_id), headers=ven).status_code == 201
            )
        guarded_bl = bearer(fetch_token(guarded_vtn, CLIENTS["bl"]))
        event = {"programID": program_id, "eventName": "ssrf", "targets": ["site:depot-a"], "intervals": []}
        assert guarded_vtn.post("/events", json=event, headers=guarded_bl).status_code == 201

        def deliveries() -> list[tuple[int, str | None]]:
            with psycopg.connect(vtn_db) as conn:
                rows = conn.execute(
                    "SELECT attempts, last_error FROM openadr_deliveries WHERE callback_url = %s AND failed_at IS NOT NULL",
                    (receiver.url,),
                ).fetchall()
            return [(attempts, error) for attempts, error in rows]

        (given_up,) = wait_for(deliveries, lambda rows: len(rows) == 1, timeout_s=10.0)
        assert given_up[1] is not None
        assert given_up[1].startswith("callback address refused: 127.0.0.1 is a loopback address")
    assert receiver.attempts == 0  # never called, and not retried
