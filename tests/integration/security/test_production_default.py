"""A careless deployment: the API started as a process with only a database URL (no VPP_ENVIRONMENT) is
production. It refuses to start without a signing key, saying so in one line; with a key, the
development clients and tokens signed with the public development key are refused."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest

from tests.support.servers import fresh_database
from vpp.embedded.postgres import EmbeddedPostgres, free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
DEV_KEY = "dev-api-signing-key-change-me"  # public: it is in the source


def api_env(db_url: str, port: int, **extra: str) -> dict[str, str]:
    # Nothing of the test runner's VPP_* environment leaks in: only what a careless operator set.
    env = {k: v for k, v in os.environ.items() if not k.startswith("VPP_")}
    return {**env, "VPP_DATABASE_URL": db_url, "VPP_API_PORT": str(port), **extra}


@pytest.fixture
def db(pg_server: EmbeddedPostgres) -> Iterator[str]:
    with fresh_database(pg_server) as url:
        yield url


def test_without_a_signing_key_the_api_does_not_start(db: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "services.api"],
        cwd=tmp_path,  # no .env file here
        env={**api_env(db, free_port()), "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "VPP_API_SIGNING_KEY is not set" in lines[0]


def test_with_only_a_database_url_and_a_key_the_development_clients_are_refused(db: str, tmp_path: Path) -> None:
    port = free_port()
    env = {**api_env(db, port, VPP_API_SIGNING_KEY="a-real-key-0123456789abcdef"), "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "services.api"], cwd=tmp_path, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, "the API did not start"
            time.sleep(0.1)

        for client_id, secret in (("dev-operator", "dev-operator-secret"), ("dev-city", "dev-city-secret")):
            form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
            refused = httpx.post(f"{base}/api/v1/oauth/token", data=form)
            assert refused.status_code == 401, refused.text
            assert "development credentials are refused" in refused.json()["detail"]

        # A token forged with the public development key, as the operator or as a site.
        key = hashlib.sha256(b"vpp-api-token-v1:" + DEV_KEY.encode()).digest()
        now = int(time.time())
        for claims in ({"role": "operator"}, {"role": "site", "site": "depot-a"}):
            forged = jwt.encode(
                {"iss": "vpp-api", "sub": "attacker", "iat": now, "exp": now + 600, **claims}, key, algorithm="HS256"
            )
            answer = httpx.get(f"{base}/api/v1/regions", headers={"Authorization": f"Bearer {forged}"})
            assert answer.status_code == 401, answer.text
    finally:
        process.terminate()
        process.wait(15)
        if process.stderr:
            process.stderr.close()
