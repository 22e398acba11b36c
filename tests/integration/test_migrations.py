"""Migrations on an empty database, as a database owner that is not a superuser, the readings table's
indexes, the native-partition path, and cloning the template while someone is connected to it."""

from __future__ import annotations

import importlib.util
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import create_engine, text

from tests.integration.ingest_fixtures import register_depot, scalar
from tests.support.servers import Server
from vpp.postgres.connect import libpq_url, sqlalchemy_url
from vpp.postgres.migrate import downgrade, upgrade
from vpp.postgres.scratch import clone_template, database_url

pytestmark = pytest.mark.integration


def test_upgrade_head_and_downgrade_base_on_an_empty_database(pg_server: Server) -> None:
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
        # Only with VPP_TEST_DATABASE_URL on a TimescaleDB server; the embedded one has no TimescaleDB.
        pytest.skip("this server has TimescaleDB: the native-partition path is not the one in use")
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


@pytest.fixture
def owner_url(pg_server: Server) -> Iterator[str]:
    """An empty database owned by a new role with no superuser, CREATEDB or CREATEROLE: what a managed
    PostgreSQL service hands out. (On an external server the suite's role needs CREATEROLE for this.)"""
    role = f"vpp_owner_{uuid.uuid4().hex[:8]}"
    password = secrets.token_hex(16)
    with psycopg.connect(libpq_url(pg_server.url), autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(password)
            )
        )
        # PostgreSQL 16 lets a non-superuser give a database only to a role it may SET ROLE to.
        conn.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(sql.Identifier(role)))
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(role), sql.Identifier(role)))
    server = database_url(pg_server.url, role)
    parts = server.split("://", 1)[1].split("@", 1)[1]
    try:
        yield f"postgresql://{role}:{password}@{parts}"
    finally:
        with psycopg.connect(libpq_url(pg_server.url), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(role)))
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def test_a_database_owner_without_superuser_migrates_up_down_and_up(owner_url: str) -> None:
    with psycopg.connect(owner_url) as conn:
        assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone() == (False,)
        # What 0001 used to read to detect TimescaleDB, and a managed database's owner may not.
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT current_setting('shared_preload_libraries')")
    upgrade(owner_url)
    assert scalar(owner_url, "SELECT version_num FROM alembic_version") is not None
    assert scalar(
        owner_url, "SELECT count(*) FROM pg_tables WHERE tablename = 'readings' AND tableowner = current_user"
    )
    register_depot(owner_url)  # the schema works for its owner, readings included
    downgrade(owner_url, "base")
    assert (
        scalar(
            owner_url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
        )
        == 0
    )
    upgrade(owner_url)
    assert scalar(owner_url, "SELECT count(*) FROM sites") == 0


def foundation_migration() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "migrations" / "versions" / "0001_foundation.py"
    spec = importlib.util.spec_from_file_location("foundation_0001", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_extension_detection_as_owner_uses_the_catalogs_and_survives_a_refusal(owner_url: str) -> None:
    # How 0001 decides on TimescaleDB, with the extensions this server has: plpgsql is installed,
    # pgvector is packaged but untrusted (the owner may not create it: the refusal a server without
    # TimescaleDB preloaded gives), and an unknown name is not packaged at all.
    usable = foundation_migration().extension_usable
    engine = create_engine(sqlalchemy_url(owner_url))
    try:
        with engine.connect() as conn, conn.begin():
            assert usable(conn, "plpgsql") is True
            packaged = conn.execute(text("SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'")).scalar()
            if packaged:
                assert usable(conn, "vector") is False
            assert usable(conn, "no_such_extension") is False
            # The refusal was rolled back to its savepoint: the migration's transaction goes on.
            assert conn.execute(text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()


def test_readings_have_only_the_primary_key_index_on_either_path(db_url: str) -> None:
    # TimescaleDB's default (ts DESC) index served no query and cost COPY a quarter of its rate (0011).
    hypertable = scalar(db_url, "SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'")
    if hypertable:
        assert (
            scalar(
                db_url, "SELECT count(*) FROM timescaledb_information.hypertables WHERE hypertable_name = 'readings'"
            )
            == 1
        )
    else:
        assert scalar(db_url, "SELECT relkind FROM pg_class WHERE relname = 'readings'") == "p"
    indexes = scalar(
        db_url, "SELECT array_agg(indexdef ORDER BY indexname) FROM pg_indexes WHERE tablename = 'readings'"
    )
    assert indexes == ["CREATE UNIQUE INDEX readings_pkey ON ONLY public.readings USING btree (device_pk, ts)"] or (
        hypertable and indexes == ["CREATE UNIQUE INDEX readings_pkey ON public.readings USING btree (device_pk, ts)"]
    )


def test_0011_drops_an_index_on_ts_alone_and_downgrade_keeps_native_partitions_as_they_were(db_url: str) -> None:
    hypertable = scalar(db_url, "SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'")
    downgrade(db_url, "0007")
    # Downgrade restores TimescaleDB's default index on a hypertable only; native partitions never had it.
    assert scalar(db_url, "SELECT count(*) FROM pg_indexes WHERE indexname = 'readings_ts_idx'") == (
        1 if hypertable else 0
    )
    with psycopg.connect(db_url) as conn:
        conn.execute("CREATE INDEX IF NOT EXISTS readings_ts_idx ON readings (ts DESC)")
        conn.commit()
    upgrade(db_url, "0011")
    remaining = scalar(db_url, "SELECT count(*) FROM pg_indexes WHERE indexname = 'readings_ts_idx'")
    # On a hypertable 0011 drops it; a native table's index is somebody else's and stays.
    assert remaining == (0 if hypertable else 1)


def test_cloning_the_template_waits_out_a_session_connected_to_it(pg_server: Server, db_url: str) -> None:
    # TimescaleDB's job scheduler connects to the template now and then; CREATE DATABASE ... TEMPLATE
    # then fails with ObjectInUse unless the clone retries. A plain session stands in for the worker.
    template = db_url.rsplit("/", 1)[1]
    name = f"t_clone_{uuid.uuid4().hex[:8]}"
    holder = psycopg.connect(db_url, autocommit=True)
    with psycopg.connect(libpq_url(pg_server.url), autocommit=True) as conn:
        try:
            with pytest.raises(psycopg.errors.ObjectInUse):
                clone_template(conn, name, template, attempts=1)
            released = threading.Timer(0.3, holder.close)
            released.start()
            started = time.monotonic()
            clone_template(conn, name, template)
            released.join()
            assert time.monotonic() - started < 10
            assert scalar(database_url(pg_server.url, name), "SELECT count(*) FROM sites") == 0
        finally:
            holder.close()
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
