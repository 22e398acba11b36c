"""Connection URLs and connections. One URL form everywhere: ``postgresql://user@host:port/db``.

A highly available database is named by a multi-host URL, as libpq spells it:
``postgresql://vpp@db1:5432,db2:5432/vpp?target_session_attrs=read-write``: a new connection tries
the hosts in turn and keeps the one that accepts writes, so after a failover reconnecting is all a
service does. psycopg and asyncpg read that form as it is; SQLAlchemy's URL parser does not, so for
it the hosts move into repeated ``host=`` query parameters (its documented multi-host form).
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit, urlunsplit

import psycopg

__all__ = ["asyncpg_url", "connect", "libpq_url", "sqlalchemy_url"]


def libpq_url(url: str) -> str:
    """Strip any SQLAlchemy driver suffix so psycopg and libpq accept the URL."""
    for prefix in ("postgresql+psycopg://", "postgresql+asyncpg://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    return url


def _hosts_as_query(url: str) -> str:
    """``postgresql://u@h1:p1,h2:p2/db?x`` → ``postgresql://u@/db?x&host=h1:p1&host=h2:p2``; one host: unchanged."""
    parts = urlsplit(url)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    if "," not in hosts:
        return url
    query = "&".join([*filter(None, [parts.query]), *(f"host={quote(h, safe=':[]')}" for h in hosts.split(","))])
    return urlunsplit(parts._replace(netloc=f"{userinfo}{at}", query=query))


def sqlalchemy_url(url: str) -> str:
    return "postgresql+psycopg://" + _hosts_as_query(libpq_url(url))[len("postgresql://") :]


def asyncpg_url(url: str) -> str:
    return "postgresql+asyncpg://" + _hosts_as_query(libpq_url(url))[len("postgresql://") :]


def connect(url: str, *, autocommit: bool = False, application_name: str = "vpp") -> psycopg.Connection:
    """Open a psycopg 3 connection with a short connect timeout so outages surface quickly."""
    return psycopg.connect(libpq_url(url), autocommit=autocommit, connect_timeout=5, application_name=application_name)
