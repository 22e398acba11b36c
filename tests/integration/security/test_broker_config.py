"""`vpp broker-config` against a real Mosquitto: sites are fenced into their own topics, bad passwords are
refused, rotation cuts over when the broker restarts, and ingest still gets every site's data.

Observed with Mosquitto 2.0.11 and the dynamic-security plugin (the assertions accept only what a
secure broker may answer):
- a denied QoS 1 publish gets PUBACK "Not authorized" (0x87) under MQTT v5 and is not delivered;
- a subscription outside the site's own prefix gets SUBACK 0x87;
- a wrong password gets CONNACK "Not authorized" (0x87) or "Bad user name or password" (0x86);
- the plugin reads its file at start only: regenerated files apply when the broker restarts.
"""

from __future__ import annotations

import os
import stat

import pytest
import typer
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode
from typer.testing import CliRunner

from services.cli.broker_cmd import broker_config
from tests.integration.ingest_fixtures import register_depot, running_ingest, scalar
from tests.integration.security.conftest import (
    BAD_CREDENTIALS,
    INGEST_PASSWORD,
    NOT_AUTHORIZED,
    SCHEDULER_PASSWORD,
    TIMEOUT_S,
    WITH_WILL,
    SecuredBroker,
    read_secrets,
    reading,
    run_broker_config,
)
from tests.support.waiting import wait_for
from vpp.mqtt import dr_signal_topic, status_topic, telemetry_topic

pytestmark = pytest.mark.integration


def test_site_cannot_publish_under_another_sites_topic(secured: SecuredBroker) -> None:
    watcher = secured.probe("watch-ingest", "ingest", INGEST_PASSWORD)
    assert watcher.subscribe("vpp/v1/+/+/telemetry")[0].value == 1
    site_a = secured.site("site-a")

    denied = site_a.publish(telemetry_topic("site-b", "meter-1"), b"forged")
    assert denied.value == NOT_AUTHORIZED
    assert site_a.publish("vpp/v1/site-a/dr/signal", b"self-issued plan").value == NOT_AUTHORIZED
    assert not site_a.publish(telemetry_topic("site-a", "meter-1"), b"genuine").is_failure

    # One publisher's messages arrive in order: once the genuine one is in, the forged one never will be.
    assert watcher.next_message() == (telemetry_topic("site-a", "meter-1"), b"genuine")
    assert watcher.messages.empty()


def test_site_cannot_leave_its_last_will_on_another_sites_status(secured: SecuredBroker) -> None:
    watcher = secured.probe("watch-status", "ingest", INGEST_PASSWORD)
    assert watcher.subscribe(status_topic("+"))[0].value == 1
    forged = secured.probe(
        "gw-a-forged", "site-a", secured.secrets["site-a"], will=(status_topic("site-b"), b"offline")
    )
    if not forged.connect_result.is_failure:  # refused at CONNECT, or accepted and the will dropped later
        forged.client.disconnect(reasoncode=ReasonCode(PacketTypes.DISCONNECT, identifier=WITH_WILL))
        assert forged.disconnected.wait(TIMEOUT_S)

    site_a = secured.site("site-a", "gw-a-genuine")
    assert not site_a.publish(status_topic("site-a"), b"online").is_failure
    assert watcher.next_message() == (status_topic("site-a"), b"online")
    assert watcher.messages.empty(), "the forged will arrived"


def test_site_cannot_read_another_sites_dr_signals(secured: SecuredBroker) -> None:
    scheduler = secured.probe("scheduler", "scheduler", SCHEDULER_PASSWORD)
    assert not scheduler.publish(dr_signal_topic("site-b"), b"plan-b", retain=True).is_failure
    assert not scheduler.publish(dr_signal_topic("site-a"), b"plan-a", retain=True).is_failure
    site_a = secured.site("site-a")
    site_b = secured.site("site-b")

    suback = site_a.subscribe(dr_signal_topic("site-b"), "vpp/v1/#", dr_signal_topic("site-a"))
    assert [rc.value for rc in suback] == [NOT_AUTHORIZED, NOT_AUTHORIZED, 1]
    assert site_b.subscribe(dr_signal_topic("site-b"))[0].value == 1
    assert site_b.next_message() == (dr_signal_topic("site-b"), b"plan-b")  # the retained plan is there

    assert not scheduler.publish(dr_signal_topic("site-b"), b"live-b").is_failure
    assert not scheduler.publish(dr_signal_topic("site-a"), b"live-a").is_failure
    assert site_b.next_message() == (dr_signal_topic("site-b"), b"live-b")
    # The broker sends in order: by the time A's live signal arrives, any of B's would have come first.
    seen = [site_a.next_message()]
    while seen[-1][1] != b"live-a":
        seen.append(site_a.next_message())
    assert {topic for topic, _ in seen} == {dr_signal_topic("site-a")}, seen
    assert b"plan-a" in {payload for _, payload in seen}, "A does get its own retained plan"


