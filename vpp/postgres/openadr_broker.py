"""OpenADR clients' broker credentials (MQTT notifier binding): the hashes `vpp broker-config`
writes into Mosquitto's dynamic-security file, next to the sites' (`vpp.postgres.broker_credentials`).

Every function takes a connection and leaves committing to the caller. Only active clients count:
revoking an OpenADR client (`vpp clients revoke`) drops its broker account from the next file.
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg

from vpp.broker_security import PasswordHash

__all__ = [
    "clients_without_broker_credentials",
    "load_openadr_broker_credentials",
    "openadr_clients_among",
    "store_openadr_broker_credential",
]


def clients_without_broker_credentials(conn: psycopg.Connection) -> list[str]:
    rows = conn.execute(
        """SELECT c.client_id FROM openadr_clients c
           LEFT JOIN openadr_broker_credentials b ON b.client_id = c.client_id
           WHERE c.revoked_at IS NULL AND b.client_id IS NULL ORDER BY c.client_id"""
    ).fetchall()
    return [r[0] for r in rows]


def openadr_clients_among(conn: psycopg.Connection, names: Sequence[str]) -> list[str]:
    """Those of `names` that are active OpenADR clients."""
    rows = conn.execute(
        "SELECT client_id FROM openadr_clients WHERE client_id = ANY(%s) AND revoked_at IS NULL ORDER BY client_id",
        (list(names),),
    ).fetchall()
    return [r[0] for r in rows]


def store_openadr_broker_credential(conn: psycopg.Connection, client_id: str, stored: PasswordHash) -> None:
    """Set a client's broker password hash, replacing any previous one (rotation)."""
    conn.execute(
        """INSERT INTO openadr_broker_credentials (client_id, iterations, salt, password_hash)
           VALUES (%s, %s, %s, %s)
           ON CONFLICT (client_id) DO UPDATE SET iterations = EXCLUDED.iterations, salt = EXCLUDED.salt,
               password_hash = EXCLUDED.password_hash, issued_at = now()""",
        (client_id, stored.iterations, stored.salt, stored.digest),
    )


def load_openadr_broker_credentials(conn: psycopg.Connection) -> dict[str, tuple[str, PasswordHash]]:
    """Every active OpenADR client's role and broker hash, keyed by client ID (its broker username)."""
    rows = conn.execute(
        """SELECT c.client_id, c.role, b.iterations, b.salt, b.password_hash
           FROM openadr_broker_credentials b JOIN openadr_clients c ON c.client_id = b.client_id
           WHERE c.revoked_at IS NULL ORDER BY c.client_id"""
    ).fetchall()
    return {r[0]: (r[1], PasswordHash(r[2], bytes(r[3]), bytes(r[4]))) for r in rows}
