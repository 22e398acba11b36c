"""Typed settings, read from the environment (prefix ``VPP_``) and an optional ``.env`` file.

No module-level instance: each process composes what it needs by calling `load_settings()` once,
so tests build settings explicitly instead of patching globals.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["DEV_SECRETS", "Settings", "load_settings"]

# Placeholder secrets that make a fresh checkout run. They are refused outside development.
DEV_SECRETS = frozenset({"dev-ingest-password", "dev-scheduler-password", "dev-api-signing-key-change-me"})


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VPP_", env_file=".env", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    data_dir: Path = Path(".vpp-data")
    log_level: str = "INFO"
    log_format: Literal["json", "console"] = "json"

    # Unset means "start a private one under data_dir" (embedded default).
    database_url: str | None = None
    mqtt_url: str | None = None  # mqtt://host:port

    mqtt_ingest_username: str = "ingest"
    mqtt_ingest_password: SecretStr = SecretStr("dev-ingest-password")
    mqtt_scheduler_username: str = "scheduler"
    mqtt_scheduler_password: SecretStr = SecretStr("dev-scheduler-password")
    api_signing_key: SecretStr = SecretStr("dev-api-signing-key-change-me")
    # REST API (services/api). The CO2 factor is unverified (DOMAIN.md: 0.42-0.46 kg-CO2/kWh).
    api_token_ttl_s: int = Field(900, ge=60, le=86_400)
    api_city_min_private_sites: int = Field(3, ge=1, le=1000)  # k: fewer private sites and city sees nothing
    api_city_rate_limit_per_min: int = Field(120, ge=1, le=1_000_000)
    api_co2_factor_kg_per_kwh: float = Field(0.44, ge=0, le=5)
    api_capacity_target_kw: float = Field(330_000, gt=0)
    api_capacity_target_fiscal_year: int = Field(2030, ge=2000, le=2100)
    api_cache_max_entries: int = Field(4096, ge=0)
    api_db_pool_size: int = Field(10, ge=1, le=200)
    api_host: str = "127.0.0.1"
    api_port: int = Field(8000, ge=0, le=65535)

    ingest_client_id: str = "ingest-1"
    ingest_share_group: str = "ingest"
    ingest_batch_max_readings: int = Field(5000, ge=1, le=100_000)
    ingest_batch_max_wait_ms: int = Field(200, ge=1, le=60_000)
    ingest_max_payload_bytes: int = Field(256 * 1024, ge=1024)
    ingest_future_tolerance_s: int = Field(300, ge=0)
    ingest_max_age_days: int = Field(400, ge=1)
    ingest_rollup_interval_s: float = Field(2.0, gt=0)
    ingest_rollup_delay_s: float = Field(20.0, ge=0, le=600)
    ingest_max_gap_s: int = Field(900, ge=60, le=1800)
    ingest_metrics_port: int = Field(9101, ge=0, le=65535)  # 0 disables the metrics server
    ingest_receive_maximum: int = Field(20_000, ge=1, le=65535)

    scheduler_metrics_port: int = Field(9102, ge=0, le=65535)  # 0 disables the metrics server
    scheduler_tick_s: float = Field(5.0, gt=0, le=300)

    # OpenADR VTN: the notification outbox's delivery loop (in every API process) and event retention.
    openadr_outbox_poll_s: float = Field(0.25, gt=0, le=60)  # how often idle loops look for new changes
    openadr_webhook_attempts: int = Field(10, ge=1, le=100)  # then the delivery is a dead letter
    openadr_webhook_first_delay_s: float = Field(1.0, gt=0, le=3600)  # doubles per failure
    openadr_webhook_max_delay_s: float = Field(600.0, gt=0, le=86_400)
    openadr_webhook_timeout_s: float = Field(5.0, gt=0, le=120)
    openadr_event_retention_days: float = Field(30.0, gt=0)  # ended events older than this are deleted

    readings_retention_days: int = Field(800, ge=30)
    timescale_compress_after_days: int = Field(7, ge=1)

    @model_validator(mode="after")
    def _refuse_dev_secrets_outside_development(self) -> Self:
        if self.environment == "development":
            return self
        for name in ("mqtt_ingest_password", "mqtt_scheduler_password", "api_signing_key"):
            value: SecretStr = getattr(self, name)
            if value.get_secret_value() in DEV_SECRETS:
                raise ValueError(
                    f"VPP_{name.upper()} still has its development placeholder; set a real secret "
                    f"when VPP_ENVIRONMENT={self.environment}"
                )
        return self


def load_settings(**overrides: object) -> Settings:
    """Read the environment; keyword overrides win (used by the CLI and tests)."""
    return Settings(**overrides)  # type: ignore[arg-type]
