"""Two API processes on one highly available database ride over a failover: while the primary is gone a
request gets 200 or 503 (Retry-After), never 500, and both answer 200 again on the new primary."""

from __future__ import annotations

import time
from contextlib import ExitStack
from pathlib import Path

import httpx
import psycopg
import pytest

from bench.ha_formation import Formation, pg_auto_failover_installed
from services.api.main import create_app
from tests.integration.api.api_fixtures import CLIENTS, api_settings
from tests.integration.api.server import serving
from vpp.postgres.api_clients import add_client
from vpp.postgres.migrate import upgrade

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _token(api: httpx.Client) -> int:
    creds = CLIENTS["operator"]
    data = {"grant_type": "client_credentials", "client_id": creds.client_id, "client_secret": creds.secret}
    try:
        return api.post("/api/v1/oauth/token", data=data).status_code
    except httpx.TransportError:
        return 0  # the API process itself must not go away: counted as a failure below


def test_two_api_processes_answer_503_during_a_failover_and_200_after(tmp_path: Path) -> None:
    if not pg_auto_failover_installed():
        pytest.fail("pg_auto_failover is not installed: run `make deps` (postgresql-15-auto-failover)")
    formation = Formation(tmp_path / "pg").start()
    try:
        url = formation.url()
        upgrade(url)  # Alembic over the multi-host URL
        with psycopg.connect(url) as conn:
            add_client(conn, CLIENTS["operator"].client_id, CLIENTS["operator"].secret, "operator", None)
            conn.commit()
        with ExitStack() as stack:
            apis = [
                stack.enter_context(httpx.Client(base_url=stack.enter_context(serving(app)), timeout=30))
                for app in (create_app(api_settings(), database_url=url) for _ in range(2))
            ]
            assert [_token(api) for api in apis] == [200, 200]
            formation.sigkill(formation.primary())
            seen: set[int] = set()
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                statuses = [_token(api) for api in apis]
                seen.update(statuses)
                if statuses == [200, 200] and 503 in seen:
                    break
                time.sleep(0.2)
            assert seen <= {200, 503}, seen
            assert [_token(api) for api in apis] == [200, 200]
    finally:
        formation.destroy()
