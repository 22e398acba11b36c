"""Typed settings, read from the environment (prefix ``VPP_``) and an optional ``.env`` file.

No module-level instance: each process composes what it needs by calling `load_settings()` once,
so tests build settings explicitly instead of patching globals.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Literal, Self
from urllib.parse import urlparse

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["DEV_SECRETS", "MissingSecretError", "Settings", "load_settings", "settings_or_exit"]

# Placeholder secrets that make a fresh checkout run: filled in for unset secrets in development only,
# and refused outside development.
_DEV_PLACEHOLDERS = {
    "mqtt_ingest_password": "dev-ingest-password",
    "mqtt_scheduler_password": "dev-scheduler-password",
    "api_signing_key": "dev-api-signing-key-change-me",
}
DEV_SECRETS = frozenset(_DEV_PLACEHOLDERS.values())


class MissingSecretError(RuntimeError):
    """A secret a service needs is not set (outside development there are no defaults)."""


_DATABASE_URL = re.compile(r"^postgres(ql)?(\+\w+)?://")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VPP_", env_file=".env", extra="ignore")

    # Production unless said otherwise: `vpp up` says development explicitly, a deployment need not.
    environment: Literal["development", "test", "production"] = "production"
    data_dir: Path = Path(".vpp-data")
    log_level: str = "INFO"
    log_format: Literal["json", "console"] = "json"

    # Unset means "start a private one under data_dir" (embedded default).
    database_url: str | None = None
    mqtt_url: str | None = None  # mqtt://host:port
    # Several independent brokers (comma-separated, e.g. mqtt://mqtt-a:1883,mqtt://mqtt-b:1883): ingest
    # subscribes on every one, the scheduler publishes DR signals to every one (README "Broker
    # redundancy"). Wins over VPP_MQTT_URL, which then must be one of them; unset, VPP_MQTT_URL alone.
    mqtt_urls: str | None = None

    mqtt_ingest_username: str = "ingest"
    # Further ingest workers' broker usernames, comma-separated (`vpp broker-config` gives each the
    # ingest password and role; a worker connects with VPP_MQTT_INGEST_USERNAME set to its own).
    mqtt_ingest_accounts: str = ""
    mqtt_ingest_password: SecretStr | None = None
    mqtt_scheduler_username: str = "scheduler"
    mqtt_scheduler_password: SecretStr | None = None
    api_signing_key: SecretStr | None = None
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
    # Request guard (services/api/request_guard.py): larger bodies get 413, deeper JSON 400.
    api_max_body_bytes: int = Field(1024 * 1024, ge=1024, le=1024**3)
    api_max_json_depth: int = Field(32, ge=2, le=1000)
    # Failed token requests allowed per minute, per client id and per source address (then 429).
    api_token_failures_per_client_per_min: int = Field(10, ge=1, le=100_000)
    api_token_failures_per_address_per_min: int = Field(30, ge=1, le=100_000)
    # The API's /metrics answers loopback clients, and others presenting this bearer token.
    api_metrics_token: SecretStr | None = None

    # Where the ingest and scheduler metrics servers listen; 0.0.0.0 exposes them (docs/runbook.md).
    metrics_host: str = "127.0.0.1"

    ingest_client_id: str = "ingest-1"
    # Empty (default): every worker holds a plain subscription that Mosquitto restores on a restart
    # and keeps the sites of its partition. A group name uses `$share/<group>/…` instead, for brokers
    # that restore shared subscriptions (Mosquitto 2.0 does not: a window on every broker restart).
    ingest_share_group: str = ""
    ingest_partition: int = Field(0, ge=0)
    ingest_partitions: int = Field(1, ge=1, le=64)
    # Publish the end-to-end confirmation (`vpp/v1/{site}/stored`) after each commit.
    ingest_confirm: bool = True
    # High availability: confirm only readings a standby has flushed too (see vpp.postgres.replication);
    # a batch not replicated within the wait is acknowledged to the broker but not confirmed to the site,
    # whose gateway resends it later (storage de-duplicates; the resend is confirmed once replicated).
    ingest_confirm_replicated: bool = False
    ingest_confirm_replicated_wait_s: float = Field(2.0, gt=0, le=60)
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
    # Names this scheduler process in its MQTT client id and lease (several may run, one leads:
    # services/dr_scheduler/leader.py). Empty: host name and process id.
    scheduler_instance: str = Field("", max_length=64, pattern=r"^[A-Za-z0-9_.-]*$")
    scheduler_lease_poll_s: float = Field(1.0, gt=0, le=60)  # how often a standby asks for the lead

    # OpenADR VTN: the notification outbox's delivery loop (in every API process) and event retention.
    openadr_outbox_poll_s: float = Field(0.25, gt=0, le=60)  # how often idle loops look for new changes
    openadr_webhook_attempts: int = Field(10, ge=1, le=100)  # then the delivery is a dead letter
    openadr_webhook_first_delay_s: float = Field(1.0, gt=0, le=3600)  # doubles per failure
    openadr_webhook_max_delay_s: float = Field(600.0, gt=0, le=86_400)
    openadr_webhook_timeout_s: float = Field(5.0, gt=0, le=120)
    openadr_event_retention_days: float = Field(30.0, gt=0)  # ended events older than this are deleted
    # Webhooks to loopback, link-local (cloud metadata), unspecified, multicast or reserved addresses: refused
    # unless allowed (vpp/domain/callback_address.py). Unset: allowed only in development and test, where VENs
    # and their receivers run on the same machine.
    openadr_callback_allow_local: bool | None = None
    # OpenADR MQTT notifier binding (services/api/openadr/mqtt_notifier.py). Unset: webhooks only.
    # The broker URL VENs are told in `GET /notifiers` (e.g. mqtts://broker.example.jp:8883) ...
    openadr_mqtt_url: str | None = None
    # ... and where the API publishes, if it reaches the same broker by another address.
    openadr_mqtt_publish_url: str | None = None
    mqtt_openadr_username: str = "openadr-vtn"  # the API's publisher account (`vpp broker-config`)
    # Further API processes' publisher usernames, comma-separated: the broker binds a session to its
    # username, so two API processes on one account would keep replacing each other's connection.
    mqtt_openadr_accounts: str = ""
    mqtt_openadr_password: SecretStr | None = None
    openadr_mqtt_first_delay_s: float = Field(1.0, gt=0, le=3600)  # retry back-off while the broker is away
    openadr_mqtt_max_delay_s: float = Field(30.0, gt=0, le=3600)

    readings_retention_days: int = Field(800, ge=30)
    timescale_compress_after_days: int = Field(7, ge=1)

    @field_validator("database_url")
    @classmethod
    def _database_url_has_a_scheme(cls, value: str | None) -> str | None:
        # Without a scheme libpq reads the text as a host list and fails far away from the cause.
        if value and not _DATABASE_URL.match(value):
            raise ValueError("must look like postgresql://user@host:5432/dbname")
        return value

    @field_validator("mqtt_url", "openadr_mqtt_url", "openadr_mqtt_publish_url")
    @classmethod
    def _mqtt_url_has_a_scheme(cls, value: str | None) -> str | None:
        if value:
            parsed = urlparse(value)
            if parsed.scheme not in {"mqtt", "mqtts"} or not parsed.hostname:
                raise ValueError("must look like mqtt://host:1883 or mqtts://host:8883")
        return value

    @field_validator("mqtt_urls")
    @classmethod
    def _mqtt_urls_have_a_scheme(cls, value: str | None) -> str | None:
        if value:
            urls = [u.strip() for u in value.split(",") if u.strip()]
            if not urls:
                raise ValueError("must list one or more broker URLs, comma-separated")
            for url in urls:
                parsed = urlparse(url)
                if parsed.scheme not in {"mqtt", "mqtts"} or not parsed.hostname:
                    raise ValueError(f"{url!r} must look like mqtt://host:1883 or mqtts://host:8883")
            if len({urlparse(u).scheme for u in urls}) > 1:
                raise ValueError("every broker of the list must use the same scheme (all mqtt:// or all mqtts://)")
        return value

    @model_validator(mode="after")
    def _one_broker_list(self) -> Self:
        # Both set and disagreeing is an operator who changed one and forgot the other: say so.
        if self.mqtt_url and self.mqtt_urls and self.mqtt_url.strip() not in self.broker_urls:
            raise ValueError("VPP_MQTT_URL is not one of VPP_MQTT_URLS: set only VPP_MQTT_URLS")
        return self

    @model_validator(mode="after")
    def _partition_in_range(self) -> Self:
        if self.ingest_partition >= self.ingest_partitions:
            raise ValueError(
                f"VPP_INGEST_PARTITION={self.ingest_partition} must be below VPP_INGEST_PARTITIONS={self.ingest_partitions}"
            )
        return self

    @model_validator(mode="after")
    def _development_placeholders_only_in_development(self) -> Self:
        for name, placeholder in _DEV_PLACEHOLDERS.items():
            value: SecretStr | None = getattr(self, name)
            if self.environment == "development":
                if value is None:
                    setattr(self, name, SecretStr(placeholder))
            elif value is not None and value.get_secret_value() in DEV_SECRETS:
                raise ValueError(
                    f"VPP_{name.upper()} still has its development placeholder; set a real secret "
                    f"when VPP_ENVIRONMENT={self.environment}"
                )
        return self

    def secret(
        self,
        name: Literal["mqtt_ingest_password", "mqtt_scheduler_password", "api_signing_key", "mqtt_openadr_password"],
    ) -> str:
        """The secret's value; `MissingSecretError` (one line saying what to set) when it is unset."""
        value: SecretStr | None = getattr(self, name)
        if value is None or not value.get_secret_value():
            raise MissingSecretError(
                f"VPP_{name.upper()} is not set: set it (a long random value, e.g. `openssl rand -base64 32`), "
                f"or VPP_ENVIRONMENT=development for a local trial (VPP_ENVIRONMENT is {self.environment})"
            )
        return value.get_secret_value()

    @property
    def broker_urls(self) -> list[str]:
        """The configured brokers, in order (VPP_MQTT_URLS, else VPP_MQTT_URL); empty: the embedded one."""
        if self.mqtt_urls:
            return list(dict.fromkeys(u.strip() for u in self.mqtt_urls.split(",") if u.strip()))
        return [self.mqtt_url] if self.mqtt_url else []

    @property
    def openadr_local_callbacks_allowed(self) -> bool:
        if self.openadr_callback_allow_local is not None:
            return self.openadr_callback_allow_local
        return self.environment in ("development", "test")

    @property
    def openadr_publisher_accounts(self) -> list[str]:
        """Every API process's MQTT notifier username: the configured one first."""
        extra = [name.strip() for name in self.mqtt_openadr_accounts.split(",") if name.strip()]
        return list(dict.fromkeys([self.mqtt_openadr_username, *extra]))

    @property
    def ingest_accounts(self) -> list[str]:
        """Every ingest worker's broker username: the configured one first."""
        extra = [name.strip() for name in self.mqtt_ingest_accounts.split(",") if name.strip()]
        return list(dict.fromkeys([self.mqtt_ingest_username, *extra]))


def load_settings(**overrides: object) -> Settings:
    """Read the environment; keyword overrides win (used by the CLI and tests)."""
    return Settings(**overrides)  # type: ignore[arg-type]


def settings_or_exit(**overrides: object) -> Settings:
    """`load_settings` for a process's `main()`: a bad or missing setting ends it with one clear line."""
    try:
        return load_settings(**overrides)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()))
        message = str(first.get("msg", error)).removeprefix("Value error, ")
        sys.exit(f"vpp: invalid setting{' VPP_' + where.upper() if where else ''}: {message}")
