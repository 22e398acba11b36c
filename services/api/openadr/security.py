"""OpenADR clients' tokens and scopes.

Tokens are JWTs (HS256) under a key derived from ``settings.api_signing_key`` with its own
domain-separation label and issuer, so an OpenADR token is refused by ``/api/v1`` and the
REST API's tokens are refused here. The token carries the client's ID (stamped into the objects
it creates), its role (``bl`` or ``ven``) and its scopes.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass
from typing import Annotated, Any

import jwt
from fastapi import Depends, Request

from services.api.openadr.problems import OpenAdrError
from services.api.state import AppState
from vpp.domain.openadr import ALL_SCOPES
from vpp.postgres.openadr import fetch_client
from vpp.settings import Settings

__all__ = ["Caller", "CallerDep", "decode_token", "issue_token", "require"]

_ISSUER = "vpp-openadr-vtn"
_ALGORITHM = "HS256"
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def _key(settings: Settings) -> bytes:
    return hashlib.sha256(b"vpp-openadr-token-v1:" + settings.secret("api_signing_key").encode()).digest()


@dataclass(frozen=True, slots=True)
class Caller:
    client_id: str
    role: str  # "bl" or "ven"
    scopes: frozenset[str]

    @property
    def is_bl(self) -> bool:
        return self.role == "bl"


def issue_token(settings: Settings, caller: Caller, *, now_s: float | None = None) -> tuple[str, int]:
    issued = int(now_s if now_s is not None else time.time())
    ttl_s = settings.api_token_ttl_s
    claims: dict[str, Any] = {
        "iss": _ISSUER,
        "sub": caller.client_id,
        "role": caller.role,
        "scope": " ".join(sorted(caller.scopes)),
        "iat": issued,
        "exp": issued + ttl_s,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, _key(settings), algorithm=_ALGORITHM), ttl_s


def decode_token(settings: Settings, token: str) -> Caller:
    try:
        claims = jwt.decode(
            token, _key(settings), algorithms=[_ALGORITHM], issuer=_ISSUER, options={"require": ["exp", "sub", "iss"]}
        )
    except jwt.ExpiredSignatureError:
        raise OpenAdrError(401, "the access token has expired; request a new one", headers=_CHALLENGE) from None
    except jwt.PyJWTError as exc:
        raise OpenAdrError(401, f"the access token is invalid: {exc}", headers=_CHALLENGE) from None
    role = claims.get("role")
    if role not in ("bl", "ven"):
        raise OpenAdrError(401, "the access token names no OpenADR role", headers=_CHALLENGE)
    scopes = frozenset(str(claims.get("scope", "")).split()) & set(ALL_SCOPES)
    return Caller(str(claims["sub"]), role, scopes)


async def _caller(request: Request) -> Caller:
    state: AppState = request.app.state.vpp
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise OpenAdrError(401, "send an access token as 'Authorization: Bearer <token>'", headers=_CHALLENGE)
    caller = decode_token(state.settings, token.strip())
    # A revoked client's tokens stop working at once, not when they expire.
    async with state.engine.connect() as conn:
        if await fetch_client(conn, caller.client_id) is None:
            raise OpenAdrError(401, f"client {caller.client_id!r} is unknown or revoked", headers=_CHALLENGE)
    return caller


CallerDep = Annotated[Caller, Depends(_caller)]


def require(caller: Caller, *any_of: str) -> str:
    """The first of `any_of` the caller holds; 403 if none."""
    for scope in any_of:
        if scope in caller.scopes:
            return scope
    raise OpenAdrError(403, f"this operation needs scope {' or '.join(any_of)}")
