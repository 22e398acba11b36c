from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import httpx
import pytest

from services.api.main import create_app
from tests.integration.api.api_fixtures import CLIENTS, add_clients, anchor, api_settings, fill_through_ingest
from tests.integration.api.server import serving
from tests.support.servers import fresh_database
from vpp.embedded.postgres import EmbeddedPostgres


@pytest.fixture(scope="module")
def t0() -> datetime:
    return anchor()


@pytest.fixture(scope="module")
def filled_db(pg_server: EmbeddedPostgres, tmp_path_factory: pytest.TempPathFactory, t0: datetime) -> Iterator[str]:
    """One database per test module, filled through MQTT and the ingest worker; tests only read it."""
    with fresh_database(pg_server) as url:
        fill_through_ingest(url, tmp_path_factory.mktemp("api-ingest"), t0)
        add_clients(url)
        yield url


@pytest.fixture(scope="module")
def api(filled_db: str) -> Iterator[httpx.Client]:
    app = create_app(api_settings(), database_url=filled_db)
    with serving(app) as base_url, httpx.Client(base_url=base_url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def tokens(api: httpx.Client) -> dict[str, str]:
    out = {}
    for role, creds in CLIENTS.items():
        response = api.post(
            "/api/v1/oauth/token",
            data={"grant_type": "client_credentials", "client_id": creds.client_id, "client_secret": creds.secret},
        )
        assert response.status_code == 200, response.text
        out[role] = response.json()["access_token"]
    return out


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
