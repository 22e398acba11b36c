from __future__ import annotations

import pytest
from pydantic import SecretStr

from services.api.auth import Principal, TokenError, decode_token, dev_client, issue_token
from vpp.postgres.api_clients import hash_secret, verify_secret
from vpp.settings import Settings


def _settings(environment: str = "test") -> Settings:
    return Settings(
        environment=environment,  # type: ignore[arg-type]
        api_signing_key=SecretStr("unit-test-signing-key-0123456789abcdef"),
        mqtt_ingest_password=SecretStr("x-ingest"),
        mqtt_scheduler_password=SecretStr("x-scheduler"),
    )


def test_token_round_trip_keeps_role_and_site() -> None:
    settings = _settings()
    token, ttl_s = issue_token(settings, Principal("ems-1", "site", "depot-a"))
    principal, expires_s = decode_token(settings, token)
    assert principal == Principal("ems-1", "site", "depot-a")
    assert ttl_s == settings.api_token_ttl_s
    assert expires_s > 0


def test_expired_and_foreign_tokens_are_refused() -> None:
    settings = _settings()
    expired, _ = issue_token(settings, Principal("c", "city"), now_s=1_000)
    with pytest.raises(TokenError, match="expired"):
        decode_token(settings, expired)
    other = _settings().model_copy(update={"api_signing_key": SecretStr("another-key-0123456789abcdef-0123")})
    token, _ = issue_token(other, Principal("c", "city"))
    with pytest.raises(TokenError, match="invalid"):
        decode_token(settings, token)


def test_development_tokens_only_work_in_development() -> None:
    dev = _settings("development")
    principal = dev_client("dev-operator", "dev-operator-secret")
    assert principal is not None
    assert principal.dev
    token, _ = issue_token(dev, principal)
    assert decode_token(dev, token)[0].role == "operator"
    test = dev.model_copy(update={"environment": "test"})
    with pytest.raises(TokenError, match="development"):
        decode_token(test, token)
    assert dev_client("dev-operator", "wrong") is None


def test_secret_hashes_are_salted_and_verifiable() -> None:
    first, second = hash_secret("s3cret"), hash_secret("s3cret")
    assert first != second
    assert verify_secret("s3cret", first)
    assert not verify_secret("S3cret", first)
    assert not verify_secret("s3cret", "garbage")
    assert not verify_secret("s3cret", "scrypt$x$8$1$00$00")