@pytest.mark.parametrize(
    ("username", "password"),
    [("site-a", "not-the-secret"), ("site-a", None), (None, None), ("nobody", "x"), ("ingest", "wrong")],
    ids=["wrong-password", "no-password", "anonymous", "unknown-user", "wrong-service-password"],
)
def test_bad_credentials_are_refused(secured: SecuredBroker, username: str | None, password: str | None) -> None:
    probe = secured.probe("intruder", username, password)
    assert probe.connect_result.value in (NOT_AUTHORIZED, BAD_CREDENTIALS), probe.connect_result


def test_another_sites_secret_does_not_open_this_site(secured: SecuredBroker) -> None:
    probe = secured.probe("intruder", "site-a", secured.secrets["site-b"])
    assert probe.connect_result.value in (NOT_AUTHORIZED, BAD_CREDENTIALS)


def test_ingest_with_its_account_still_receives_site_data(secured: SecuredBroker, db_url: str) -> None:
    with running_ingest(db_url, secured.broker.port, username="ingest", password=INGEST_PASSWORD):
        site_a = secured.site("site-a")
        assert site_a.publish(telemetry_topic("site-b", "meter-1"), reading(99.0)).value == NOT_AUTHORIZED
        assert not site_a.publish(telemetry_topic("site-a", "meter-1"), reading(12.5)).is_failure
        count_sql = """SELECT count(*) FROM readings r JOIN devices d ON d.id = r.device_pk
                       JOIN sites s ON s.id = d.site_pk WHERE s.site_id = %s"""
        wait_for(lambda: scalar(db_url, count_sql, "site-a"), lambda n: n == 1)
    assert scalar(db_url, count_sql, "site-b") == 0
    assert scalar(db_url, "SELECT power_kw FROM readings") == 12.5
    assert scalar(db_url, "SELECT count(*) FROM dead_letters") == 0


def test_rotation_and_revocation_take_effect_on_reload(secured: SecuredBroker) -> None:
    old_a = secured.site("site-a", "gw-a-old")
    site_b = secured.site("site-b")

    assert run_broker_config("--out-dir", str(secured.auth_dir)) == "", "a plain re-run issues nothing"
    new_secrets = read_secrets(run_broker_config("--out-dir", str(secured.auth_dir), "--rotate", "site-a"))
    assert list(new_secrets) == ["site-a"]
    assert new_secrets["site-a"] != secured.secrets["site-a"]
    assert not old_a.disconnected.is_set(), "nothing changes before the broker reloads"

    secured.apply()
    assert old_a.disconnected.wait(TIMEOUT_S)
    assert not site_b.publish(telemetry_topic("site-b", "meter-1"), b"still here").is_failure
    assert secured.probe("gw-a-stale", "site-a", secured.secrets["site-a"]).connect_result.is_failure
    assert not secured.probe("gw-a-new", "site-a", new_secrets["site-a"]).connect_result.is_failure

    assert run_broker_config("--out-dir", str(secured.auth_dir), "--revoke", "site-b") == ""
    assert "site-b" not in (secured.auth_dir / "passwd").read_text()
    assert "user site-b" not in (secured.auth_dir / "acl").read_text()
    assert '"site-b"' not in (secured.auth_dir / "dynamic-security.json").read_text()
    assert run_broker_config("--out-dir", str(secured.auth_dir)) == "", "a revoked site is not re-issued"
    secured.apply()
    assert site_b.disconnected.wait(TIMEOUT_S)
    assert secured.probe("gw-b-again", "site-b", secured.secrets["site-b"]).connect_result.is_failure


def test_unknown_site_is_an_error_and_changes_nothing(secured: SecuredBroker) -> None:
    before = (secured.auth_dir / "passwd").read_text()
    app = typer.Typer()
    app.command()(broker_config)
    result = CliRunner().invoke(app, ["--out-dir", str(secured.auth_dir), "--rotate", "no-such-site"])
    assert result.exit_code == 2
    assert "no-such-site" in result.stderr
    assert (secured.auth_dir / "passwd").read_text() == before
    assert stat.S_IMODE(os.stat(secured.auth_dir / "passwd").st_mode) == 0o640


def test_no_issue_rewrites_the_files_without_issuing_secrets(secured: SecuredBroker, db_url: str) -> None:
    register_depot(db_url, "site-c")
    assert run_broker_config("--out-dir", str(secured.auth_dir), "--no-issue") == ""
    assert "site-c" not in (secured.auth_dir / "passwd").read_text()
    assert list(read_secrets(run_broker_config("--out-dir", str(secured.auth_dir)))) == ["site-c"]
    assert "user site-c" in (secured.auth_dir / "acl").read_text()
