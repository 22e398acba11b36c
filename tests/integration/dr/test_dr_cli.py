"""`vpp dr create` records a request the scheduler then carries out, like the API's; `vpp dr events` lists it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from typer.testing import CliRunner

from services.cli.database import CliError
from services.cli.dr_cmd import app as dr_app
from services.dr_scheduler.scheduler import Scheduler
from tests.integration.dr.test_dr_api import RecordingSink
from tests.integration.ingest_fixtures import register_depot
from vpp.domain.slots import JST
from vpp.postgres import dr_events as store

pytestmark = pytest.mark.integration


def test_create_an_increase_event_from_the_command_line(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VPP_DATABASE_URL", db_url)
    monkeypatch.setenv("COLUMNS", "200")  # the events table is wide; the runner's default 80 would wrap ids
    register_depot(db_url, "depot-a")
    day = datetime.now(UTC).astimezone(JST).date() + timedelta(days=1)
    start, end = f"{day}T11:00+09:00", f"{day}T13:00+09:00"
    runner = CliRunner()
    created = runner.invoke(
        dr_app, ["create", "--start", start, "--end", end, "--kw", "25", "--direction", "increase",
                 "--site", "depot-a", "--event-id", "cli-up-1"],
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    assert "increase 25 kW" in created.output
    misaligned = runner.invoke(dr_app, ["create", "--start", f"{day}T11:10+09:00", "--end", end, "--kw", "5"])
    assert misaligned.exit_code == 2
    assert "slot boundaries" in misaligned.output
    assert runner.invoke(dr_app, ["create", "--start", f"{day}T11:00", "--end", end, "--kw", "5"]).exit_code == 2
    listing = runner.invoke(dr_app, ["events"])
    assert "cli-up-1" in listing.output
    assert "increase" in listing.output

    with psycopg.connect(db_url) as conn:
        event = store.get_event(conn, "cli-up-1")
        assert event is not None
        assert (event.direction, event.requested_kw, event.site_ids, event.pending_action) == (
            "increase", 25.0, ("depot-a",), "plan",
        )  # fmt: skip
        Scheduler(conn, RecordingSink()).process_requests(datetime.now(UTC))
        planned = store.get_event(conn, "cli-up-1")
        assert planned is not None
        assert planned.pending_action is None  # allocated (all shortfall: the depot has no history to forecast)
        assert planned.shortfall_kw == 25.0


def test_create_refuses_what_the_api_refuses(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """An event for no site, an unknown region, or a window already over is refused with one line, as the API
    refuses it: recorded, it was "dispatched" to nobody, or planned, sent and settled for a past window."""
    monkeypatch.setenv("VPP_DATABASE_URL", db_url)
    register_depot(db_url, "depot-a")
    today = datetime.now(UTC).astimezone(JST).date()
    tomorrow = today + timedelta(days=1)
    window = ["--start", f"{tomorrow}T17:00+09:00", "--end", f"{tomorrow}T18:00+09:00", "--kw", "5"]
    runner = CliRunner()
    for extra, says in (
        (["--site", "ghost"], "no such site: ghost"),
        (["--region", "nowhere"], "no region 'nowhere'"),
        (["--region", "leading-area-private"], "has no member sites"),
        (["--start", f"{today - timedelta(days=3)}T17:00+09:00", "--end", f"{today - timedelta(days=3)}T18:00+09:00"],
         "already ended"),
    ):  # fmt: skip
        result = runner.invoke(dr_app, ["create", *window, *extra, "--event-id", "cli-refused"])
        assert result.exit_code != 0, (extra, result.output)
        assert says in " ".join(f"{result.output} {result.exception}".split()), (extra, result.output)
    with psycopg.connect(db_url) as conn:
        assert store.get_event(conn, "cli-refused") is None

    assert runner.invoke(dr_app, ["create", *window, "--event-id", "cli-once"]).exit_code == 0
    again = runner.invoke(dr_app, ["create", *window, "--event-id", "cli-once"])
    assert again.exit_code != 0
    assert isinstance(again.exception, CliError)  # `vpp` prints it as one line
    assert "already exists" in str(again.exception)
