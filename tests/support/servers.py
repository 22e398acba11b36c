"""PostgreSQL for the suite: a private embedded server, or the external one in VPP_TEST_DATABASE_URL.

VPP_TEST_DATABASE_URL (e.g. ``postgresql://vpp:secret@db.example:5432/postgres``) points the suite
at any PostgreSQL or TimescaleDB server: its role needs CREATEDB, nothing more. The suite creates a
template of its own (``vpp_template_<random>``) and ``t_<random>`` databases there, and drops them.
Tests that stop and restart a server (outages) still start an embedded one of their own.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from vpp.embedded.postgres import EmbeddedPostgres
from vpp.postgres import scratch
from vpp.postgres.connect import libpq_url

TEST_DATABASE_ENV = "VPP_TEST_DATABASE_URL"


@dataclass
class ExternalPostgres:
    """A server the suite does not own: only databases it created are dropped."""

    url: str
    template: str = field(default_factory=lambda: f"vpp_template_{uuid.uuid4().hex[:8]}")

    def destroy(self) -> None:
        with psycopg.connect(libpq_url(self.url), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.template)))


Server = EmbeddedPostgres | ExternalPostgres


def _template(server: Server) -> str:
    return server.template if isinstance(server, ExternalPostgres) else scratch.TEMPLATE_DB


def prepare_template(server: Server) -> None:
    scratch.prepare_template(server.url, _template(server))


@contextmanager
def fresh_database(server: Server) -> Iterator[str]:
    """A new database cloned from the migrated template; dropped afterwards."""
    with scratch.scratch_database(server.url, _template(server)) as url:
        yield url


def start_postgres(base: Path) -> EmbeddedPostgres:
    return EmbeddedPostgres(base / "pg").start()


def suite_postgres(base: Path) -> Server:
    """The external server when VPP_TEST_DATABASE_URL is set, else a new embedded one under `base`."""
    external = os.environ.get(TEST_DATABASE_ENV)
    if external:
        return ExternalPostgres(external)
    return start_postgres(base)
