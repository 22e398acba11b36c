"""`vpp clients add/list/revoke` against a real database, and the secret it prints working at the API."""

from __future__ import annotations

import httpx
import pytest
from typer.testing import CliRunner

from services.api.main import create_app
from services.cli.clients_cmd import app as clients_app
from tests.integration.api.api_fixtures import api_settings, register_sites
from tests.integration.api.server import serving

pytestmark = pytest.mark.integration


def test_add_list_revoke(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VPP_DATABASE_URL", db_url)
    register_sites(db_url)
    runner = CliRunner()
    added = runner.invoke(clients_app, ["add", "climate-office", "--role", "city", "--description", "City climate"])
    assert added.exit_code == 0, added.output
    secret = added.output.strip().splitlines()[-1]
    site = runner.invoke(clients_app, ["add", "depot-ems", "--role", "site", "--site", "depot-a"])
    assert site.exit_code == 0, site.output
    assert runner.invoke(clients_app, ["add", "lost", "--role", "site", "--site", "nowhere"]).exit_code == 1
    assert runner.invoke(clients_app, ["add", "climate-office", "--role", "city"]).exit_code == 1
    assert runner.invoke(clients_app, ["add", "x", "--role", "admin"]).exit_code == 2
    listing = runner.invoke(clients_app, ["list"])
    assert "climate-office" in listing.output
    assert "depot-a" in listing.output
    assert secret not in listing.output

    form = {"grant_type": "client_credentials", "client_id": "climate-office", "client_secret": secret}
    with serving(create_app(api_settings(), database_url=db_url)) as base_url:
        assert httpx.post(f"{base_url}/api/v1/oauth/token", data=form).status_code == 200
        assert runner.invoke(clients_app, ["revoke", "climate-office"]).exit_code == 0
        assert httpx.post(f"{base_url}/api/v1/oauth/token", data=form).status_code == 401
    assert runner.invoke(clients_app, ["revoke", "climate-office"]).exit_code == 1
