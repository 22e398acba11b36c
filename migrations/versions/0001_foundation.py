"""Foundation: sites, devices, raw readings, 30-minute energy, dead letters, site status.

Raw readings go in a TimescaleDB hypertable (compressed after a week, retained per setting) when the
extension is available, otherwise in a natively range-partitioned table with monthly partitions and a
default partition, so an out-of-range timestamp is stored rather than refused. The application's
queries are identical on both.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

import logging
import os

from alembic import op
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SCHEMA = """
CREATE TABLE regions (
    id          serial PRIMARY KEY,
    region_id   text NOT NULL UNIQUE CHECK (region_id ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
    name        text NOT NULL,
    name_ja     text
);

CREATE TABLE sites (
    id                  serial PRIMARY KEY,
    site_id             text NOT NULL UNIQUE CHECK (site_id ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
    name                text NOT NULL,
    latitude            double precision CHECK (latitude BETWEEN -90 AND 90),
    longitude           double precision CHECK (longitude BETWEEN -180 AND 180),
    pv_kw               double precision NOT NULL DEFAULT 0 CHECK (pv_kw >= 0),
    battery_kwh         double precision NOT NULL DEFAULT 0 CHECK (battery_kwh >= 0),
    battery_kw          double precision NOT NULL DEFAULT 0 CHECK (battery_kw >= 0),
    contract_demand_kw  double precision CHECK (contract_demand_kw > 0),
    demand_target_kw    double precision CHECK (demand_target_kw > 0),
    renewable_share     double precision NOT NULL DEFAULT 0 CHECK (renewable_share BETWEEN 0 AND 1),
    is_public           boolean NOT NULL DEFAULT false,
    created_at          timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE region_sites (
    region_pk  int NOT NULL REFERENCES regions (id) ON DELETE CASCADE,
    site_pk    int NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    PRIMARY KEY (region_pk, site_pk)
);

CREATE TABLE devices (
    id               serial PRIMARY KEY,
    site_pk          int NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    device_id        text NOT NULL CHECK (device_id ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'),
    kind             text NOT NULL CHECK (kind IN ('meter', 'pv', 'battery', 'ev_charger')),
    rated_power_kw   double precision CHECK (rated_power_kw > 0),
    last_reading_at  timestamptz,
    UNIQUE (site_pk, device_id)
);

-- Cumulative energy per device and 30-minute slot, recomputed from raw readings whenever a
-- reading lands in or next to the slot (late and out-of-order data included).
CREATE TABLE device_energy_30min (
    device_pk   int NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    slot_start  timestamptz NOT NULL,
    pos_kwh     double precision NOT NULL,
    neg_kwh     double precision NOT NULL,
    covered_s   double precision NOT NULL,
    PRIMARY KEY (device_pk, slot_start)
);

-- What reports, baselines and plans read: one row per site and slot, a column per flow.
CREATE TABLE site_energy_30min (
    site_pk                int NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    slot_start             timestamptz NOT NULL,
    import_kwh             double precision NOT NULL DEFAULT 0,
    export_kwh             double precision NOT NULL DEFAULT 0,
    pv_kwh                 double precision NOT NULL DEFAULT 0,
    battery_charge_kwh     double precision NOT NULL DEFAULT 0,
    battery_discharge_kwh  double precision NOT NULL DEFAULT 0,
    ev_kwh                 double precision NOT NULL DEFAULT 0,
    load_kwh               double precision NOT NULL DEFAULT 0,
    coverage               real NOT NULL DEFAULT 0 CHECK (coverage BETWEEN 0 AND 1),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site_pk, slot_start)
);
CREATE INDEX site_energy_30min_slot ON site_energy_30min (slot_start);

-- Work queue for the 30-minute rollup, written in the same transaction as the readings.
CREATE TABLE energy_dirty (
    device_pk   int NOT NULL,
    slot_start  timestamptz NOT NULL,
    PRIMARY KEY (device_pk, slot_start)
);

CREATE TABLE dead_letters (
    id           bigserial PRIMARY KEY,
    received_at  timestamptz NOT NULL DEFAULT now(),
    topic        text NOT NULL,
    payload      bytea NOT NULL,
    reason       text NOT NULL,
    detail       text NOT NULL,
    client_id    text
);
CREATE INDEX dead_letters_received ON dead_letters (received_at);
CREATE INDEX dead_letters_reason ON dead_letters (reason, received_at);

CREATE TABLE site_status (
    site_pk     int PRIMARY KEY REFERENCES sites (id) ON DELETE CASCADE,
    online      boolean NOT NULL,
    detail      jsonb,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
"""

READINGS_COLUMNS = """
    device_pk       int NOT NULL,
    ts              timestamptz NOT NULL,
    power_kw        double precision,
    energy_pos_kwh  double precision,
    energy_neg_kwh  double precision,
    soc_pct         real,
    vehicles        smallint,
    PRIMARY KEY (device_pk, ts)
"""

# Monthly partitions ahead of time; the default partition keeps anything outside them, and the
# function moves such rows out when it later creates their month.
PARTITION_FUNCTION = """
CREATE FUNCTION vpp_ensure_reading_partitions(first_month date, last_month date) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    m date := date_trunc('month', first_month);
    made int := 0;
    part text;
BEGIN
    WHILE m <= last_month LOOP
        part := format('readings_%s', to_char(m, 'YYYYMM'));
        IF to_regclass(part) IS NULL THEN
            CREATE TEMP TABLE IF NOT EXISTS vpp_moved (LIKE readings) ON COMMIT DROP;
            WITH moved AS (
                DELETE FROM readings_default
                WHERE ts >= m::timestamptz AND ts < (m + interval '1 month')::timestamptz
                RETURNING *)
            INSERT INTO vpp_moved SELECT * FROM moved;
            EXECUTE format('CREATE TABLE %I PARTITION OF readings FOR VALUES FROM (%L) TO (%L)',
                           part, m::timestamptz, (m + interval '1 month')::timestamptz);
            INSERT INTO readings SELECT * FROM vpp_moved;
            TRUNCATE vpp_moved;
            made := made + 1;
        END IF;
        m := m + interval '1 month';
    END LOOP;
    RETURN made;
END $$;

CREATE FUNCTION vpp_drop_reading_partitions_before(cutoff timestamptz) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    dropped int := 0;
BEGIN
    FOR r IN
        SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'readings'::regclass AND c.relname ~ '^readings_[0-9]{6}$'
    LOOP
        IF to_date(right(r.relname, 6), 'YYYYMM') + interval '1 month' <= cutoff THEN
            EXECUTE format('DROP TABLE %I', r.relname);
            dropped := dropped + 1;
        END IF;
    END LOOP;
    RETURN dropped;
END $$;
"""


def extension_usable(bind: Connection, name: str) -> bool:
    """Extension `name` is installed in this database, or can be: found through the catalogs, then created.

    Managed PostgreSQL hands out a database owner that is not a superuser; such a role may not read
    `shared_preload_libraries` (that needs pg_read_all_settings), so this does not look at it. A
    trusted extension (TimescaleDB is one) may be created by the database owner; whether the server
    preloads its library shows only by trying, inside a savepoint so that a refusal leaves the
    migration's transaction usable.
    """
    installed, packaged = bind.execute(
        text(
            "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = :name),"
            " EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = :name)"
        ),
        {"name": name},
    ).one()
    if installed:
        return True
    if not packaged:
        return False
    try:
        with bind.begin_nested():
            bind.execute(text(f'CREATE EXTENSION IF NOT EXISTS "{name}"'))
    except DBAPIError as exc:
        # Packaged but not preloaded, or not ours to create: native partitions work everywhere.
        logging.getLogger("alembic.runtime.migration").warning(
            "extension %s is packaged but cannot be created (%s); using native partitions",
            name,
            str(exc.orig).strip().splitlines()[0],
        )
        return False
    return True


def _timescale_available() -> bool:
    if os.environ.get("VPP_DISABLE_TIMESCALE") == "1":
        return False
    return extension_usable(op.get_bind(), "timescaledb")


def upgrade() -> None:
    op.execute(SCHEMA)
    if _timescale_available():
        compress_days = int(os.environ.get("VPP_TIMESCALE_COMPRESS_AFTER_DAYS", "7"))
        retention_days = int(os.environ.get("VPP_READINGS_RETENTION_DAYS", "800"))
        op.execute(f"CREATE TABLE readings ({READINGS_COLUMNS})")
        # No default `ts DESC` index: every query reaches readings by device (the primary key), and the
        # extra index cost COPY a quarter of its rate (issue 16). Migration 0011 drops it where it exists.
        op.execute(
            "SELECT create_hypertable('readings', 'ts', chunk_time_interval => interval '1 day',"
            " create_default_indexes => false)"
        )
        op.execute(
            "ALTER TABLE readings SET (timescaledb.compress, timescaledb.compress_segmentby = 'device_pk',"
            " timescaledb.compress_orderby = 'ts')"
        )
        op.execute(f"SELECT add_compression_policy('readings', interval '{compress_days} days')")
        op.execute(f"SELECT add_retention_policy('readings', interval '{retention_days} days')")
    else:
        op.execute(f"CREATE TABLE readings ({READINGS_COLUMNS}) PARTITION BY RANGE (ts)")
        op.execute("CREATE TABLE readings_default PARTITION OF readings DEFAULT")
        op.execute(PARTITION_FUNCTION)
        op.execute(
            "SELECT vpp_ensure_reading_partitions((now() - interval '13 months')::date,"
            " (now() + interval '3 months')::date)"
        )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS readings CASCADE")
    op.execute("DROP FUNCTION IF EXISTS vpp_ensure_reading_partitions(date, date)")
    op.execute("DROP FUNCTION IF EXISTS vpp_drop_reading_partitions_before(timestamptz)")
    for table in (
        "site_status",
        "dead_letters",
        "energy_dirty",
        "site_energy_30min",
        "device_energy_30min",
        "devices",
        "region_sites",
        "sites",
        "regions",
    ):
        op.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
