"""What each site can really deliver in a DR event, whether its plan reaches its limit; declared-figure overlap.

Regional events used to be shared by nominal availability (battery rating, EV energy near the window), so
the sum allocated could exceed what the sites' own plans could deliver, and a plan that missed its limit was
still just "planned". Each event now keeps the deliverable total beside requested and allocated, and each
called site its deliverable reduction and whether its plan reaches the limit on the forecast.

Declared figures say whether they already include the region's metered sites (default: yes, as a city's
statistics do), so a sufficiency report shows them beside the metered figures instead of adding both.

Revision ID: 0010
Revises: 0007
Create Date: 2026-12-04
"""

from alembic import op

revision = "0010"
down_revision = "0008"
branch_labels = None
depends_on = None

SCHEMA = """
ALTER TABLE dr_events ADD COLUMN deliverable_kw double precision CHECK (deliverable_kw >= 0);
COMMENT ON COLUMN dr_events.deliverable_kw IS
    'Sum over the candidate sites of what each one''s own forecast plan can deliver in the window, kW (NULL: before 0010)';
ALTER TABLE dr_event_sites ADD COLUMN deliverable_kw double precision CHECK (deliverable_kw >= 0);
ALTER TABLE dr_event_sites ADD COLUMN limit_reachable boolean;
COMMENT ON COLUMN dr_event_sites.limit_reachable IS
    'The stored plan meets the site''s import limit (and its cap outside the window) on the forecast';
-- A city's statistics cover every facility in it, metered sites included: reports must not add the two.
ALTER TABLE declared_figures ADD COLUMN includes_metered_sites boolean NOT NULL DEFAULT true;
"""


def upgrade() -> None:
    op.execute(SCHEMA)


def downgrade() -> None:
    op.execute("ALTER TABLE declared_figures DROP COLUMN IF EXISTS includes_metered_sites")
    op.execute("ALTER TABLE dr_event_sites DROP COLUMN IF EXISTS limit_reachable")
    op.execute("ALTER TABLE dr_event_sites DROP COLUMN IF EXISTS deliverable_kw")
    op.execute("ALTER TABLE dr_events DROP COLUMN IF EXISTS deliverable_kw")
