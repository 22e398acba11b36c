"""OAuth2 API clients: how their secrets are stored, and the add/list/revoke queries the CLI runs.

Secrets are random tokens shown once; only a salted scrypt hash is stored (``scrypt$n$r$p$salt$hash``,
hex), so a leaked table does not leak credentials. scrypt is in the standard library and memory-hard.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import psycopg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = [
    "ActiveClient",
    "ApiClient",
    "Role",
    "active_client",
    "add_client",
    "client_is_active",
    "hash_secret",
    "list_clients",
    "new_secret",
    "revoke_client",
    "schema_ready",
    "verify_secret",
]

Role = Literal["operator", "city", "site"]

# n=2**14, r=8 takes ~30 ms and 16 MiB: slow for brute force, fine for a token endpoint.
_N, _R, _P = 2**14, 8, 1


def new_secret() -> str:
    """A fresh client secret (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def hash_secret(secret: str, *, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${_N}${_R}${_P}${salt.hex()}${digest.hex()}"


def verify_secret(secret: str, stored: str) -> bool:
    """Constant-time check of `secret` against a :func:`hash_secret` string; False for malformed ones."""
    try:
        scheme, n, r, p, salt_hex, digest_hex = stored.split("$")
        if scheme != "scrypt":
            return False
        digest = hashlib.scrypt(
            secret.encode(), salt=bytes.fromhex(salt_hex), n=int(n), r=int(r), p=int(p), dklen=len(digest_hex) // 2
        )
    except ValueError:
        return False
    return hmac.compare_digest(digest.hex(), digest_hex)


@dataclass(frozen=True, slots=True)
class ApiClient:
    client_id: str
    role: Role
    site_id: str | None
    description: str
    created_at: datetime
    revoked_at: datetime | None


def add_client(
    conn: psycopg.Connection, client_id: str, secret: str, role: Role, site_id: str | None, description: str = ""
) -> None:
    """Store a new client. Raises ValueError for an unknown site or a site role without one. Caller commits."""
    if (role == "site") != (site_id is not None):
        raise ValueError("a site client needs --site, and only site clients may have one")
    site_pk: int | None = None
    if site_id is not None:
        row = conn.execute("SELECT id FROM sites WHERE site_id = %s", (site_id,)).fetchone()
        if row is None:
            raise ValueError(f"no site {site_id!r}")
        site_pk = int(row[0])
    try:
        conn.execute(
            """INSERT INTO api_clients (client_id, secret_hash, role, site_pk, description)
               VALUES (%s, %s, %s, %s, %s)""",
            (client_id, hash_secret(secret), role, site_pk, description),
        )
    except psycopg.errors.UniqueViolation:
        raise ValueError(f"client {client_id!r} already exists") from None
    except psycopg.errors.CheckViolation:
        raise ValueError(f"client id {client_id!r} must be 1-64 letters, digits, '.', '_' or '-'") from None


def list_clients(conn: psycopg.Connection) -> list[ApiClient]:
    rows = conn.execute(
        """SELECT c.client_id, c.role, s.site_id, c.description, c.created_at, c.revoked_at
           FROM api_clients c LEFT JOIN sites s ON s.id = c.site_pk ORDER BY c.client_id"""
    ).fetchall()
    return [ApiClient(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]


def revoke_client(conn: psycopg.Connection, client_id: str) -> bool:
    """Mark a client revoked; False when there is no such active client. Caller commits."""
    row = conn.execute(
        "UPDATE api_clients SET revoked_at = now() WHERE client_id = %s AND revoked_at IS NULL RETURNING id",
        (client_id,),
    ).fetchone()
    return row is not None


# The API's side (SQLAlchemy async): what the token endpoint and the revocation check read.


@dataclass(frozen=True, slots=True)
class ActiveClient:
    secret_hash: str
    role: Role
    site_id: str | None


_ACTIVE_CLIENT = text(
    """SELECT c.secret_hash, c.role, s.site_id FROM api_clients c LEFT JOIN sites s ON s.id = c.site_pk
       WHERE c.client_id = :client_id AND c.revoked_at IS NULL"""
)
_IS_ACTIVE = text("SELECT revoked_at IS NULL FROM api_clients WHERE client_id = :client_id")


async def active_client(conn: AsyncConnection, client_id: str) -> ActiveClient | None:
    """A client that is not revoked, with its secret's hash, role and site (None: unknown or revoked)."""
    row = (await conn.execute(_ACTIVE_CLIENT, {"client_id": client_id})).first()
    return None if row is None else ActiveClient(str(row[0]), row[1], row[2])


async def client_is_active(conn: AsyncConnection, client_id: str) -> bool:
    """False for a revoked or unknown client."""
    return bool((await conn.execute(_IS_ACTIVE, {"client_id": client_id})).scalar())


_READY = text("SELECT 1 FROM api_clients LIMIT 1")


async def schema_ready(conn: AsyncConnection) -> None:
    """Raises unless the database answers and holds the API's tables (migrated far enough to log in)."""
    await conn.execute(_READY)
