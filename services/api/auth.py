"""Signed access tokens (JWT, HS256) and the principal a request acts as.

Roles: ``operator`` sees everything, ``city`` sees regional aggregates (and public sites), ``site``
sees its own site. Development clients exist so a fresh checkout can be explored; they are refused
outside development, where the signing key itself must also be real (vpp.settings checks that).
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from dataclasses import dataclass
from typing import Any, Literal

import jwt

from vpp.settings import Settings

__all__ = ["DEV_CLIENTS", "Principal", "Role", "TokenError", "decode_token", "dev_client", "issue_token"]

Role = Literal["operator", "city", "site"]
_ISSUER = "vpp-api"
_ALGORITHM = "HS256"

# client_id -> (secret, role). Accepted in development only.
DEV_CLIENTS: dict[str, tuple[str, Role]] = {
    "dev-operator": ("dev-operator-secret", "operator"),
    "dev-city": ("dev-city-secret", "city"),
}


def _signing_key(settings: Settings) -> bytes:
    # Domain separation: the configured secret may be reused elsewhere, tokens get their own key.
    # Hashing also gives HS256 its full 32-byte key whatever the secret's length.
    return hashlib.sha256(b"vpp-api-token-v1:" + settings.secret("api_signing_key").encode()).digest()


class TokenError(Exception):
    """The bearer token is missing, malformed, expired or not signed by us."""


@dataclass(frozen=True, slots=True)
class Principal:
    client_id: str
    role: Role
    site_id: str | None = None
    dev: bool = False


def dev_client(client_id: str, secret: str) -> Principal | None:
    """The development client these credentials name, if they match one."""
    entry = DEV_CLIENTS.get(client_id)
    if entry is None or not hmac.compare_digest(entry[0].encode(), secret.encode()):
        return None
    return Principal(client_id, entry[1], None, dev=True)


def issue_token(settings: Settings, principal: Principal, *, now_s: float | None = None) -> tuple[str, int]:
    """A signed token for `principal` and its lifetime in seconds."""
    issued_s = int(now_s if now_s is not None else time.time())
    ttl_s = settings.api_token_ttl_s
    claims: dict[str, Any] = {
        "iss": _ISSUER,
        "sub": principal.client_id,
        "role": principal.role,
        "iat": issued_s,
        "exp": issued_s + ttl_s,
        "jti": uuid.uuid4().hex,
    }
    if principal.site_id is not None:
        claims["site"] = principal.site_id
    if principal.dev:
        claims["dev"] = True
    token = jwt.encode(claims, _signing_key(settings), algorithm=_ALGORITHM)
    return token, ttl_s


def decode_token(settings: Settings, token: str) -> tuple[Principal, float]:
    """The principal a token names and when it expires (epoch seconds)."""
    try:
        claims = jwt.decode(
            token,
            _signing_key(settings),
            algorithms=[_ALGORITHM],
            issuer=_ISSUER,
            options={"require": ["exp", "iat", "sub", "iss"]},
        )
    except jwt.ExpiredSignatureError:
        raise TokenError("the access token has expired; request a new one") from None
    except jwt.PyJWTError as exc:
        raise TokenError(f"the access token is invalid: {exc}") from None
    role = claims.get("role")
    site = claims.get("site")
    if role not in ("operator", "city", "site") or (role == "site") != isinstance(site, str):
        raise TokenError("the access token carries no valid role")
    dev = bool(claims.get("dev", False))
    if dev and settings.environment != "development":
        raise TokenError("development tokens are refused outside development mode")
    principal = Principal(str(claims["sub"]), role, site if isinstance(site, str) else None, dev=dev)
    return principal, float(claims["exp"])
