"""DR: regional events, their per-site allocation and plan, the audit trail, acks, alarms, verification.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

SCHEMA = """
CREATE TABLE dr_events (
    id                      bigserial PRIMARY KEY,
    event_id                text NOT NULL UNIQUE,
    kind                    text NOT NULL CHECK (kind IN ('peak_cut', 'peak_shift')),
    status                  text NOT NULL CHECK (status IN
                                ('planned', 'dispatched', 'acknowledged', 'active', 'completed', 'cancelled')),
    region_id               text,
    start_at                timestamptz NOT NULL,
    end_at                  timestamptz NOT NULL CHECK (end_at > start_at),
    requested_kw            double precision NOT NULL CHECK (requested_kw >= 0),
    allocated_kw            double precision NOT NULL DEFAULT 0,
    shortfall_kw            double precision NOT NULL DEFAULT 0,
    incentive_jpy_per_kwh   double precision NOT NULL DEFAULT 0 CHECK (incentive_jpy_per_kwh >= 0),
    revision                int NOT NULL DEFAULT 1,
    source                  text NOT NULL DEFAULT 'operator',  -- operator, openadr, external, live_control
    site_ids                text[],  -- the sites asked (NULL: every site, or the region's)
    -- Work the API asks of the scheduler process, which alone plans and publishes signals.
    pending_action          text CHECK (pending_action IN ('plan', 'replan', 'cancel')),
    pending_actor           text,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dr_events_window ON dr_events (start_at, end_at);
CREATE INDEX dr_events_status ON dr_events (status);
CREATE INDEX dr_events_pending ON dr_events (id) WHERE pending_action IS NOT NULL;

-- One row per called site: its share, the import limit it was sent and the plan behind it.
CREATE TABLE dr_event_sites (
    event_pk        bigint NOT NULL REFERENCES dr_events (id) ON DELETE CASCADE,
    site_pk         int NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    allocated_kw    double precision NOT NULL CHECK (allocated_kw >= 0),
    import_limit_kw double precision CHECK (import_limit_kw >= 0),
    plan            jsonb,
    dispatched_revision int,
    dispatched_at   timestamptz,
    acked_revision  int,
    acked_at        timestamptz,
    ack_status      text CHECK (ack_status IN ('accepted', 'rejected')),
    PRIMARY KEY (event_pk, site_pk)
);
CREATE INDEX dr_event_sites_site ON dr_event_sites (site_pk);

-- Every state change and operator action, append-only.
CREATE TABLE dr_event_audit (
    id          bigserial PRIMARY KEY,
    event_pk    bigint NOT NULL REFERENCES dr_events (id) ON DELETE CASCADE,
    at          timestamptz NOT NULL,
    actor       text NOT NULL,
    action      text NOT NULL,
    from_status text,
    to_status   text,
    detail      jsonb
);
CREATE INDEX dr_event_audit_event ON dr_event_audit (event_pk, at);

-- Raw acknowledgements as received (also the unparseable ones, for diagnosis).
CREATE TABLE dr_acks (
    id           bigserial PRIMARY KEY,
    received_at  timestamptz NOT NULL,
    site_pk      int REFERENCES sites (id) ON DELETE CASCADE,
    event_id     text,
    revision     int,
    accepted     boolean,
    payload      bytea NOT NULL,
    error        text
);
CREATE INDEX dr_acks_event ON dr_acks (event_id, received_at);

-- Live demand control: a predicted end-of-slot demand above the target.
CREATE TABLE site_alarms (
    id              bigserial PRIMARY KEY,
    site_pk         int NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    slot_start      timestamptz NOT NULL,
    raised_at       timestamptz NOT NULL,
    kind            text NOT NULL,
    level           text NOT NULL CHECK (level IN ('warn', 'over')),
    predicted_kw    double precision NOT NULL,
    target_kw       double precision NOT NULL,
    detail          jsonb,
    UNIQUE (site_pk, slot_start, kind)
);

-- Verification per event, site and slot: baseline, actual, reduction (kWh).
CREATE TABLE dr_verified_reductions (
    event_pk        bigint NOT NULL REFERENCES dr_events (id) ON DELETE CASCADE,
    site_pk         int NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    slot_start      timestamptz NOT NULL,
    baseline_kwh    double precision NOT NULL,
    actual_kwh      double precision,
    reduction_kwh   double precision,
    method          text NOT NULL,
    verified_at     timestamptz NOT NULL,
    PRIMARY KEY (event_pk, site_pk, slot_start)
);
CREATE INDEX dr_verified_reductions_slot ON dr_verified_reductions (slot_start);
"""


# Verified reductions count as savings in the sufficiency reports, so they must invalidate the API's
# cached reports of every region holding the site (vpp_bump_region_versions comes from 0002).
REDUCTION_TRIGGERS = """
CREATE FUNCTION vpp_dr_reductions_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM vpp_bump_region_versions(ARRAY(SELECT DISTINCT site_pk FROM changed));
    RETURN NULL;
END $$;
CREATE TRIGGER dr_verified_reductions_bump_ins AFTER INSERT ON dr_verified_reductions
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION vpp_dr_reductions_bump();
CREATE TRIGGER dr_verified_reductions_bump_upd AFTER UPDATE ON dr_verified_reductions
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION vpp_dr_reductions_bump();
CREATE TRIGGER dr_verified_reductions_bump_del AFTER DELETE ON dr_verified_reductions
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION vpp_dr_reductions_bump();
"""


def upgrade() -> None:
    op.execute(SCHEMA)
    op.execute(REDUCTION_TRIGGERS)


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS vpp_dr_reductions_bump() CASCADE")
    for table in ("dr_verified_reductions", "site_alarms", "dr_acks", "dr_event_audit", "dr_event_sites", "dr_events"):
        op.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
