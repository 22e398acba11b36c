"""Connection URLs and connections. One URL form everywhere: ``postgresql://user@host:port/db``."""

from __future__ import annotations

import psycopg

__all__ = ["asyncpg_url", "connect", "libpq_url", "sqlalchemy_url"]


def libpq_url(url: str) -> str:
    """Strip any SQLAlchemy driver suffix so psycopg and libpq accept the URL."""
    for prefix in ("postgresql+psycopg://", "postgresql+asyncpg://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    return url


def sqlalchemy_url(url: str) -> str:
    return "postgresql+psycopg://" + libpq_url(url)[len("postgresql://") :]


def asyncpg_url(url: str) -> str:
    return "postgresql+asyncpg://" + libpq_url(url)[len("postgresql://") :]


def connect(url: str, *, autocommit: bool = False, application_name: str = "vpp") -> psycopg.Connection:
    """Open a psycopg 3 connection with a short connect timeout so outages surface quickly."""
    return psycopg.connect(libpq_url(url), autocommit=autocommit, connect_timeout=5, application_name=application_name)
