"""A served API with the VTN mounted, two sites, and OpenADR clients: business logic and two VENs.

Every response the `vtn` client receives is validated against the official YAML (`assert_valid`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import psycopg
import pytest
from fastapi import FastAPI

from services.api.main import create_app
from tests.integration.api.api_fixtures import api_settings
from tests.integration.api.server import serving
from tests.integration.openadr.spec_validation import BASE_PATH, assert_valid
from tests.support.servers import fresh_database
from vpp.embedded.postgres import EmbeddedPostgres
from vpp.postgres.openadr_clients import add_openadr_client
from vpp.postgres.registry import SiteRecord, register_site
from vpp.settings import Settings


@dataclass(frozen=True)
class Client:
    client_id: str
    secret: str
    role: str
    scopes: tuple[str, ...] | None = None


CLIENTS = {
    "bl": Client("bl-operator", "bl-secret-0123456789", "bl"),
    "ven_a": Client("ven-depot-a", "ven-a-secret-0123456789", "ven"),
    "ven_b": Client("ven-office-b", "ven-b-secret-0123456789", "ven"),
    "reader": Client("ven-reader", "ven-reader-secret-0123456789", "ven", ("read_targets",)),
}
SITES = ("depot-a", "office-b")


def validate_response(response: httpx.Response) -> None:
    response.read()
    assert_valid(response)


@pytest.fixture(scope="module")
def vtn_db(pg_server: EmbeddedPostgres) -> Iterator[str]:
    with fresh_database(pg_server) as url:
        with psycopg.connect(url) as conn:
            for site_id in SITES:
                register_site(conn, SiteRecord(site_id, site_id.title(), 35.6, 139.6), ())
            for client in CLIENTS.values():
                add_openadr_client(conn, client.client_id, client.secret, client.role, client.scopes)  # type: ignore[arg-type]
            conn.commit()
        yield url


@pytest.fixture(scope="module")
def vtn_app(vtn_db: str) -> FastAPI:
    return create_app(vtn_settings(), database_url=vtn_db)


def vtn_settings(**overrides: object) -> Settings:
    # Short back-off and poll so the retry tests take a fraction of a second.
    values: dict[str, object] = {
        "openadr_webhook_attempts": 4,
        "openadr_webhook_first_delay_s": 0.05,
        "openadr_webhook_max_delay_s": 0.5,
        "openadr_outbox_poll_s": 0.05,
    }
    return api_settings(**{**values, **overrides})


@pytest.fixture(scope="module")
def vtn_url(vtn_app: FastAPI) -> Iterator[str]:
    with serving(vtn_app) as base_url:
        yield base_url


@pytest.fixture(scope="module")
def vtn(vtn_url: str) -> Iterator[httpx.Client]:
    """An HTTP client on the VTN base path that validates every response against the spec."""
    with httpx.Client(
        base_url=vtn_url + BASE_PATH, timeout=30, event_hooks={"response": [validate_response]}
    ) as client:
        yield client


def fetch_token(vtn: httpx.Client, client: Client, *, basic: bool = False) -> str:
    form = {"grant_type": "client_credentials"}
    if basic:
        response = vtn.post("/auth/token", data=form, auth=(client.client_id, client.secret))
    else:
        response = vtn.post("/auth/token", data={**form, "client_id": client.client_id, "client_secret": client.secret})
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


@pytest.fixture(scope="module")
def tokens(vtn: httpx.Client) -> dict[str, str]:
    return {name: fetch_token(vtn, client) for name, client in CLIENTS.items()}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
