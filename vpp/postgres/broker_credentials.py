"""Site broker credentials: the stored PBKDF2 hashes `vpp broker-config` turns into Mosquitto's files.

Every function takes a connection and leaves committing to the caller, so issuing secrets and reading
the full set back happen in one transaction.
"""

from __future__ import annotations

import psycopg

from vpp.broker_security import PasswordHash

__all__ = [
    "load_credentials",
    "lock_credentials",
    "revoke_credential",
    "sites_without_credentials",
    "store_credential",
    "unknown_sites",
]

# Any constant works; it only has to be the same for every `vpp broker-config` run.
_LOCK_KEY = 0x5650_5042  # "VPPB"


def lock_credentials(conn: psycopg.Connection) -> None:
    """Serialise concurrent `vpp broker-config` runs until the transaction ends, so two runs never
    both issue a secret for the same new site and print a password that lost the race."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))


def sites_without_credentials(conn: psycopg.Connection) -> list[str]:
    rows = conn.execute(
        """SELECT s.site_id FROM sites s
           LEFT JOIN broker_credentials c ON c.site_pk = s.id
           WHERE c.site_pk IS NULL ORDER BY s.site_id"""
    ).fetchall()
    return [r[0] for r in rows]


def unknown_sites(conn: psycopg.Connection, site_ids: list[str]) -> list[str]:
    """Those of `site_ids` that are not in the sites table."""
    rows = conn.execute(
        "SELECT x FROM unnest(%s::text[]) AS x WHERE x NOT IN (SELECT site_id FROM sites) ORDER BY x", (site_ids,)
    ).fetchall()
    return [r[0] for r in rows]


def store_credential(conn: psycopg.Connection, site_id: str, stored: PasswordHash) -> None:
    """Set a site's password hash, replacing any previous one (rotation) and lifting a revocation."""
    cur = conn.execute(
        """
        INSERT INTO broker_credentials (site_pk, iterations, salt, password_hash, issued_at)
        SELECT id, %s, %s, %s, now() FROM sites WHERE site_id = %s
        ON CONFLICT (site_pk) DO UPDATE SET iterations = EXCLUDED.iterations, salt = EXCLUDED.salt,
            password_hash = EXCLUDED.password_hash, issued_at = now(), revoked_at = NULL
        """,
        (stored.iterations, stored.salt, stored.digest, site_id),
    )
    if cur.rowcount != 1:
        raise LookupError(f"no site {site_id!r}")


def revoke_credential(conn: psycopg.Connection, site_id: str) -> bool:
    """Shut a site out: forget its hash but keep the row, so the next run does not take it for a new
    site and issue it a fresh secret. Returns whether anything changed."""
    cur = conn.execute(
        """
        INSERT INTO broker_credentials (site_pk, revoked_at) SELECT id, now() FROM sites WHERE site_id = %s
        ON CONFLICT (site_pk) DO UPDATE SET revoked_at = now(), iterations = NULL, salt = NULL,
            password_hash = NULL, issued_at = NULL
        WHERE broker_credentials.revoked_at IS NULL
        """,
        (site_id,),
    )
    return cur.rowcount > 0


def load_credentials(conn: psycopg.Connection) -> dict[str, PasswordHash]:
    """Every live (unrevoked) site's hash, keyed by site id (the site's broker username)."""
    rows = conn.execute(
        """SELECT s.site_id, c.iterations, c.salt, c.password_hash
           FROM broker_credentials c JOIN sites s ON s.id = c.site_pk
           WHERE c.revoked_at IS NULL ORDER BY s.site_id"""
    ).fetchall()
    return {r[0]: PasswordHash(r[1], bytes(r[2]), bytes(r[3])) for r in rows}
