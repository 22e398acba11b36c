"""`vpp up` runs the production broker rules: its embedded Mosquitto loads the dynamic-security file
generated as `vpp broker-config` generates it, every simulated site connects with its own account, and
ingest and the scheduler with theirs.

The platform is started as a person starts it (`vpp up` in a child process, tests/e2e/platform.py),
on a database the test prepared with one extra site, `intruder`, commissioned the operator's way
(`vpp broker-config` issuing its secret). The intruder then attacks the running platform with its
own credentials while the simulated sites keep publishing; their telemetry must all keep arriving.
"""

from __future__ import annotations

import json
import logging
import operator
import os
import subprocess
import sys
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import pytest

from tests.e2e.platform import running_platform
from tests.integration.ingest_fixtures import register_depot, scalar
from tests.integration.security.conftest import BAD_CREDENTIALS, NOT_AUTHORIZED, Probe
from tests.support.waiting import wait_for
from vpp.embedded.broker import EmbeddedBroker
from vpp.mqtt import dr_signal_topic, telemetry_topic
from vpp.postgres.migrate import upgrade

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
INTRUDER = "intruder"
SITE_READINGS = """SELECT count(*) FROM readings r JOIN devices d ON d.id = r.device_pk
                   JOIN sites s ON s.id = d.site_pk WHERE s.site_id = %s"""


def _site_readings(db_url: str, site_id: str) -> int:
    return int(scalar(db_url, SITE_READINGS, site_id))


def issue_intruder_secret(db_url: str, work: Path) -> str:
    """`vpp broker-config` as an operator runs it against the development database `vpp up` will use."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VPP_")}
    env.update(PYTHONPATH=str(REPO), VPP_DATABASE_URL=db_url, VPP_ENVIRONMENT="development")
    result = subprocess.run(
        [sys.executable, "-m", "services.cli.main", "broker-config", "--out-dir", str(work / "operator-auth")],
        cwd=work, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    site_id, secret = result.stdout.strip().split("\t")
    assert site_id == INTRUDER
    return secret


def test_vpp_up_enforces_the_broker_roles_on_its_own_sites(db_url: str, tmp_path: Path) -> None:
    upgrade(db_url)
    register_depot(db_url, INTRUDER)
    secret = issue_intruder_secret(db_url, tmp_path)
    probes: list[Probe] = []
    with running_platform(tmp_path, sites=3, backfill_hours=1.5, env={"VPP_DATABASE_URL": db_url}) as platform:
        screen = (tmp_path / "vpp-up.log").read_text()
        assert "roles enforced (dynamic security)" in screen, screen
        # The accounts `vpp up` gave its broker: each simulated site under its own site role, the
        # commissioned intruder kept, ingest and the scheduler on theirs.
        dynsec = json.loads((tmp_path / "vpp-data" / "broker" / "auth" / "dynamic-security.json").read_text())
        roles = {c["username"]: [r["rolename"] for r in c["roles"]] for c in dynsec["clients"]}
        for site in (*platform.site_ids, INTRUDER):
            assert roles[site] == [f"site:{site}"], roles
        assert roles["ingest"] == ["ingest"]
        assert roles["scheduler"] == ["dr-scheduler"]
        victim, other = platform.site_ids[0], platform.site_ids[1]
        port = platform.broker_port

        def connect(client_id: str, username: str | None, password: str | None) -> Probe:
            probe = Probe(port, client_id, username, password)
            probes.append(probe)
            return probe

        # No way in without an account: anonymous, or a service account with a guessed password.
        assert connect("anon", None, None).connect_result.value in (NOT_AUTHORIZED, BAD_CREDENTIALS)
        assert connect("guess", "ingest", "dev-ingest-passw0rd").connect_result.value in (
            NOT_AUTHORIZED,
            BAD_CREDENTIALS,
        )
        assert connect("guess-site", victim, secret).connect_result.value in (NOT_AUTHORIZED, BAD_CREDENTIALS)

        # The intruder connects with its own credentials but ingest's client id: the broker replaces the
        # id by the username, so ingest keeps its session (the readings below keep arriving).
        attacker = connect("ingest-1", INTRUDER, secret)
        assert not attacker.connect_result.is_failure, attacker.connect_result
        before = {site: int(str(scalar(db_url, SITE_READINGS, site))) for site in platform.site_ids}

        forged = telemetry_topic(victim, "forged-meter")
        assert attacker.publish(forged, b'{"power_kw": 999}').value == NOT_AUTHORIZED
        assert attacker.publish(dr_signal_topic(other), b'{"forged": true}', retain=True).value == NOT_AUTHORIZED
        filters = [
            "$share/ingest/vpp/v1/+/+/telemetry",
            "$SYS/#",
            dr_signal_topic(victim),
            f"vpp/v1/{victim}/+/telemetry",
            "vpp/v1/+/+/telemetry",
            "#",
        ]
        assert [rc.value for rc in attacker.subscribe(*filters)] == [NOT_AUTHORIZED] * len(filters)
        # Its own topics work: the rules are the site role, not a blanket refusal.
        own = f'{{"ts": "{datetime.now(UTC).replace(microsecond=0).isoformat()}", "power_kw": 3.5}}'
        assert not attacker.publish(telemetry_topic(INTRUDER, "meter-1"), own.encode()).is_failure
        assert wait_for(lambda: int(str(scalar(db_url, SITE_READINGS, INTRUDER))), lambda n: n == 1, 30) == 1
        attacker.close()
        # The scheduler's client id, likewise, only names the intruder's own session.
        hijacker = connect("dr-scheduler", INTRUDER, secret)
        assert not hijacker.connect_result.is_failure

        # Every simulated site's telemetry is still stored, after all of the above.
        for site in platform.site_ids:
            wait_for(partial(_site_readings, db_url, site), partial(operator.lt, before[site]), 60)
        assert scalar(db_url, "SELECT count(*) FROM devices WHERE device_id = 'forged-meter'") == 0
        assert scalar(db_url, "SELECT count(*) FROM dead_letters") == 0
        for probe in probes:
            probe.close()


def test_the_amqtt_fallback_says_that_it_enforces_no_roles(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    broker = EmbeddedBroker(tmp_path / "broker", prefer_mosquitto=False)
    with caplog.at_level(logging.WARNING, logger="vpp.embedded.broker"):
        info = broker.start()
    try:
        assert not info.mqtt5
        assert not broker.roles_enforced
        assert broker.roles == "amqtt: roles NOT enforced"
        assert any("roles are NOT enforced" in r.getMessage() for r in caplog.records), caplog.records
    finally:
        broker.stop()


def test_a_broker_left_behind_on_the_folder_is_stopped_before_vpp_up_starts_its_own(tmp_path: Path) -> None:
    """After `vpp up` was killed with SIGKILL its Mosquitto keeps running with the old accounts; the
    next `vpp up` stops exactly that process (matched by its configuration file), nothing else."""
    left = EmbeddedBroker(tmp_path / "broker")
    left.start()
    other = EmbeddedBroker(tmp_path / "elsewhere")
    other.start()
    try:
        assert left.pid is not None
        assert other.pid is not None
        assert EmbeddedBroker(tmp_path / "broker").stop_leftover() == left.pid
        assert left._process is not None
        assert left._process.wait(5) is not None
        assert other._process is not None
        assert other._process.poll() is None, "another folder's broker must be left alone"
        assert EmbeddedBroker(tmp_path / "broker").stop_leftover() is None
    finally:
        left.stop()
        other.stop()
