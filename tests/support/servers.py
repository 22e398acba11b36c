"""Private PostgreSQL and Mosquitto instances for the suite: real servers, nothing shared with the machine."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from vpp.embedded.postgres import EmbeddedPostgres
from vpp.postgres.migrate import upgrade

TEMPLATE_DB = "vpp_template"


def database_url(server: EmbeddedPostgres, name: str) -> str:
    return server.url.rsplit("/", 1)[0] + f"/{name}"


def prepare_template(server: EmbeddedPostgres) -> None:
    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE_DB}")
        conn.execute(f"CREATE DATABASE {TEMPLATE_DB}")
    upgrade(database_url(server, TEMPLATE_DB))


@contextmanager
def fresh_database(server: EmbeddedPostgres) -> Iterator[str]:
    """A new database cloned from the migrated template; dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB}")
    try:
        yield database_url(server, name)
    finally:
        with psycopg.connect(server.url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def start_postgres(base: Path) -> EmbeddedPostgres:
    return EmbeddedPostgres(base / "pg").start()
