"""OpenADR clients (business logic and VENs) and their scopes: the add/revoke queries the CLI runs.

Secrets are hashed exactly as the REST API's clients' are (`vpp.postgres.api_clients.hash_secret`).
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg

from vpp.domain.openadr import ALL_SCOPES, DEFAULT_SCOPES, OpenAdrRole
from vpp.postgres.api_clients import hash_secret

__all__ = ["add_openadr_client", "revoke_openadr_client"]


def add_openadr_client(
    conn: psycopg.Connection,
    client_id: str,
    secret: str,
    role: OpenAdrRole,
    scopes: Sequence[str] | None = None,
    description: str = "",
) -> tuple[str, ...]:
    """Store a client with `scopes` (default: its role's, Definition.md's scope table); return them. Caller commits."""
    granted = tuple(scopes) if scopes is not None else DEFAULT_SCOPES[role]
    unknown = set(granted) - set(ALL_SCOPES)
    if unknown:
        raise ValueError(f"unknown OpenADR scopes {sorted(unknown)}; known: {', '.join(ALL_SCOPES)}")
    try:
        conn.execute(
            """INSERT INTO openadr_clients (client_id, secret_hash, role, scopes, description)
               VALUES (%s, %s, %s, %s, %s)""",
            (client_id, hash_secret(secret), role, list(granted), description),
        )
    except psycopg.errors.UniqueViolation:
        raise ValueError(f"OpenADR client {client_id!r} already exists") from None
    except psycopg.errors.CheckViolation:
        raise ValueError(f"OpenADR client id {client_id!r} must be 1-128 letters, digits, '.', '_' or '-'") from None
    return granted


def revoke_openadr_client(conn: psycopg.Connection, client_id: str) -> bool:
    """Revoke a client (its tokens stop working at once); False when there is no such active client."""
    row = conn.execute(
        "UPDATE openadr_clients SET revoked_at = now() WHERE client_id = %s AND revoked_at IS NULL RETURNING id",
        (client_id,),
    ).fetchone()
    return row is not None
