"""When each dirty (device, slot) pair was first marked, so the rollup can let an open slot settle.

A site reports every few seconds, and each report marks its slot dirty again. Recomputing the slot
after every report rewrote its 30-minute rows several times a minute per device: at 20,000 sites
that was more row versions than the readings themselves. The rollup now takes a pair once it has
been dirty for a short delay (`ingest_rollup_delay_s`), by which time several reports have landed
in it; marking an already-dirty pair keeps its first time, so a busy slot cannot be put off forever.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE energy_dirty ADD COLUMN dirty_since timestamptz NOT NULL DEFAULT now()")


def downgrade() -> None:
    op.execute("ALTER TABLE energy_dirty DROP COLUMN IF EXISTS dirty_since")
