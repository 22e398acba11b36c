"""Throw-away databases cloned from a migrated template (tests and benchmarks start from clean state)."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from vpp.postgres.connect import libpq_url
from vpp.postgres.migrate import upgrade

__all__ = ["clone_template", "database_url", "prepare_template", "scratch_database"]

TEMPLATE_DB = "vpp_template"
CLONE_ATTEMPTS = 20


def database_url(server_url: str, name: str) -> str:
    """The same server, user and options (e.g. ``?sslmode=require`` of a managed server), database `name`."""
    return urlunsplit(urlsplit(libpq_url(server_url))._replace(path=f"/{name}"))


def prepare_template(server_url: str, name: str = TEMPLATE_DB) -> str:
    """(Re)create `name` and migrate it to head; returns its URL."""
    with psycopg.connect(libpq_url(server_url), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = database_url(server_url, name)
    upgrade(url)
    return url


def clone_template(conn: psycopg.Connection, name: str, template: str, attempts: int = CLONE_ATTEMPTS) -> None:
    """CREATE DATABASE `name` TEMPLATE `template`, waiting out whoever is connected to the template.

    PostgreSQL copies a database only while nobody else is connected to it. On TimescaleDB the job
    scheduler's background worker connects to every database that has the extension, the template
    included, and makes the copy fail with ObjectInUse now and then. Such sessions are asked to leave
    (a superuser or the same role may; anyone else's is left alone) and the copy is retried.
    """
    statement = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template))
    for attempt in range(1, attempts + 1):
        try:
            conn.execute(statement)
            return
        except psycopg.errors.ObjectInUse:
            if attempt == attempts:
                raise
        others = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (template,)
        ).fetchall()
        for (pid,) in others:
            with contextlib.suppress(psycopg.errors.InsufficientPrivilege):  # not ours to end: wait instead
                conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
        time.sleep(min(0.05 * attempt, 0.5))


@contextmanager
def scratch_database(server_url: str, template: str = TEMPLATE_DB, prefix: str = "t") -> Iterator[str]:
    """A new database cloned from the template; dropped on exit."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(libpq_url(server_url), autocommit=True) as conn:
        clone_template(conn, name, template)
    try:
        yield database_url(server_url, name)
    finally:
        with psycopg.connect(libpq_url(server_url), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
