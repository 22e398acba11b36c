from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.servers import Server, fresh_database, prepare_template, suite_postgres
from vpp.embedded.broker import EmbeddedBroker


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # A private embedded server, or the external one named by VPP_TEST_DATABASE_URL (tests/support/servers.py).
    server = suite_postgres(tmp_path_factory.mktemp("postgres"))
    prepare_template(server)
    yield server
    server.destroy()


@pytest.fixture
def db_url(pg_server: Server) -> Iterator[str]:
    with fresh_database(pg_server) as url:
        yield url


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    if EmbeddedBroker.mosquitto_binary() is None:
        pytest.fail("mosquitto is not installed: run `make deps` (it installs Debian's mosquitto)")
    server = EmbeddedBroker(tmp_path / "broker")
    server.start()
    yield server
    server.stop()
