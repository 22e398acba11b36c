"""Broker credentials: one MQTT password hash per site, from which `vpp broker-config` writes Mosquitto's
password file. A revoked site keeps a row without a hash (so the next run does not issue it a fresh
secret) until it is rotated back in. Only the hash is kept (Mosquitto's PBKDF2-SHA512 parts); the plaintext is shown once
to the site's installer and never stored.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE broker_credentials (
            site_pk        int PRIMARY KEY REFERENCES sites (id) ON DELETE CASCADE,
            iterations     int CHECK (iterations > 0),
            salt           bytea CHECK (octet_length(salt) = 12),
            password_hash  bytea CHECK (octet_length(password_hash) = 64),
            created_at     timestamptz NOT NULL DEFAULT now(),
            issued_at      timestamptz,
            revoked_at     timestamptz,
            -- Live: a complete hash and no revocation. Revoked: no hash at all.
            CHECK (num_nulls(iterations, salt, password_hash, issued_at) IN (0, 4)),
            CHECK ((revoked_at IS NULL) = (password_hash IS NOT NULL))
        );
        COMMENT ON COLUMN broker_credentials.issued_at IS 'when the current secret was issued (creation or rotation)';
        COMMENT ON COLUMN broker_credentials.revoked_at IS
            'set by --revoke: the site is left out of the broker files and gets no secret until rotated';
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS broker_credentials")
