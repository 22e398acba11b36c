"""What the day's peak programme is doing at each enrolled site, for the operators' dashboard.

The scheduler writes one row per enrolled site each slot it looks at the site: holding a limit, solving the
day's programme, or left out (with the reason it otherwise only logs: no battery, no forecast, no recent state
of charge...). ``limits_kw`` holds, per 30-minute slot of ``day``, the import limit
in force when the programme looked (NULL before the first), so the page can draw the day's limits.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-05
"""

from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
CREATE TABLE peak_programme_status (
    site_pk     int PRIMARY KEY REFERENCES sites (id) ON DELETE CASCADE,
    day         date NOT NULL,  -- JST
    checked_at  timestamptz NOT NULL,
    state       text NOT NULL CHECK (state IN ('holding', 'solving', 'left_out')),
    why         text,  -- the short reason, as in vpp_dr_peak_programme_left_out_total{reason}
    reason      text,  -- what the operator reads
    limits_kw   double precision[] NOT NULL DEFAULT '{}'
)
"""
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS peak_programme_status")
