"""Two standbys and `number_sync_standbys = 1` (deploy/ha/README.md's layout): after the primary is
lost, the promoted node gets a synchronous standby back without waiting for the lost node, and with
only one node left a commit waits instead of being confirmed from one server.

With one standby, pg_auto_failover runs the promoted node alone (`wait_primary`, synchronous
replication off) until the old node is back. With two, `wait_primary` lasts only until the other
standby follows the new primary (seconds; the test prints it): writes taken in that window are
still on one server, which this test shows (it prints the first write's synchronous_standby_names).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psycopg
import pytest

from bench.ha_formation import Formation, pg_auto_failover_installed
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(autouse=True)
def _needs_pg_auto_failover() -> None:
    if not pg_auto_failover_installed():
        pytest.fail("pg_auto_failover is not installed: run `make deps` (postgresql-15-auto-failover)")


def _node_url(formation: Formation, name: str) -> str:
    # One server, no target_session_attrs: to read a standby directly. As the superuser because
    # pg_stat_replication shows its details only to privileged roles.
    return f"postgresql://postgres@127.0.0.1:{formation.node_ports[name]}/vpp?connect_timeout=2"


def _replication(formation: Formation, name: str) -> tuple[str, list[tuple[str, str]]] | None:
    """The node's synchronous_standby_names and its standbys' (application_name, sync_state)."""
    try:
        with psycopg.connect(_node_url(formation, name), autocommit=True) as conn:
            names_row = conn.execute("SELECT current_setting('synchronous_standby_names')").fetchone()
            rows = conn.execute(
                "SELECT application_name, sync_state FROM pg_stat_replication ORDER BY application_name"
            ).fetchall()
    except psycopg.OperationalError:
        return None
    assert names_row is not None
    return str(names_row[0]), [(str(a), str(s)) for a, s in rows]


def _insert(url: str, n: int) -> str | None:
    """Insert `n`; the synchronous_standby_names the committing server had, or None if none took it."""
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=2) as conn, conn.transaction():
            # Read in the writing transaction: a reload in between would show at the next one only.
            names = conn.execute("SELECT current_setting('synchronous_standby_names')").fetchone()
            conn.execute("INSERT INTO kept VALUES (%s)", (n,))
    except psycopg.OperationalError:
        return None  # no writable server yet: the failover is under way
    assert names is not None
    return str(names[0])


def _rows_on(formation: Formation, name: str) -> list[int]:
    try:
        with psycopg.connect(_node_url(formation, name), autocommit=True) as conn:
            return [int(n) for (n,) in conn.execute("SELECT n FROM kept ORDER BY n").fetchall()]
    except psycopg.OperationalError:
        return []  # the node is (re)starting


def _states_of(formation: Formation) -> dict[str, str]:
    """Each node's state where reported and assigned agree."""
    return {s.name: s.reported for s in formation.states() if s.reported == s.assigned}


def _primary_or_none(formation: Formation) -> str | None:
    try:
        return formation.primary()
    except RuntimeError:
        return None


