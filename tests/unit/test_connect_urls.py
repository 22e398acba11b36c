"""Multi-host URLs reach each driver in the form it reads (vpp.postgres.connect)."""

from __future__ import annotations

from sqlalchemy.engine import make_url

from vpp.postgres.connect import asyncpg_url, libpq_url, sqlalchemy_url

HA_URL = "postgresql://vpp:s%40cret@db1:5432,db2:6432/vpp?target_session_attrs=read-write"


def test_sqlalchemy_gets_the_hosts_as_repeated_host_parameters() -> None:
    url = make_url(sqlalchemy_url(HA_URL))
    assert url.drivername == "postgresql+psycopg"
    assert url.host is None
    assert url.query["host"] == ("db1:5432", "db2:6432")
    assert url.query["target_session_attrs"] == "read-write"
    assert (url.username, url.password, url.database) == ("vpp", "s@cret", "vpp")


def test_asyncpg_through_sqlalchemy_gets_the_same_form() -> None:
    url = make_url(asyncpg_url(HA_URL))
    assert url.drivername == "postgresql+asyncpg"
    assert url.query["host"] == ("db1:5432", "db2:6432")


def test_libpq_keeps_its_own_multi_host_form_and_single_hosts_are_unchanged() -> None:
    assert libpq_url(HA_URL) == HA_URL
    assert sqlalchemy_url("postgresql://vpp@db:5432/vpp") == "postgresql+psycopg://vpp@db:5432/vpp"
