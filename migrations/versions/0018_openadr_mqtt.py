"""OpenADR MQTT notifier binding: the messages still to publish, and the clients' broker credentials.

`openadr_mqtt_messages` holds one row per (change, topic) the delivery loop fanned a change out to
(`services/api/openadr/mqtt_notifier.py`); the publisher deletes a row once the broker acknowledged
it (PUBACK at QoS 1) and otherwise retries it with back-off, so a broker outage delays
notifications but loses none. `openadr_broker_credentials` holds the PBKDF2 hash of each OpenADR
client's broker password (`vpp broker-config` issues it and writes it into Mosquitto's
dynamic-security file); revoking the client drops it from the next generated file.

Revision ID: 0018
Revises: 0014
Create Date: 2026-12-04
"""

from alembic import op

revision = "0018"
down_revision = "0014"
branch_labels = None
depends_on = None

SCHEMA = """
CREATE TABLE openadr_mqtt_messages (
    id               bigserial PRIMARY KEY,
    change_id        bigint NOT NULL,
    topic            text NOT NULL,
    message          jsonb NOT NULL,
    attempts         int NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    change_at        timestamptz NOT NULL,  -- when the change was committed: the age metric counts from it
    last_error       text
);
CREATE INDEX openadr_mqtt_messages_due ON openadr_mqtt_messages (next_attempt_at);

CREATE TABLE openadr_broker_credentials (
    client_id      text PRIMARY KEY REFERENCES openadr_clients (client_id) ON DELETE CASCADE,
    iterations     int NOT NULL,
    salt           bytea NOT NULL,
    password_hash  bytea NOT NULL,
    issued_at      timestamptz NOT NULL DEFAULT now()
);
"""


def upgrade() -> None:
    op.execute(SCHEMA)


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS openadr_broker_credentials, openadr_mqtt_messages")
