"""OpenADR clients (business logic and VENs) and their scopes: the queries `vpp clients` runs.

Secrets are hashed exactly as the REST API's clients' are (`vpp.postgres.api_clients.hash_secret`).
A VEN sees the programs and events targeted at the sites it was granted: the targets of its ven
object (Definition.md, "Object privacy"), which `grant_ven_sites` writes as business logic would
through ``POST /vens`` — through the same table, so the outbox notifies subscribers of it too.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.types.json import Jsonb

from vpp.domain.openadr import ALL_SCOPES, DEFAULT_SCOPES, OpenAdrRole, site_target
from vpp.postgres.api_clients import hash_secret

__all__ = [
    "OpenAdrClient",
    "add_openadr_client",
    "grant_ven_sites",
    "list_openadr_clients",
    "revoke_openadr_client",
    "ungrant_ven_sites",
]

_SITE_PREFIX = site_target("")


@dataclass(frozen=True, slots=True)
class OpenAdrClient:
    client_id: str
    role: OpenAdrRole
    scopes: tuple[str, ...]
    sites: tuple[str, ...]  # granted through the client's ven objects (VENs)
    description: str
    created_at: datetime
    revoked_at: datetime | None


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


def list_openadr_clients(conn: psycopg.Connection) -> list[OpenAdrClient]:
    rows = conn.execute(
        """SELECT c.client_id, c.role, c.scopes, c.description, c.created_at, c.revoked_at,
                  COALESCE((SELECT array_agg(DISTINCT t ORDER BY t) FROM openadr_vens v, unnest(v.targets) t
                            WHERE v.client_id = c.client_id), '{}')
           FROM openadr_clients c ORDER BY c.client_id"""
    ).fetchall()
    out = []
    for r in rows:
        sites = tuple(t.removeprefix(_SITE_PREFIX) for t in r[6] if t.startswith(_SITE_PREFIX))
        out.append(OpenAdrClient(r[0], r[1], tuple(r[2]), sites, r[3], r[4], r[5]))
    return out


def _ven_client(conn: psycopg.Connection, client_id: str) -> None:
    row = conn.execute(
        "SELECT role FROM openadr_clients WHERE client_id = %s AND revoked_at IS NULL", (client_id,)
    ).fetchone()
    if row is None or row[0] != "ven":
        raise ValueError(f"no active OpenADR VEN client {client_id!r} (add it with --role ven)")


def grant_ven_sites(
    conn: psycopg.Connection, client_id: str, site_ids: Sequence[str], now: datetime, ven_name: str | None = None
) -> tuple[str, tuple[str, ...]]:
    """Grant a VEN client the targets ``site:<id>`` of these sites on its ven object (made on first
    grant, named `ven_name` or the client id); return the ven's ID and all sites it now grants. Caller commits."""
    _ven_client(conn, client_id)
    known = {r[0] for r in conn.execute("SELECT site_id FROM sites WHERE site_id = ANY(%s)", (list(site_ids),))}
    unknown = sorted(set(site_ids) - known)
    if unknown:
        raise ValueError(f"no such site {', '.join(unknown)}")
    targets = [site_target(s) for s in site_ids]
    row = conn.execute(
        "SELECT id FROM openadr_vens WHERE client_id = %s ORDER BY created_at, id LIMIT 1 FOR UPDATE", (client_id,)
    ).fetchone()
    if row is None:
        name = ven_name or client_id
        try:
            with conn.transaction():
                row = conn.execute(
                    """INSERT INTO openadr_vens (id, ven_name, client_id, targets, body, created_at, modified_at)
                       VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id""",
                    (f"ven-{uuid.uuid4().hex[:20]}", name, client_id, sorted(set(targets)),
                     Jsonb({"venName": name}), now, now),
                ).fetchone()  # fmt: skip
        except psycopg.errors.UniqueViolation:
            raise ValueError(f"a ven named {name!r} already exists; choose another with --ven-name") from None
    else:
        conn.execute(
            """UPDATE openadr_vens SET modified_at = %s,
                   targets = ARRAY(SELECT DISTINCT t FROM unnest(targets || %s::text[]) t ORDER BY t)
               WHERE id = %s AND NOT targets @> %s::text[]""",
            (now, targets, row[0], targets),
        )
    assert row is not None
    return str(row[0]), _granted_sites(conn, client_id)


def ungrant_ven_sites(
    conn: psycopg.Connection, client_id: str, site_ids: Sequence[str], now: datetime
) -> tuple[str, ...]:
    """Withdraw these sites from every ven object of the client; return the sites still granted. Caller commits."""
    _ven_client(conn, client_id)
    targets = [site_target(s) for s in site_ids]
    conn.execute(
        """UPDATE openadr_vens SET modified_at = %s,
               targets = ARRAY(SELECT t FROM unnest(targets) t WHERE NOT t = ANY(%s::text[]) ORDER BY t)
           WHERE client_id = %s AND targets && %s::text[]""",
        (now, targets, client_id, targets),
    )
    return _granted_sites(conn, client_id)


def _granted_sites(conn: psycopg.Connection, client_id: str) -> tuple[str, ...]:
    rows = conn.execute(
        "SELECT DISTINCT t FROM openadr_vens, unnest(targets) t WHERE client_id = %s ORDER BY t", (client_id,)
    ).fetchall()
    return tuple(str(r[0]).removeprefix(_SITE_PREFIX) for r in rows if str(r[0]).startswith(_SITE_PREFIX))
