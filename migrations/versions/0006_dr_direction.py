"""DR events that ask for more consumption: the event's direction and each site's import floor per slot.

A "reduce" event (X kW less, the only kind before) gives each called site an import limit; an
"increase" event (X kW more: absorb a PV surplus, negative prices) gives each an import floor per event
slot, its forecast import plus its share. Verified rows keep one column for both: `reduction_kwh` is the
delivery in the direction asked, so settlement reads it unchanged; savings count only "reduce" events.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

SCHEMA = """
ALTER TABLE dr_events ADD COLUMN direction text NOT NULL DEFAULT 'reduce'
    CHECK (direction IN ('reduce', 'increase'));
-- One value per event slot (kW), for "increase" events; NULL for "reduce" events.
ALTER TABLE dr_event_sites ADD COLUMN import_floor_kw double precision[]
    CHECK (0 <= ALL (import_floor_kw));
COMMENT ON COLUMN dr_verified_reductions.reduction_kwh IS
    'Delivered kWh in the direction the event asked: baseline - actual (reduce) or actual - baseline (increase)';
"""


def upgrade() -> None:
    op.execute(SCHEMA)


def downgrade() -> None:
    op.execute("COMMENT ON COLUMN dr_verified_reductions.reduction_kwh IS NULL")
    op.execute("ALTER TABLE dr_event_sites DROP COLUMN IF EXISTS import_floor_kw")
    op.execute("ALTER TABLE dr_events DROP COLUMN IF EXISTS direction")
