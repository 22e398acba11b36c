"""Throw-away databases cloned from a migrated template (tests and benchmarks start from clean state)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from vpp.postgres.connect import libpq_url
from vpp.postgres.migrate import upgrade

__all__ = ["database_url", "prepare_template", "scratch_database"]

TEMPLATE_DB = "vpp_template"


def database_url(server_url: str, name: str) -> str:
    return libpq_url(server_url).rsplit("/", 1)[0] + f"/{name}"


def prepare_template(server_url: str, name: str = TEMPLATE_DB) -> str:
    """(Re)create `name` and migrate it to head; returns its URL."""
    with psycopg.connect(libpq_url(server_url), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    url = database_url(server_url, name)
    upgrade(url)
    return url


@contextmanager
def scratch_database(server_url: str, template: str = TEMPLATE_DB, prefix: str = "t") -> Iterator[str]:
    """A new database cloned from the template; dropped on exit."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(libpq_url(server_url), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
    try:
        yield database_url(server_url, name)
    finally:
        with psycopg.connect(libpq_url(server_url), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
