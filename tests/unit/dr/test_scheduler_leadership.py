"""A scheduler that lost its lease stops before its next tick (services/dr_scheduler/loop.py)."""

from __future__ import annotations

import queue
import threading
from types import SimpleNamespace
from typing import cast

from services.dr_scheduler.dispatch import Dispatcher
from services.dr_scheduler.loop import run_loop
from services.dr_scheduler.scheduler import Scheduler


class _NoScheduler:
    """Any use of the scheduler would fail the test: a former leader must not touch it."""

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"the scheduler was used ({name}) after the lease was lost")


def test_run_loop_returns_without_ticking_once_the_lease_is_gone() -> None:
    dispatcher = SimpleNamespace(acks=queue.Queue())
    checks: list[bool] = []

    def leading() -> bool:
        checks.append(False)
        return False

    # No metrics, no connection, no dispatch: the loop asks first and leaves.
    run_loop(cast(Scheduler, _NoScheduler()), cast(Dispatcher, dispatcher), threading.Event(), 0.01, leading)
    assert checks == [False]
