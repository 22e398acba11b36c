from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(probe: Callable[[], T], ok: Callable[[T], bool], timeout_s: float = 20.0, every_s: float = 0.1) -> T:
    """Poll `probe` until `ok(value)`; on time-out, fail with the last value seen."""
    deadline = time.monotonic() + timeout_s
    value = probe()
    while not ok(value):
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached in {timeout_s} s; last value {value!r}")
        time.sleep(every_s)
        value = probe()
    return value
