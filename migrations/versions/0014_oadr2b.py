"""OpenADR 2.0b VTN: onboarded VENs, and what each was sent and answered per event.

A 2.0b VEN is onboarded like a 3.1 VEN (an operator creates it with its targets, ``site:<site_id>``)
plus the fingerprint of its client certificate, which is how the 2.0b VTN identifies it (the 2.0b
security model has no tokens). The 2.0b VTN serves the same OpenADR events the 3.1 VTN does
(`openadr_events`, written by the scheduler); `oadr2b_event_deliveries` keeps per VEN and event the
signal last sent and its modification number (2.0b counts modifications, and a cancellation must
still reach a VEN after the 3.1 event row is gone) and the VEN's opt-in or opt-out.

Revision ID: 0014
Revises: 0007
Create Date: 2026-12-04
"""

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

SCHEMA = """
CREATE TABLE oadr2b_vens (
    id               serial PRIMARY KEY,
    ven_id           text NOT NULL UNIQUE CHECK (ven_id ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$'),
    ven_name         text NOT NULL UNIQUE CHECK (length(ven_name) BETWEEN 1 AND 128),
    -- OpenADR's certificate fingerprint: the last 10 bytes of the SHA-256 of the DER certificate.
    fingerprint      text UNIQUE CHECK (fingerprint ~ '^([0-9A-F]{2}:){9}[0-9A-F]{2}$'),
    targets          text[] NOT NULL DEFAULT '{}',
    registration_id  text,
    registered_at    timestamptz,
    last_poll_at     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    revoked_at       timestamptz
);

CREATE TABLE oadr2b_event_deliveries (
    ven_pk                   int NOT NULL REFERENCES oadr2b_vens (id) ON DELETE CASCADE,
    event_id                 text NOT NULL,  -- openadr_events.id, used as the 2.0b eventID
    dr_event_pk              bigint REFERENCES dr_events (id) ON DELETE CASCADE,
    modification_number      int NOT NULL CHECK (modification_number >= 0),
    signal                   jsonb NOT NULL,  -- the signal last sent (vpp.domain.oadr2b.Signal2b)
    cancelled                boolean NOT NULL DEFAULT false,
    delivered_at             timestamptz NOT NULL,
    opt_type                 text CHECK (opt_type IN ('optIn', 'optOut')),
    opt_modification_number  int,
    opted_at                 timestamptz,
    PRIMARY KEY (ven_pk, event_id)
);
CREATE INDEX oadr2b_event_deliveries_dr_event ON oadr2b_event_deliveries (dr_event_pk);
"""


def upgrade() -> None:
    op.execute(SCHEMA)


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS oadr2b_event_deliveries, oadr2b_vens CASCADE")
