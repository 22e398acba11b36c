"""Settings of the 2.0b VTN (prefix ``VPP_OADR2B_``), kept apart from the platform's `vpp.settings`."""

from __future__ import annotations

from pathlib import Path
from typing import Self

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Oadr2bSettings"]


class Oadr2bSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VPP_OADR2B_", env_file=".env", extra="ignore")

    vtn_id: str = "KAWASAKI-VPP-VTN"  # VENs reject lower-case VTN IDs
    host: str = "127.0.0.1"
    port: int = Field(default=8443, ge=0, le=65535)
    poll_interval_s: float = Field(default=10.0, gt=0, le=86_400)  # oadrRequestedOadrPollFreq sent at registration
    market_context: str = "urn:kawasaki-vpp:program:kawasaki-vpp-dr"
    # TLS server certificate and key, and the CA that issued the VENs' client certificates.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None
    # The key pair that signs outgoing XML (defaults to the TLS pair, as the 2.0b test profiles do).
    signing_cert: Path | None = None
    signing_key: Path | None = None
    # Plain HTTP without client certificates or signatures: only for a local trial of the protocol.
    insecure_http: bool = False

    @model_validator(mode="after")
    def _tls_or_explicitly_insecure(self) -> Self:
        tls = (self.tls_cert, self.tls_key, self.tls_ca)
        if self.insecure_http:
            return self
        if not all(tls):
            raise ValueError(
                "the 2.0b VTN needs VPP_OADR2B_TLS_CERT, VPP_OADR2B_TLS_KEY and VPP_OADR2B_TLS_CA (VENs are "
                "identified by their client certificates); set VPP_OADR2B_INSECURE_HTTP=true for a local trial"
            )
        return self
