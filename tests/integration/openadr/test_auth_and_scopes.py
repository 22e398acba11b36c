from __future__ import annotations

import httpx
import pytest

from tests.integration.openadr.conftest import CLIENTS, bearer, fetch_token

pytestmark = pytest.mark.integration


def test_auth_server_names_the_token_endpoint(vtn: httpx.Client) -> None:
    response = vtn.get("/auth/server")
    assert response.status_code == 200
    assert response.json()["tokenURL"].endswith("/openadr3/3.1.0/auth/token")


def test_token_from_form_and_from_basic(vtn: httpx.Client) -> None:
    for basic in (False, True):
        token = fetch_token(vtn, CLIENTS["ven_a"], basic=basic)
        assert vtn.get("/events", headers=bearer(token)).status_code == 200
    body = vtn.post(
        "/auth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "ven-depot-a",
            "client_secret": "ven-a-secret-0123456789",
        },
    ).json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] > 0
    assert set(body["scope"].split()) == {
        "read_targets", "read_ven_objects", "write_reports", "write_subscriptions", "write_vens",
    }  # fmt: skip


def test_token_errors(vtn: httpx.Client) -> None:
    wrong = vtn.post(
        "/auth/token", data={"grant_type": "client_credentials", "client_id": "ven-depot-a", "client_secret": "nope"}
    )
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_client"
    assert wrong.json()["status"] == 401
    grant = vtn.post("/auth/token", data={"grant_type": "password", "client_id": "x", "client_secret": "y"})
    assert grant.status_code == 400
    assert grant.json()["error"] == "unsupported_grant_type"


def test_scope_parameter_narrows_the_grant(vtn: httpx.Client) -> None:
    client = CLIENTS["ven_a"]
    form = {"grant_type": "client_credentials", "client_id": client.client_id, "client_secret": client.secret}
    narrowed = vtn.post("/auth/token", data={**form, "scope": "read_targets"}).json()
    assert narrowed["scope"] == "read_targets"
    report = vtn.post("/reports", json={}, headers=bearer(narrowed["access_token"]))
    assert report.status_code == 403
    assert vtn.post("/auth/token", data={**form, "scope": "write_programs"}).status_code == 400


def test_missing_or_foreign_tokens_are_refused(vtn: httpx.Client) -> None:
    assert vtn.get("/programs").status_code == 401
    assert vtn.get("/programs", headers=bearer("not-a-token")).status_code == 401


@pytest.mark.parametrize(
    ("who", "method", "path", "body"),
    [
        ("ven_a", "POST", "/programs", {"programName": "ven-made"}),
        ("ven_a", "POST", "/events", {"programID": "p-1"}),
        ("bl", "POST", "/reports", {"eventID": "e-1", "clientName": "x", "resources": []}),
        ("reader", "GET", "/reports", None),
        ("reader", "GET", "/vens", None),
        ("reader", "POST", "/subscriptions", {"clientName": "x", "objectOperations": []}),
        ("reader", "POST", "/vens", {"objectType": "VEN_VEN_REQUEST", "venName": "x"}),
    ],
)
def test_operations_need_the_spec_scope(
    vtn: httpx.Client, tokens: dict[str, str], who: str, method: str, path: str, body: object
) -> None:
    response = vtn.request(method, path, json=body, headers=bearer(tokens[who]))
    assert response.status_code == 403, response.text
    assert response.json()["status"] == 403


def test_notifiers_offer_webhooks(vtn: httpx.Client, tokens: dict[str, str]) -> None:
    response = vtn.get("/notifiers", headers=bearer(tokens["ven_a"]))
    assert response.status_code == 200
    assert response.json() == {"WEBHOOK": True}
