"""Production is the default; development placeholders exist only in development."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from vpp.settings import MissingSecretError, Settings


@pytest.fixture(autouse=True)
def _no_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    for name in ("VPP_ENVIRONMENT", "VPP_API_SIGNING_KEY", "VPP_MQTT_INGEST_PASSWORD", "VPP_MQTT_SCHEDULER_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(str(tmp_path))  # no .env file


def test_unset_environment_is_production_without_secrets() -> None:
    settings = Settings()
    assert settings.environment == "production"
    with pytest.raises(MissingSecretError, match="VPP_API_SIGNING_KEY is not set"):
        settings.secret("api_signing_key")


def test_development_fills_in_the_placeholders() -> None:
    settings = Settings(environment="development")
    assert settings.secret("api_signing_key") == "dev-api-signing-key-change-me"
    assert settings.secret("mqtt_ingest_password") == "dev-ingest-password"


def test_a_placeholder_set_outside_development_is_refused() -> None:
    with pytest.raises(ValidationError, match="development placeholder"):
        Settings(api_signing_key=SecretStr("dev-api-signing-key-change-me"))


def test_ingest_accounts_list_the_configured_one_first() -> None:
    settings = Settings(mqtt_ingest_username="ingest-1", mqtt_ingest_accounts="ingest-2, ingest-1,ingest-3")
    assert settings.ingest_accounts == ["ingest-1", "ingest-2", "ingest-3"]
