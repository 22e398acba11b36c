"""`vpp clients` for the VTN's roles: add a business-logic and a VEN client, grant the VEN a site,
list them, and revoke them — each step checked at the served VTN."""

from __future__ import annotations

import httpx
import psycopg
import pytest
from typer.testing import CliRunner

from services.api.main import create_app
from services.cli.clients_cmd import app as clients_app
from tests.integration.api.server import serving
from tests.integration.openadr.conftest import validate_response, vtn_settings
from tests.integration.openadr.spec_validation import BASE_PATH
from vpp.postgres.registry import SiteRecord, register_site

pytestmark = pytest.mark.integration


def _token(vtn: httpx.Client, client_id: str, secret: str) -> httpx.Response:
    form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    return vtn.post("/auth/token", data=form)


def test_bl_and_ven_clients_from_add_to_revoke(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VPP_DATABASE_URL", db_url)
    monkeypatch.setenv("COLUMNS", "200")
    with psycopg.connect(db_url) as conn:
        for site_id in ("depot-a", "office-b"):
            register_site(conn, SiteRecord(site_id, site_id.title(), 35.6, 139.6), ())
        conn.commit()
    runner = CliRunner()
    bl = runner.invoke(clients_app, ["add", "utility-bl", "--role", "bl", "--description", "Utility BL"])
    assert bl.exit_code == 0, bl.output
    ven = runner.invoke(clients_app, ["add", "ven-depot-a", "--role", "ven", "--scope", "read_targets"])
    assert ven.exit_code == 0, ven.output
    bl_secret, ven_secret = bl.output.strip().splitlines()[-1], ven.output.strip().splitlines()[-1]
    assert runner.invoke(clients_app, ["add", "ven-x", "--role", "ven", "--scope", "root"]).exit_code == 1
    assert runner.invoke(clients_app, ["add", "ven-y", "--role", "ven", "--site", "depot-a"]).exit_code == 2
    assert runner.invoke(clients_app, ["add", "city-z", "--role", "city", "--scope", "read_all"]).exit_code == 2
    # Only an existing VEN client, only existing sites.
    assert runner.invoke(clients_app, ["grant", "utility-bl", "--site", "depot-a"]).exit_code == 1
    assert runner.invoke(clients_app, ["grant", "ven-depot-a", "--site", "nowhere"]).exit_code == 1
    granted = runner.invoke(clients_app, ["grant", "ven-depot-a", "--site", "depot-a", "--site", "office-b"])
    assert granted.exit_code == 0, granted.output
    assert runner.invoke(clients_app, ["ungrant", "ven-depot-a", "--site", "office-b"]).exit_code == 0
    listing = runner.invoke(clients_app, ["list"]).output
    assert "bl (OpenADR)" in listing
    [ven_row] = [line for line in listing.splitlines() if "ven-depot-a" in line]
    assert "depot-a" in ven_row
    assert "office-b" not in ven_row
    assert ven_secret not in listing

    with (
        serving(create_app(vtn_settings(), database_url=db_url)) as api_url,
        httpx.Client(base_url=api_url + BASE_PATH, event_hooks={"response": [validate_response]}) as vtn,
    ):
        bl_token = _token(vtn, "utility-bl", bl_secret).json()["access_token"]
        bl_headers = {"Authorization": f"Bearer {bl_token}"}
        program = vtn.post("/programs", json={"programName": "onboarding"}, headers=bl_headers).json()
        for site in ("depot-a", "office-b"):
            event = {"programID": program["id"], "eventName": site, "targets": [f"site:{site}"], "intervals": []}
            assert vtn.post("/events", json=event, headers=bl_headers).status_code == 201
        ven_token = _token(vtn, "ven-depot-a", ven_secret).json()
        assert ven_token["scope"] == "read_targets"
        ven_headers = {"Authorization": f"Bearer {ven_token['access_token']}"}
        assert [e["eventName"] for e in vtn.get("/events", headers=ven_headers).json()] == ["depot-a"]

        assert runner.invoke(clients_app, ["revoke", "ven-depot-a"]).exit_code == 0
        assert vtn.get("/events", headers=ven_headers).status_code == 401
        assert _token(vtn, "ven-depot-a", ven_secret).status_code == 401
        assert vtn.get("/events", headers=bl_headers).status_code == 200
    assert runner.invoke(clients_app, ["revoke", "ven-depot-a"]).exit_code == 1
