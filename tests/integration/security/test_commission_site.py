"""docs/runbook.md, "Commission a new site", as an operator runs it: register the site and its devices with
`vpp sites add`, issue its secret with `vpp broker-config`, restart the broker; the site's EMS then
connects with its id and secret and ingest stores what it publishes.

Before `vpp sites`, step 1 ("Register it (the API or `vpp` seed tooling)") named tools that did not
exist: the API has no route that creates a site, and the seed code registers only the simulated ones,
so commissioning a real site took hand-written SQL.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from services.cli.sites_cmd import app as sites_app
from tests.integration.ingest_fixtures import running_ingest, scalar
from tests.integration.security.conftest import INGEST_PASSWORD, SecuredBroker, read_secrets, run_broker_config
from tests.support.waiting import wait_for
from vpp.mqtt import telemetry_topic
from vpp.postgres.migrate import upgrade

pytestmark = pytest.mark.integration

COUNT_SQL = """SELECT count(*) FROM readings r JOIN devices d ON d.id = r.device_pk
               JOIN sites s ON s.id = d.site_pk WHERE s.site_id = %s"""


def test_a_new_site_is_commissioned_with_the_runbooks_commands(secured: SecuredBroker, db_url: str) -> None:
    runner = CliRunner()
    added = runner.invoke(
        sites_app,
        ["add", "bakery-7", "--name", "Bakery 7", "--device", "meter-1:meter", "--device", "pv-1:pv:30",
         "--region", "kawasaki", "--pv-kw", "30"],
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    assert "vpp broker-config" in added.output, "it says what comes next"

    issued = read_secrets(run_broker_config("--out-dir", str(secured.auth_dir)))
    assert list(issued) == ["bakery-7"], "only the new site gets a secret"
    secured.secrets.update(issued)
    secured.apply()

    listing = runner.invoke(sites_app, ["list"])
    assert listing.exit_code == 0, listing.output
    line = next(row for row in listing.output.splitlines() if "bakery-7" in row)
    assert "issued" in line, listing.output
    assert "kawasaki" in line, listing.output
    assert issued["bakery-7"] not in listing.output

    now = datetime.now(UTC).replace(microsecond=0)
    with running_ingest(db_url, secured.broker.port, username="ingest", password=INGEST_PASSWORD):
        site = secured.site("bakery-7")
        meter = {"ts": (now - timedelta(minutes=2)).isoformat(), "power_kw": 4.5, "import_kwh": 100.0}
        pv = {"readings": [{"ts": (now - timedelta(minutes=m)).isoformat(), "power_w": 2500} for m in (1, 2, 3)]}
        assert not site.publish(telemetry_topic("bakery-7", "meter-1"), json.dumps(meter).encode()).is_failure
        assert not site.publish(telemetry_topic("bakery-7", "pv-1"), json.dumps(pv).encode()).is_failure
        wait_for(lambda: scalar(db_url, COUNT_SQL, "bakery-7"), lambda n: n == 4)
    assert scalar(db_url, "SELECT count(*) FROM dead_letters") == 0
    pv_kw = "SELECT max(power_kw) FROM readings r JOIN devices d ON d.id = r.device_pk WHERE d.device_id = 'pv-1'"
    assert scalar(db_url, pv_kw) == 2.5


def test_sites_add_refuses_what_ingest_or_the_broker_could_not_use(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    upgrade(db_url)
    monkeypatch.setenv("VPP_DATABASE_URL", db_url)
    runner = CliRunner()
    ok = runner.invoke(sites_app, ["add", "shop-1", "--name", "Shop", "--device", "meter-1:meter"])
    assert ok.exit_code == 0, ok.output

    again = runner.invoke(sites_app, ["add", "shop-1", "--name", "Renamed", "--device", "pv-1:pv"])
    assert again.exit_code == 1
    assert "already registered" in again.output
    assert scalar(db_url, "SELECT name FROM sites WHERE site_id = 'shop-1'") == "Shop", "nothing overwritten"

    refused = [
        ["add", "Shop/2", "--name", "x"],  # a topic level, and the database's own check
        ["add", "shop-2", "--name", "x", "--device", "meter-1:solar"],
        ["add", "shop-2", "--name", "x", "--device", "meter-1"],
        ["add", "shop-2", "--name", "x", "--device", "pv-1:pv:-3"],
        ["add", "shop-2", "--name", "x", "--device", "m+1:meter"],
        ["add", "shop-2", "--name", "x", "--device", "meter-1:meter", "--device", "meter-1:pv"],
        ["add", "ingest", "--name", "x"],  # the ingest service's broker username
        ["add", "scheduler", "--name", "x"],
    ]
    for args in refused:
        result = runner.invoke(sites_app, args)
        assert result.exit_code == 2, (args, result.output)
        assert result.exception is None or isinstance(result.exception, SystemExit), (args, result.exception)
    assert scalar(db_url, "SELECT count(*) FROM sites") == 1

    more = runner.invoke(sites_app, ["add-device", "shop-1", "pv-1:pv:12.5", "ev-1:ev_charger"])
    assert more.exit_code == 0, more.output
    devices = "SELECT string_agg(device_id || '=' || kind, ',' ORDER BY device_id) FROM devices"
    assert scalar(db_url, devices) == "ev-1=ev_charger,meter-1=meter,pv-1=pv"
    assert runner.invoke(sites_app, ["add-device", "nowhere", "meter-1:meter"]).exit_code == 1
    # Stored readings keep their kind's signs: a kind cannot change under them; a rating can.
    assert runner.invoke(sites_app, ["add-device", "shop-1", "meter-1:pv"]).exit_code == 1
    assert runner.invoke(sites_app, ["add-device", "shop-1", "meter-1:meter:80"]).exit_code == 0
    assert scalar(db_url, devices) == "ev-1=ev_charger,meter-1=meter,pv-1=pv"
    assert scalar(db_url, "SELECT rated_power_kw FROM devices WHERE device_id = 'meter-1'") == 80.0
