"""Readings on TimescaleDB keep only the primary key: drop the hypertable's default `ts DESC` index.

`create_hypertable` adds an index on (ts DESC) unless told not to. No query uses it: every read of
`readings` goes through a device (`device_pk = ...`, joins from `devices`), which the primary key
(device_pk, ts) serves, and retention drops whole chunks by their time range without an index. It
cost COPY a quarter of its rate (issue 16: 126-140k readings/s against 192k without it). 0001 no
longer creates it; this drops it on databases migrated before. Native partitions never had it.

Revision ID: 0011
Revises: 0007
Create Date: 2026-12-04
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# Only an index on `ts` alone, on the hypertable itself (TimescaleDB drops the chunks' copies with it).
DROP_TS_ONLY_INDEXES = """
DO $$
DECLARE
    idx record;
BEGIN
    -- Two statements: PL/pgSQL plans each when first reached, and the view exists only with the extension.
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
        RETURN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM timescaledb_information.hypertables
                   WHERE hypertable_schema = current_schema() AND hypertable_name = 'readings') THEN
        RETURN;
    END IF;
    FOR idx IN
        SELECT i.indexrelid::regclass AS name
        FROM pg_index i
        WHERE i.indrelid = 'readings'::regclass AND NOT i.indisprimary AND i.indnatts = 1
          AND i.indkey[0] = (SELECT attnum FROM pg_attribute
                             WHERE attrelid = 'readings'::regclass AND attname = 'ts')
    LOOP
        EXECUTE format('DROP INDEX %s', idx.name);
    END LOOP;
END $$;
"""

RESTORE_DEFAULT_INDEX = """
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
        RETURN;
    END IF;
    IF EXISTS (SELECT 1 FROM timescaledb_information.hypertables
               WHERE hypertable_schema = current_schema() AND hypertable_name = 'readings') THEN
        CREATE INDEX IF NOT EXISTS readings_ts_idx ON readings (ts DESC);
    END IF;
END $$;
"""


def upgrade() -> None:
    op.execute(DROP_TS_ONLY_INDEXES)


def downgrade() -> None:
    op.execute(RESTORE_DEFAULT_INDEX)
