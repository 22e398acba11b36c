"""The 2.0b VTN on an event loop in a thread: how `vpp up` runs it beside its other threads."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from datetime import datetime

from services.oadr2b.settings import Oadr2bSettings
from services.oadr2b.vtn import Oadr2bVtn

__all__ = ["VtnThread"]


class VtnThread:
    def __init__(
        self, settings: Oadr2bSettings, database_url: str, *, clock: Callable[[], datetime] | None = None
    ) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="oadr2b-vtn", daemon=True)
        self._thread.start()
        self._started = False
        # openleadr builds its aiohttp app and scheduler for the running loop: make the VTN on it.
        self.vtn: Oadr2bVtn = self._run(self._make(settings, database_url, clock), 30)

    @staticmethod
    async def _make(settings: Oadr2bSettings, database_url: str, clock: Callable[[], datetime] | None) -> Oadr2bVtn:
        return Oadr2bVtn(settings, database_url, clock=clock)

    def _run(self, coroutine: object, timeout_s: float) -> Oadr2bVtn:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout_s)  # type: ignore[arg-type]

    @property
    def url(self) -> str:
        return self.vtn.url

    def start(self, timeout_s: float = 30.0) -> str:
        """Listen; returns the VTN's URL. OSError when the port is taken."""
        asyncio.run_coroutine_threadsafe(self.vtn.start(), self._loop).result(timeout_s)
        self._started = True
        return self.vtn.url

    def stop(self) -> None:
        if self._loop.is_running():
            if self._started:
                asyncio.run_coroutine_threadsafe(self.vtn.stop(), self._loop).result(15)
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(15)
        if not self._loop.is_running():
            self._loop.close()
