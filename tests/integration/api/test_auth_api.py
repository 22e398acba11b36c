"""Token endpoint, token checks, revocation, development credentials and the city rate limit."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import jwt
import psycopg
import pytest

from services.api.auth import Principal, issue_token
from services.api.main import create_app
from tests.integration.api.api_fixtures import CLIENTS, api_settings
from tests.integration.api.conftest import bearer
from tests.integration.api.server import serving
from vpp.postgres.api_clients import add_client, revoke_client
from vpp.settings import Settings

pytestmark = pytest.mark.integration


@contextmanager
def other_app(db_url: str, settings: Settings) -> Iterator[httpx.Client]:
    with serving(create_app(settings, database_url=db_url)) as base_url, httpx.Client(base_url=base_url) as client:
        yield client


def test_basic_credentials_and_form_both_work(api: httpx.Client) -> None:
    creds = CLIENTS["city"]
    basic = base64.b64encode(f"{creds.client_id}:{creds.secret}".encode()).decode()
    response = api.post(
        "/api/v1/oauth/token", data={"grant_type": "client_credentials"}, headers={"Authorization": f"Basic {basic}"}
    )
    assert response.status_code == 200
    assert response.json()["scope"] == "city"
    site = CLIENTS["site"]
    form = {"grant_type": "client_credentials", "client_id": site.client_id, "client_secret": site.secret}
    assert api.post("/api/v1/oauth/token", data=form).json()["scope"] == "site:depot-a"


def test_basic_challenge_only_for_basic_clients(api: httpx.Client) -> None:
    # A form login (the dashboard's) must get no Basic challenge: browsers answer it with a native
    # password dialog and the page never sees the 401. A client that sent Basic credentials gets one.
    form = {"grant_type": "client_credentials", "client_id": "ops-1", "client_secret": "wrong"}
    response = api.post("/api/v1/oauth/token", data=form)
    assert response.status_code == 401
    assert "www-authenticate" not in response.headers
    assert response.json()["detail"] == "unknown client or wrong secret"
    basic = base64.b64encode(b"ops-1:wrong").decode()
    response = api.post(
        "/api/v1/oauth/token", data={"grant_type": "client_credentials"}, headers={"Authorization": f"Basic {basic}"}
    )
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Basic ")


@pytest.mark.parametrize(
    ("form", "status", "error"),
    [
        ({"grant_type": "password", "client_id": "ops-1", "client_secret": "x"}, 400, "unsupported_grant_type"),
        ({"grant_type": "client_credentials", "client_id": "ops-1", "client_secret": "wrong"}, 401, "invalid_client"),
        ({"grant_type": "client_credentials", "client_id": "nobody", "client_secret": "x"}, 401, "invalid_client"),
        (
            {"grant_type": "client_credentials", "client_id": "dev-operator", "client_secret": "dev-operator-secret"},
            401,
            "invalid_client",
        ),
    ],
)
def test_token_errors_are_problem_details(api: httpx.Client, form: dict[str, str], status: int, error: str) -> None:
    response = api.post("/api/v1/oauth/token", data=form)
    assert response.status_code == status
    body = response.json()
    assert body["error"] == error
    assert body["status"] == status


def test_development_credentials_only_in_development(filled_db: str) -> None:
    settings = Settings(environment="development", database_url=filled_db)
    with other_app(filled_db, settings) as client:
        form = {"grant_type": "client_credentials", "client_id": "dev-operator", "client_secret": "dev-operator-secret"}
        token = client.post("/api/v1/oauth/token", data=form).json()["access_token"]
        assert client.get("/api/v1/regions", headers=bearer(token)).status_code == 200
    # The same development token is worthless once the environment is not development.
    dev_token = issue_token(settings, Principal("dev-operator", "operator", dev=True))[0]
    prod_like = api_settings(api_signing_key=settings.secret("api_signing_key") + "-not-dev")
    with other_app(filled_db, prod_like) as client:
        assert client.get("/api/v1/regions", headers=bearer(dev_token)).status_code == 401


def test_expired_foreign_and_garbage_tokens_are_refused(api: httpx.Client) -> None:
    settings = api_settings()
    expired = issue_token(settings, Principal("ops-1", "operator"), now_s=1_000_000)[0]
    foreign = jwt.encode({"sub": "ops-1", "role": "operator"}, "another-key-0123456789abcdef0123456789", "HS256")
    for token, words in ((expired, "expired"), (foreign, "invalid"), ("garbage", "invalid")):
        response = api.get("/api/v1/regions", headers=bearer(token))
        assert response.status_code == 401
        assert words in response.json()["detail"]
        assert response.headers["www-authenticate"] == "Bearer"


def test_revoked_client_loses_access(filled_db: str) -> None:
    with psycopg.connect(filled_db) as conn:
        add_client(conn, "short-lived", "short-lived-secret", "operator", None)
        conn.commit()
    form = {"grant_type": "client_credentials", "client_id": "short-lived", "client_secret": "short-lived-secret"}
    with other_app(filled_db, api_settings()) as client:
        token = client.post("/api/v1/oauth/token", data=form).json()["access_token"]
        assert client.get("/api/v1/regions", headers=bearer(token)).status_code == 200
        with psycopg.connect(filled_db) as conn:
            assert revoke_client(conn, "short-lived")
            conn.commit()
        assert client.post("/api/v1/oauth/token", data=form).status_code == 401
    with other_app(filled_db, api_settings()) as client:  # a fresh process has no cached client status
        response = client.get("/api/v1/regions", headers=bearer(token))
        assert response.status_code == 401
        assert "revoked" in response.json()["detail"]


def test_city_clients_are_rate_limited(filled_db: str, tokens: dict[str, str]) -> None:
    with other_app(filled_db, api_settings(api_city_rate_limit_per_min=2)) as client:
        statuses = [client.get("/api/v1/regions", headers=bearer(tokens["city"])).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        limited = client.get("/api/v1/regions", headers=bearer(tokens["city"]))
        assert int(limited.headers["retry-after"]) >= 1
        # Operators are not limited.
        assert all(
            client.get("/api/v1/regions", headers=bearer(tokens["operator"])).status_code == 200 for _ in range(5)
        )


def test_health_readiness_and_metrics(api: httpx.Client, filled_db: str) -> None:
    assert api.get("/healthz").json() == {"status": "ok", "detail": None}
    assert api.get("/readyz").status_code == 200
    metrics = api.get("/metrics").text
    assert 'vpp_api_requests_total{route="/healthz",status="200"}' in metrics
    broken = filled_db.rsplit("/", 1)[0] + "/no_such_database"
    with other_app(broken, api_settings()) as client:
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["status"] == "unavailable"
