"""Requests the spec's enumerations, target rules and content types refuse, answered as the YAML allows."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.openadr.conftest import bearer
from tests.integration.openadr.vtn_setup import grant_sites

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def program_id(vtn: httpx.Client, tokens: dict[str, str]) -> str:
    grant_sites(vtn, tokens["bl"])
    return str(vtn.post("/programs", json={"programName": "validation"}, headers=bearer(tokens["bl"])).json()["id"])


def test_limit_payloads_and_units_are_checked(vtn: httpx.Client, tokens: dict[str, str], program_id: str) -> None:
    bl = bearer(tokens["bl"])
    bad_values = {
        "programID": program_id,
        "intervals": [{"id": 0, "payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [-5, "lots", True]}]}],
    }
    refused = vtn.post("/events", json=bad_values, headers=bl)
    assert refused.status_code == 400
    assert "IMPORT_CAPACITY_LIMIT" in refused.json()["detail"]
    bad_units = {
        "programID": program_id,
        "payloadDescriptors": [{"payloadType": "IMPORT_CAPACITY_LIMIT", "units": "FURLONGS"}],
        "intervals": [{"id": 0, "payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [35.0]}]}],
    }
    assert "FURLONGS" in vtn.post("/events", json=bad_units, headers=bl).json()["detail"]
    bad_units["payloadDescriptors"][0]["units"] = "KW"  # type: ignore[index]
    assert vtn.post("/events", json=bad_units, headers=bl).status_code == 201


def test_targets_filter_needs_every_target(vtn: httpx.Client, tokens: dict[str, str], program_id: str) -> None:
    bl = bearer(tokens["bl"])
    both = {"programID": program_id, "eventName": "both", "targets": ["site:depot-a", "site:office-b"], "intervals": []}
    one = {"programID": program_id, "eventName": "depot", "targets": ["site:depot-a"], "intervals": []}
    for event in (both, one):
        assert vtn.post("/events", json=event, headers=bl).status_code == 201

    def names(*targets: str) -> set[str]:
        found = vtn.get("/events", params={"programID": program_id, "targets": list(targets)}, headers=bl).json()
        return {e["eventName"] for e in found}

    assert names("site:depot-a") == {"both", "depot"}
    assert names("site:depot-a", "site:office-b") == {"both"}


def test_openadr_301_target_parameters_are_refused(vtn: httpx.Client, tokens: dict[str, str]) -> None:
    refused = vtn.get(
        "/events", params={"targetType": "SITE", "targetValues": "depot-a"}, headers=bearer(tokens["ven_a"])
    )
    assert refused.status_code == 400
    assert "targetType and targetValues are OpenADR 3.0.1 parameters" in refused.json()["detail"]


@pytest.mark.parametrize(("method", "path"), [("GET", "/nowhere"), ("PATCH", "/events"), ("POST", "/notifiers/x")])
def test_unhandled_paths_answer_a_json_problem(vtn_url: str, method: str, path: str) -> None:
    # Not through `vtn`: these paths are not in the YAML, so there is no operation to validate against.
    response = httpx.request(method, f"{vtn_url}/openadr3/3.1.0{path}", timeout=10)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json()["status"] == 404


def test_nul_characters_are_a_400_not_a_database_error(
    vtn: httpx.Client, tokens: dict[str, str], program_id: str
) -> None:
    bl = bearer(tokens["bl"])
    event = {"programID": program_id, "eventName": "peak\u0000cut", "intervals": []}
    refused = vtn.post("/events", json=event, headers=bl)
    assert refused.status_code == 400
    assert "NUL" in refused.json()["detail"]
    assert vtn.get("/vens", params={"venName": "a\u0000b"}, headers=bl).status_code == 400
    token = vtn.post(
        "/auth/token", data={"grant_type": "client_credentials", "client_id": "x\u0000y", "client_secret": "s"}
    )
    # The request guard refuses NUL in any form field before the token endpoint sees it.
    assert token.status_code == 400


def test_a_skip_beyond_a_bigint_is_a_400_not_a_500(vtn: httpx.Client, tokens: dict[str, str]) -> None:
    bl = bearer(tokens["bl"])
    for path in ("/programs", "/events", "/reports", "/subscriptions", "/vens", "/resources"):
        refused = vtn.get(path, params={"skip": "99999999999999999999"}, headers=bl)
        assert refused.status_code == 400, (path, refused.status_code, refused.text[:200])
        assert refused.json()["detail"].startswith("skip must be between 0 and ")
        assert vtn.get(path, params={"skip": str(2**63 - 1)}, headers=bl).json() == []


@pytest.mark.parametrize(
    "period",
    [
        {"start": "2026-12-06T01:00:00Z", "duration": "P9999999999D"},  # more days than a timedelta holds
        {"start": "9999-12-31T23:45:00Z", "duration": "PT30M"},  # ends past year 9999
    ],
)
def test_an_event_whose_end_no_date_can_hold_is_open_ended_not_a_500(
    vtn: httpx.Client, tokens: dict[str, str], program_id: str, period: dict[str, str]
) -> None:
    bl = bearer(tokens["bl"])
    event = {
        "programID": program_id,
        "intervalPeriod": period,
        "intervals": [{"id": 0, "payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [5]}]}],
    }
    created = vtn.post("/events", json=event, headers=bl)
    assert created.status_code == 201, created.text[:300]
    assert vtn.get(f"/events/{created.json()['id']}", headers=bl).status_code == 200
