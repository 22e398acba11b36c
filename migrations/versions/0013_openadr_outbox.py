"""OpenADR: a transactional outbox for subscriber notifications; reports outlive their event.

Every insert, update and delete of an OpenADR object — by the REST routes, the DR scheduler, the CLI
or a cascade — writes a row into `openadr_changes` from a trigger, so the notification is committed
in the same transaction as the change or not at all. The API's delivery loop fans each change out
to the subscriptions entitled to it (`openadr_deliveries`, one row per callback) and POSTs them at
least once with back-off; rows are claimed with FOR UPDATE SKIP LOCKED so several API processes
share the work.

Reports are settlement evidence: deleting their event no longer deletes them. `event_id` keeps
naming the event the report was made for (no foreign key any more: the VTN checks the event
exists when the report is created), so `GET /reports?eventID=` still finds them; a program cannot
be deleted while it still has events or reports.

Revision ID: 0013
Revises: 0007
Create Date: 2026-12-04
"""

from alembic import op

revision = "0013"
down_revision = "0011"
branch_labels = None
depends_on = None

OBJECT_TABLES = {
    "openadr_programs": "PROGRAM",
    "openadr_events": "EVENT",
    "openadr_reports": "REPORT",
    "openadr_subscriptions": "SUBSCRIPTION",
    "openadr_vens": "VEN",
    "openadr_resources": "RESOURCE",
}

SCHEMA = """
CREATE TABLE openadr_changes (
    id           bigserial PRIMARY KEY,
    object_type  text NOT NULL,
    object_id    text NOT NULL,
    operation    text NOT NULL CHECK (operation IN ('CREATE', 'UPDATE', 'DELETE')),
    snapshot     jsonb NOT NULL,  -- the row as written (as it was, for a delete)
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE TABLE openadr_deliveries (
    id               bigserial PRIMARY KEY,
    change_id        bigint NOT NULL,
    subscription_id  text NOT NULL,
    callback_url     text NOT NULL,
    bearer_token     text,
    message          jsonb NOT NULL,
    attempts         int NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    change_at        timestamptz NOT NULL,  -- when the change was committed: the age metrics count from it
    failed_at        timestamptz,  -- given up: a dead letter, with its reason
    last_error       text
);
CREATE INDEX openadr_deliveries_due ON openadr_deliveries (next_attempt_at) WHERE failed_at IS NULL;

CREATE FUNCTION openadr_record_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO openadr_changes (object_type, object_id, operation, snapshot)
        VALUES (TG_ARGV[0], OLD.id, 'DELETE', to_jsonb(OLD));
        RETURN OLD;
    END IF;
    INSERT INTO openadr_changes (object_type, object_id, operation, snapshot)
    VALUES (TG_ARGV[0], NEW.id, CASE TG_OP WHEN 'INSERT' THEN 'CREATE' ELSE 'UPDATE' END, to_jsonb(NEW));
    RETURN NEW;
END $$;

-- Reports outlive their event; a program keeps its events and reports or is not deleted.
ALTER TABLE openadr_reports DROP CONSTRAINT openadr_reports_event_id_fkey;
ALTER TABLE openadr_reports DROP CONSTRAINT openadr_reports_program_id_fkey;
ALTER TABLE openadr_reports ADD CONSTRAINT openadr_reports_program_id_fkey
    FOREIGN KEY (program_id) REFERENCES openadr_programs (id) ON DELETE RESTRICT;
ALTER TABLE openadr_events DROP CONSTRAINT openadr_events_program_id_fkey;
ALTER TABLE openadr_events ADD CONSTRAINT openadr_events_program_id_fkey
    FOREIGN KEY (program_id) REFERENCES openadr_programs (id) ON DELETE RESTRICT;

-- Retention of ended events and the default listing (current and upcoming first) filter on ends_at.
CREATE INDEX openadr_events_ends_at ON openadr_events (ends_at);
"""

DOWN = """
DROP INDEX IF EXISTS openadr_events_ends_at;
ALTER TABLE openadr_events DROP CONSTRAINT openadr_events_program_id_fkey;
ALTER TABLE openadr_events ADD CONSTRAINT openadr_events_program_id_fkey
    FOREIGN KEY (program_id) REFERENCES openadr_programs (id) ON DELETE CASCADE;
ALTER TABLE openadr_reports DROP CONSTRAINT openadr_reports_program_id_fkey;
ALTER TABLE openadr_reports ADD CONSTRAINT openadr_reports_program_id_fkey
    FOREIGN KEY (program_id) REFERENCES openadr_programs (id) ON DELETE CASCADE;
DELETE FROM openadr_reports r WHERE NOT EXISTS (SELECT 1 FROM openadr_events e WHERE e.id = r.event_id);
ALTER TABLE openadr_reports ADD CONSTRAINT openadr_reports_event_id_fkey
    FOREIGN KEY (event_id) REFERENCES openadr_events (id) ON DELETE CASCADE;
"""


def upgrade() -> None:
    op.execute(SCHEMA)
    for table, object_type in OBJECT_TABLES.items():
        # WHEN on UPDATE: a re-plan that changes nothing is no news to a subscriber.
        op.execute(
            f"""CREATE TRIGGER {table}_outbox_write AFTER INSERT OR DELETE ON {table}
                FOR EACH ROW EXECUTE FUNCTION openadr_record_change('{object_type}')"""
        )
        op.execute(
            f"""CREATE TRIGGER {table}_outbox_update AFTER UPDATE ON {table}
                FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*)
                EXECUTE FUNCTION openadr_record_change('{object_type}')"""
        )


def downgrade() -> None:
    for table in OBJECT_TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_outbox_write ON {table}")
        op.execute(f"DROP TRIGGER IF EXISTS {table}_outbox_update ON {table}")
    op.execute("DROP FUNCTION IF EXISTS openadr_record_change()")
    op.execute("DROP TABLE IF EXISTS openadr_deliveries, openadr_changes")
    op.execute(DOWN)
