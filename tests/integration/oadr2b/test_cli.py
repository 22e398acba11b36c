"""`vpp oadr2b add-ven/list/revoke`: onboarding refuses unknown sites and malformed fingerprints."""

from __future__ import annotations

import psycopg
import pytest
from typer.testing import CliRunner

from services.cli.oadr2b_cmd import app
from vpp.postgres.registry import SiteRecord, register_site

pytestmark = pytest.mark.integration
FINGERPRINT = "AA:BB:CC:DD:EE:FF:00:11:22:33"


def test_onboard_list_and_revoke_a_ven(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VPP_DATABASE_URL", db_url)
    monkeypatch.setenv("COLUMNS", "200")
    with psycopg.connect(db_url) as conn:
        register_site(conn, SiteRecord("depot-a", "Depot A", 35.6, 139.6), ())
        conn.commit()
    runner = CliRunner()
    added = runner.invoke(app, ["add-ven", "depot-gw", "--site", "depot-a", "--fingerprint", FINGERPRINT.lower()])
    assert added.exit_code == 0, added.output
    assert "site:depot-a" in added.output
    again = runner.invoke(app, ["add-ven", "depot-gw", "--site", "depot-a", "--fingerprint", FINGERPRINT])
    assert (again.exit_code, "already exists" in again.output) == (1, True)
    unknown = runner.invoke(app, ["add-ven", "other", "--site", "nowhere", "--fingerprint", "00" + FINGERPRINT[2:]])
    assert (unknown.exit_code, "unknown sites" in unknown.output) == (1, True)
    malformed = runner.invoke(app, ["add-ven", "other", "--site", "depot-a", "--fingerprint", "not-a-fingerprint"])
    assert (malformed.exit_code, "hex pairs" in malformed.output) == (1, True)

    listing = runner.invoke(app, ["list"])
    assert "depot-gw" in listing.output
    assert runner.invoke(app, ["revoke", "depot-gw"]).exit_code == 0
    assert runner.invoke(app, ["revoke", "depot-gw"]).exit_code == 1
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT fingerprint, revoked_at IS NOT NULL FROM oadr2b_vens").fetchone()
    assert row == (FINGERPRINT, True)


def test_serve_refuses_to_start_without_tls_settings(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VPP_DATABASE_URL", db_url)
    for name in ("TLS_CERT", "TLS_KEY", "TLS_CA", "INSECURE_HTTP"):
        monkeypatch.delenv(f"VPP_OADR2B_{name}", raising=False)
    result = CliRunner().invoke(app, ["serve"])
    assert result.exit_code == 2
    assert "VPP_OADR2B_TLS_CERT" in result.output
