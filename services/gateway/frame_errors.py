"""One log line, not a traceback, for each frame from the LAN that pychonet cannot decode.

pychonet handles each received datagram in a task of its own (``echonetMessageReceived``); a truncated or
garbled frame raises there, and asyncio's default handler prints "Task exception was never retrieved" with a
full traceback. Anything on the site's LAN can send such frames, so a flood of junk became a flood of
tracebacks in the gateway's log. Nothing was lost either way: the frame carries nothing the gateway asked
for. Other unhandled errors still go to asyncio's default handler.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from vpp.log import kv

__all__ = ["FrameErrorLog"]

_RECEIVER = "echonetMessageReceived"


class FrameErrorLog:
    """An event loop exception handler: frames that failed to decode are counted and logged at most once per
    ``every_s`` (with how many there were since the last line)."""

    def __init__(self, site_id: str, logger: logging.Logger, every_s: float = 60.0) -> None:
        self.site_id = site_id
        self.logger = logger
        self.every_s = every_s
        self.dropped = 0  # since the gateway started
        self._unlogged = 0
        self._last_logged: float | None = None

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        error = context.get("exception")
        task = context.get("future")
        coro = task.get_coro() if isinstance(task, asyncio.Task) else None
        if error is None or _RECEIVER not in getattr(coro, "__qualname__", ""):
            loop.default_exception_handler(context)
            return
        self.dropped += 1
        self._unlogged += 1
        now = time.monotonic()
        if self._last_logged is not None and now - self._last_logged < self.every_s:
            return
        self.logger.warning(
            "ECHONET Lite frames dropped: could not be decoded",
            extra=kv(site=self.site_id, frames=self._unlogged, error=f"{type(error).__name__}: {error}"[:200]),
        )
        self._unlogged, self._last_logged = 0, now
