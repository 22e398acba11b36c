"""A frame pychonet cannot decode is one counted log line, not a traceback; other task errors still reach
asyncio's default handler."""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest

from services.gateway.frame_errors import FrameErrorLog


async def echonetMessageReceived(data: bytes, addr: tuple[str, int]) -> None:  # noqa: N802 - pychonet's name
    raise IndexError("index out of range")  # what a truncated frame makes pychonet raise


async def something_else() -> None:
    raise RuntimeError("a real bug")


def test_undecodable_frames_are_counted_and_logged_once_per_window(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.echonet.frames")
    handler = FrameErrorLog("site-1", logger, every_s=3600)
    defaults: list[dict[str, object]] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(handler)
        loop.default_exception_handler = defaults.append  # type: ignore[method-assign,assignment]
        # As pychonet does: a task per datagram, its exception never retrieved. asyncio reports each when the
        # task is collected, through the loop's exception handler.
        for _ in range(50):
            loop.create_task(echonetMessageReceived(b"\x10", ("192.0.2.1", 3610)))  # noqa: RUF006 - as pychonet does
        loop.create_task(something_else())  # noqa: RUF006
        for _ in range(3):
            await asyncio.sleep(0)
        gc.collect()

    with caplog.at_level(logging.WARNING, logger="test.echonet.frames"):
        asyncio.run(main())
    assert handler.dropped == 50
    lines = [r for r in caplog.records if r.name == "test.echonet.frames"]
    assert len(lines) == 1  # the first; the other 49 counted for the next line
    assert "could not be decoded" in lines[0].getMessage()
    assert not any(r.exc_info for r in lines)  # no traceback
    assert len(defaults) == 1  # the real bug still reaches asyncio's handler
    assert isinstance(defaults[0]["exception"], RuntimeError)