def test_two_standbys_keep_a_synchronous_standby_after_the_primary_is_lost(tmp_path: Path) -> None:
    formation = Formation(tmp_path / "pg", standbys=2)
    try:
        formation.start()
        first = formation.primary()
        standbys = sorted(name for name in formation.node_ports if name != first)
        before = wait_for(lambda: _replication(formation, first), lambda r: r is not None and len(r[1]) == 2)
        assert before is not None
        names, replication = before
        # A quorum of one among both standbys: a commit returns once either has flushed it.
        assert names.startswith("ANY 1 (pgautofailover_standby_"), names
        assert names.count("pgautofailover_standby_") == 2, names
        assert [state for _name, state in replication] == ["quorum", "quorum"], replication
        with psycopg.connect(formation.url(), autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (n int)")
            conn.execute("INSERT INTO kept VALUES (1)")

        killed_at = time.monotonic()
        formation.sigkill(first)
        # Failover seconds: from the SIGKILL until the multi-host URL takes a write again.
        first_write_names = wait_for(lambda: _insert(formation.url(), 2), lambda n: n is not None, 60, 0.2)
        failover_s = time.monotonic() - killed_at
        # The monitor may still be moving the new primary between states (reported ≠ assigned) when it already
        # takes writes: wait until it says which node it is.
        promoted = wait_for(lambda: _primary_or_none(formation), lambda name: name is not None, 30, 0.2)
        assert promoted is not None
        survivor = next(name for name in standbys if name != promoted)
        print(
            f"failover: {first} SIGKILLed, {promoted} took writes after {failover_s:.1f} s with "
            f"synchronous_standby_names = {first_write_names!r}; {formation.states()}"
        )
        first_write_at = time.monotonic()

        # pg_auto_failover promotes to `wait_primary` first, synchronous replication off (the first
        # write above saw ''), and turns it on as soon as the other standby follows the new primary:
        # the one-server window is that re-attachment, no longer "until the lost node is back".
        after = wait_for(
            lambda: _replication(formation, promoted),
            lambda r: r is not None and r[0] != "" and any(s in {"sync", "quorum"} for _a, s in r[1]),
            timeout_s=60,
        )
        window_s = time.monotonic() - first_write_at
        assert after is not None
        print(
            f"synchronous again {window_s:.1f} s after the first write, the lost node still down: "
            f"synchronous_standby_names = {after[0]!r}, pg_stat_replication = {after[1]}"
        )
        # A row committed after the failover waited for the remaining standby (non-empty names in its
        # transaction) and is there: read it on that server.
        assert _insert(formation.url(), 3)
        assert wait_for(lambda: _rows_on(formation, survivor), lambda rows: 3 in rows, timeout_s=10) == [1, 2, 3]
        with psycopg.connect(_node_url(formation, survivor), autocommit=True) as conn:
            assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)

        # One node of three left: with number_sync_standbys = 1 pg_auto_failover keeps the primary
        # requiring a standby, so a commit waits (nothing is confirmed from one server) until one is back.
        formation.sigkill(survivor)
        committed = threading.Event()

        def write() -> None:
            if _insert(formation.url(), 4) is not None:
                committed.set()

        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        assert not committed.wait(15), f"a commit returned with one server left: {formation.states()}"
        print(f"one node left: commit waiting; {formation.states()}; {_replication(formation, promoted)}")
        formation.rejoin(survivor)
        assert committed.wait(90), f"the commit did not return once a standby was back: {formation.states()}"
        assert 4 in wait_for(lambda: _rows_on(formation, survivor), lambda rows: 4 in rows, timeout_s=10)

        # The runbook's deliberate way out while no standby can come back: number_sync_standbys 0
        # lets the lone primary take writes again; setting it back to 1 once a standby is back.
        formation.sigkill(survivor)
        formation.run("sync-standbys", "monitor", formation.monitor_port, PG_HA_SYNC_STANDBYS="0")
        # (The commit may have started waiting under the old names: the reload releases it.)
        wait_for(lambda: _insert(formation.url(), 5), lambda n: n is not None, timeout_s=60)
        alone = _replication(formation, promoted)
        assert alone is not None
        assert alone[0] == "", alone
        formation.rejoin(survivor)
        wait_for(
            lambda: _states_of(formation), lambda s: s.get(promoted) == "primary" and s.get(survivor) == "secondary", 90
        )
        formation.run("sync-standbys", "monitor", formation.monitor_port)
        wait_for(lambda: _states_of(formation), lambda s: s.get(promoted) == "primary", 60)
        again = wait_for(lambda: _replication(formation, promoted), lambda r: r is not None and r[0] != "", 60)
        print(f"number_sync_standbys 0 then 1 again: {again}")
    finally:
        formation.destroy()
