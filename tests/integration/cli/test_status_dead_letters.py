"""`vpp status` as an installer reads it to learn why a site's messages were refused: `--dead-letters N` lists
the newest with reason, topic and detail, and `--site` narrows them (and the counts by reason) to that site.

Before, the CLI showed only counts by reason for all sites together, `--site` included; the detail took SQL.
"""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from services.cli.status_cmd import status
from tests.integration.ingest_fixtures import register_depot, running_ingest, scalar
from tests.support.mqtt_publisher import GatewayPublisher
from tests.support.waiting import wait_for
from vpp.embedded.broker import EmbeddedBroker

pytestmark = pytest.mark.integration


def test_status_lists_a_sites_newest_dead_letters_with_their_detail(
    db_url: str, broker: EmbeddedBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    register_depot(db_url, "depot-a")
    register_depot(db_url, "depot_b")  # '_' would be a LIKE wildcard: depot-a's filter must not match it
    with running_ingest(db_url, broker.port):
        gateway = GatewayPublisher("127.0.0.1", broker.port)
        gateway.publish("vpp/v1/depot-a/meter-1/telemetry", b'{"ts": "2026-12-05T10:00:00", "power_kw": 1}')
        gateway.publish("vpp/v1/depot_b/meter-1/telemetry", b"not json")
        gateway.publish("vpp/v1/depot_b/pv-1/telemetry", b'{"ts": "2026-12-05T10:00:00+09:00", "soc_pct": 5}')
        gateway.wait_acked()
        gateway.close()
        wait_for(lambda: scalar(db_url, "SELECT count(*) FROM dead_letters"), lambda n: n == 3)
    monkeypatch.setenv("VPP_DATABASE_URL", db_url)
    monkeypatch.setenv("COLUMNS", "250")
    app = typer.Typer()
    app.command()(status)

    mine = CliRunner().invoke(app, ["--site", "depot-a", "--dead-letters", "5"])
    assert mine.exit_code == 0, mine.output
    assert "Newest 1 dead letters" in mine.output
    assert "has no UTC offset" in mine.output, "the detail says what to fix"
    assert "vpp/v1/depot-a/meter-1/telemetry" in mine.output
    assert "malformed_json" not in mine.output, "another site's dead letters are not this site's"
    assert "depot_b" not in mine.output

    everyone = CliRunner().invoke(app, ["--dead-letters", "2"])
    assert everyone.exit_code == 0, everyone.output
    assert "Newest 2 dead letters" in everyone.output
    assert "malformed_json" in everyone.output
    plain = CliRunner().invoke(app, [])
    assert "Newest" not in plain.output, "the list is asked for, the counts are always there"
    assert "Dead letters by reason" in plain.output
