"""`vpp bench ha`, shortened: 20 sites publish while the PostgreSQL primary, the leading scheduler and an
ingest worker are SIGKILLed in turn (bench/ha.py). Nothing confirmed or published may be
lost or doubled, no DR event may be dispatched twice, a DR signal issued during each fault must reach
its site, and ingest must commit again within the issue's 30 s of losing the primary.

It also pins what pg_auto_failover sets up, which "confirmed only once on two servers" rests on.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from bench.ha import FAULTS, run_ha_faults
from bench.ha_formation import Formation, pg_auto_failover_installed
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _kept_rows(url: str) -> list[tuple[int]] | None:
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=2) as conn:
            return conn.execute("SELECT n FROM kept").fetchall()
    except psycopg.OperationalError:
        return None  # no writable server yet: the failover is under way


@pytest.fixture(autouse=True)
def _needs_pg_auto_failover() -> None:
    if not pg_auto_failover_installed():
        pytest.fail("pg_auto_failover is not installed: run `make deps` (postgresql-15-auto-failover)")


def test_primary_scheduler_and_ingest_sigkills_lose_nothing_and_double_nothing(tmp_path: Path) -> None:
    reports = run_ha_faults(sites=20, duration_s=20.0, interval_s=1.0, workdir=tmp_path)
    summary = "\n".join(
        f"{r.fault}: published {r.published}, confirmed {r.confirmed}, stored {r.stored}, lost {r.lost}, "
        f"duplicates {r.duplicates}, ingest back {r.ingest_back_s:.1f} s, DR signal {r.dr_signal_s:.1f} s, "
        f"dispatched twice {r.dispatched_twice}; {r.problems}"
        for r in reports
    )
    print(summary)
    assert [r.fault for r in reports] == [f.name for f in FAULTS]
    for r in reports:
        assert r.ok, summary
        # Not vacuous: every reading was published, confirmed to its gateway and stored once.
        assert r.published == r.confirmed == r.stored == 20 * 20, summary
    primary = reports[0]
    assert primary.fault == "postgres_primary_sigkill"
    assert primary.ingest_back_s < 30, summary  # the bound for a lost primary


def test_synchronous_standby_switchover_and_replacing_a_server(tmp_path: Path) -> None:
    formation = Formation(tmp_path / "pg").start()
    try:
        # As the superuser: pg_stat_replication shows its details only to privileged roles.
        with psycopg.connect(formation.url(user="postgres"), autocommit=True) as conn:
            settings = conn.execute(
                """SELECT current_setting('synchronous_commit'), current_setting('synchronous_standby_names'),
                          (SELECT sync_state FROM pg_stat_replication), pg_is_in_recovery()"""
            ).fetchone()
        assert settings is not None
        synchronous_commit, standby_names, sync_state, in_recovery = settings
        assert synchronous_commit == "on"
        assert standby_names.startswith("ANY 1 (pgautofailover_standby_")
        assert sync_state == "quorum"  # the one standby is the quorum: a commit waits for its flush
        assert not in_recovery  # target_session_attrs=read-write found the primary, whichever host is first
        # Planned switchover and fail back (the runbook's commands): roles swap, the URL follows.
        first = formation.primary()
        formation.switchover()
        formation.wait_healthy(120)
        assert formation.primary() != first
        with psycopg.connect(formation.url(), autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (n int)")
            conn.execute("INSERT INTO kept VALUES (1)")
        # Replacing a server (the runbook's drop + node): the standby is lost for good, a new one clones.
        standby = next(name for name in formation.node_ports if name != formation.primary())
        formation.replace(standby)
        with psycopg.connect(formation.url(user="postgres", dbname="vpp"), autocommit=True) as conn:
            row = conn.execute("SELECT sync_state FROM pg_stat_replication").fetchone()
        assert row == ("quorum",)
        formation.sigkill(formation.primary())  # and the new standby carries the data on
        assert wait_for(lambda: _kept_rows(formation.url()), bool, timeout_s=60) == [(1,)]
    finally:
        formation.destroy()
