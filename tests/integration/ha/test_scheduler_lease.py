"""One scheduler leads at a time (services/dr_scheduler/leader.py), and a standby takes over when it dies."""

from __future__ import annotations

import threading

import psycopg
import pytest

from services.dr_scheduler.leader import SCHEDULER_LOCK_KEY, LeaderLease

pytestmark = pytest.mark.integration


def test_the_standby_leads_only_once_the_leader_session_is_gone(db_url: str) -> None:
    stopping = threading.Event()
    leader = LeaderLease(db_url, instance="a", poll_s=0.05)
    standby = LeaderLease(db_url, instance="b", poll_s=0.05)
    assert leader.acquire(stopping)
    took_over = threading.Event()

    def stand_by() -> None:
        if standby.acquire(stopping):
            took_over.set()

    waiter = threading.Thread(target=stand_by, daemon=True)
    waiter.start()
    try:
        assert not took_over.wait(0.5)  # while the leader's session lives, the standby waits
        assert leader.held()
        # The leader's server-side session ends (its process or its server died): the lock goes with it.
        with psycopg.connect(db_url, autocommit=True) as admin:
            admin.execute(
                """SELECT pg_terminate_backend(l.pid) FROM pg_locks l
                   WHERE l.locktype = 'advisory' AND l.granted AND l.objid = (%s::bigint & 4294967295)::oid""",
                (SCHEDULER_LOCK_KEY,),
            )
        assert took_over.wait(10)
        assert not leader.held()  # and the old leader knows it lost the lead before its next tick
        assert standby.held()
    finally:
        stopping.set()
        waiter.join(5)
        leader.release()
        standby.release()


def test_a_standby_stops_waiting_when_asked(db_url: str) -> None:
    stopping = threading.Event()
    leader = LeaderLease(db_url, instance="a", poll_s=0.05)
    standby = LeaderLease(db_url, instance="b", poll_s=0.05)
    try:
        assert leader.acquire(stopping)
        stopping.set()
        assert not standby.acquire(stopping)
    finally:
        leader.release()
        standby.release()
