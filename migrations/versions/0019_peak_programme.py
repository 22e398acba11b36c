"""Sites enrolled in the day's peak programme.

An enrolled battery site gets each 30-minute slot's import limit from the stochastic peak-cut programme
(`services/dr_scheduler/peak_programme.py`): its own demand control, the whole day, not a DR call. Off by
default: a site's operator asks for it (`vpp dr peak-programme SITE`).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04
"""

from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE sites ADD COLUMN peak_programme boolean NOT NULL DEFAULT false")


def downgrade() -> None:
    op.execute("ALTER TABLE sites DROP COLUMN IF EXISTS peak_programme")
