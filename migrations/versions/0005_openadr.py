"""OpenADR 3.1.0 VTN: clients with scopes, programs, events, reports, subscriptions, vens, resources.

Each object keeps its wire body (the request fields, JSONB) beside the columns the VTN filters,
joins and enforces privacy on: its VTN-set metadata, the creating client (`client_id`, stamped from
the token), its targets, and its parent (program, event, ven). Events published for the scheduler's
DR events also name that DR event and site, so a re-plan updates the same OpenADR event.

OpenADR clients live in their own table rather than `api_clients`: their roles (business logic,
VEN) and scopes are the spec's, not the REST API's, and their tokens are not valid on `/api/v1`.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

SCHEMA = """
CREATE TABLE openadr_clients (
    id           serial PRIMARY KEY,
    client_id    text NOT NULL UNIQUE CHECK (client_id ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$'),
    secret_hash  text NOT NULL,
    role         text NOT NULL CHECK (role IN ('bl', 'ven')),
    scopes       text[] NOT NULL CHECK (scopes <@ ARRAY['read_all', 'read_targets', 'read_ven_objects',
                     'write_programs', 'write_events', 'write_reports', 'write_subscriptions', 'write_vens']),
    description  text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz
);

CREATE TABLE openadr_programs (
    id            text PRIMARY KEY CHECK (id ~ '^[a-zA-Z0-9_-]{1,128}$'),
    program_name  text NOT NULL UNIQUE,
    client_id     text NOT NULL,
    targets       text[] NOT NULL DEFAULT '{}',
    body          jsonb NOT NULL,
    created_at    timestamptz NOT NULL,
    modified_at   timestamptz NOT NULL
);

CREATE TABLE openadr_events (
    id            text PRIMARY KEY CHECK (id ~ '^[a-zA-Z0-9_-]{1,128}$'),
    program_id    text NOT NULL REFERENCES openadr_programs (id) ON DELETE CASCADE,
    client_id     text NOT NULL,
    targets       text[] NOT NULL DEFAULT '{}',
    body          jsonb NOT NULL,
    created_at    timestamptz NOT NULL,
    modified_at   timestamptz NOT NULL,
    ends_at       timestamptz,  -- end of its last interval; NULL when open-ended or looping
    -- Set when the event carries a scheduler DR event to one site.
    dr_event_pk   bigint REFERENCES dr_events (id) ON DELETE CASCADE,
    site_pk       int REFERENCES sites (id) ON DELETE CASCADE,
    CHECK ((dr_event_pk IS NULL) = (site_pk IS NULL)),
    UNIQUE (dr_event_pk, site_pk)
);
CREATE INDEX openadr_events_program ON openadr_events (program_id);
CREATE INDEX openadr_events_targets ON openadr_events USING gin (targets);

CREATE TABLE openadr_vens (
    id            text PRIMARY KEY CHECK (id ~ '^[a-zA-Z0-9_-]{1,128}$'),
    ven_name      text NOT NULL UNIQUE,
    client_id     text NOT NULL,
    targets       text[] NOT NULL DEFAULT '{}',
    body          jsonb NOT NULL,
    created_at    timestamptz NOT NULL,
    modified_at   timestamptz NOT NULL
);
CREATE INDEX openadr_vens_client ON openadr_vens (client_id);

CREATE TABLE openadr_resources (
    id             text PRIMARY KEY CHECK (id ~ '^[a-zA-Z0-9_-]{1,128}$'),
    ven_id         text NOT NULL REFERENCES openadr_vens (id) ON DELETE CASCADE,
    resource_name  text NOT NULL,
    client_id      text NOT NULL,
    targets        text[] NOT NULL DEFAULT '{}',
    body           jsonb NOT NULL,
    created_at     timestamptz NOT NULL,
    modified_at    timestamptz NOT NULL,
    UNIQUE (ven_id, resource_name)
);
CREATE INDEX openadr_resources_client ON openadr_resources (client_id);

CREATE TABLE openadr_reports (
    id            text PRIMARY KEY CHECK (id ~ '^[a-zA-Z0-9_-]{1,128}$'),
    event_id      text NOT NULL REFERENCES openadr_events (id) ON DELETE CASCADE,
    program_id    text NOT NULL REFERENCES openadr_programs (id) ON DELETE CASCADE,
    client_name   text NOT NULL,
    client_id     text NOT NULL,
    targets       text[] NOT NULL DEFAULT '{}',
    body          jsonb NOT NULL,
    created_at    timestamptz NOT NULL,
    modified_at   timestamptz NOT NULL
);
CREATE INDEX openadr_reports_event ON openadr_reports (event_id);
CREATE INDEX openadr_reports_client ON openadr_reports (client_id);

CREATE TABLE openadr_subscriptions (
    id            text PRIMARY KEY CHECK (id ~ '^[a-zA-Z0-9_-]{1,128}$'),
    program_id    text REFERENCES openadr_programs (id) ON DELETE CASCADE,
    client_name   text NOT NULL,
    client_id     text NOT NULL,
    targets       text[] NOT NULL DEFAULT '{}',
    body          jsonb NOT NULL,
    created_at    timestamptz NOT NULL,
    modified_at   timestamptz NOT NULL
);
CREATE INDEX openadr_subscriptions_client ON openadr_subscriptions (client_id);
"""

TABLES = (
    "openadr_subscriptions",
    "openadr_reports",
    "openadr_resources",
    "openadr_vens",
    "openadr_events",
    "openadr_programs",
    "openadr_clients",
)


def upgrade() -> None:
    op.execute(SCHEMA)


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
