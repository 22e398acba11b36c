"""Delivery guarantees: crash-safe rollup claims, bounded dead letters, flagged energy anomalies.

- `energy_claims`: the rollup moves the (device, slot) pairs it works on from `energy_dirty` into this
  table in a short transaction of its own, and deletes them in the transaction that writes the
  recomputed rows. A crash in between (ingest or PostgreSQL killed) leaves the claims here, and the
  next rollup, whoever runs it, recomputes them first. Before, the claims were deleted outright and
  only in-process code put them back, so a crash left the slot stale for good.
- `dead_letters.payload_bytes` / `payload_sha256`: a dead letter keeps only a bounded prefix of the
  payload (a 10 MB message from an unregistered site must not cost 10 MB of table), plus its size
  and hash so that an operator can still tell payloads apart and match them with a gateway's log.
- `device_energy_30min.anomalies`: intervals whose counter delta was physically impossible (a
  regression, or more energy than the device's rating allows) and were therefore not counted.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE energy_claims (
            device_pk   int NOT NULL,
            slot_start  timestamptz NOT NULL,
            claimed_at  timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (device_pk, slot_start)
        )
        """
    )
    op.execute("ALTER TABLE dead_letters ADD COLUMN payload_bytes int")
    op.execute("ALTER TABLE dead_letters ADD COLUMN payload_sha256 bytea")
    op.execute("ALTER TABLE device_energy_30min ADD COLUMN anomalies int NOT NULL DEFAULT 0")


def downgrade() -> None:
    op.execute("ALTER TABLE device_energy_30min DROP COLUMN IF EXISTS anomalies")
    op.execute("ALTER TABLE dead_letters DROP COLUMN IF EXISTS payload_sha256")
    op.execute("ALTER TABLE dead_letters DROP COLUMN IF EXISTS payload_bytes")
    op.execute("DROP TABLE IF EXISTS energy_claims")
