"""Private PostgreSQL instances for the suite: real servers, nothing shared with the machine."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from vpp.embedded.postgres import EmbeddedPostgres
from vpp.postgres import scratch


def prepare_template(server: EmbeddedPostgres) -> None:
    scratch.prepare_template(server.url)


@contextmanager
def fresh_database(server: EmbeddedPostgres) -> Iterator[str]:
    """A new database cloned from the migrated template; dropped afterwards."""
    with scratch.scratch_database(server.url) as url:
        yield url


def start_postgres(base: Path) -> EmbeddedPostgres:
    return EmbeddedPostgres(base / "pg").start()
