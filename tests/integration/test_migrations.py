"""Migrations on an empty database, and the native-partition path of the readings table."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest

from tests.integration.ingest_fixtures import register_depot, scalar
from vpp.embedded.postgres import EmbeddedPostgres
from vpp.postgres.migrate import downgrade, upgrade
from vpp.postgres.scratch import database_url

pytestmark = pytest.mark.integration


def test_upgrade_head_and_downgrade_base_on_an_empty_database(pg_server: EmbeddedPostgres) -> None:
    with psycopg.connect(pg_server.url, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS migrate_roundtrip WITH (FORCE)")
        conn.execute("CREATE DATABASE migrate_roundtrip")
    url = database_url(pg_server.url, "migrate_roundtrip")
    try:
        upgrade(url)
        assert scalar(url, "SELECT to_regclass('readings') IS NOT NULL") is True
        downgrade(url, "base")
        tables = scalar(
            url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
        )
        assert tables == 0
        upgrade(url)  # and back up again: downgrade left nothing behind that blocks it
        assert scalar(url, "SELECT count(*) FROM sites") == 0
    finally:
        with psycopg.connect(pg_server.url, autocommit=True) as conn:
            conn.execute("DROP DATABASE IF EXISTS migrate_roundtrip WITH (FORCE)")


def test_native_partitions_catch_out_of_range_rows_and_move_them_later(db_url: str) -> None:
    if scalar(db_url, "SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'"):
        pytest.fail("this server has TimescaleDB: the native-partition path is not the one under test")
    register_depot(db_url)
    old = datetime(2019, 5, 17, 3, 0, tzinfo=UTC)  # before any pre-created monthly partition
    with psycopg.connect(db_url) as conn:
        device = conn.execute("SELECT id FROM devices WHERE device_id = 'meter-1'").fetchone()
        assert device is not None
        conn.execute("INSERT INTO readings (device_pk, ts, power_kw) VALUES (%s, %s, 1.5)", (device[0], old))
        conn.commit()
        assert conn.execute("SELECT count(*) FROM readings_default").fetchone() == (1,)
        made = conn.execute("SELECT vpp_ensure_reading_partitions('2019-05-01', '2019-05-01')").fetchone()
        conn.commit()
        assert made == (1,)
        assert conn.execute("SELECT count(*) FROM readings_default").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM readings_201905").fetchone() == (1,)
        assert conn.execute("SELECT power_kw FROM readings WHERE ts = %s", (old,)).fetchone() == (1.5,)
        dropped = conn.execute("SELECT vpp_drop_reading_partitions_before('2019-07-01')").fetchone()
        conn.commit()
        assert dropped == (1,)  # retention: whole months older than the cutoff go
        assert conn.execute("SELECT count(*) FROM readings WHERE ts = %s", (old,)).fetchone() == (0,)
