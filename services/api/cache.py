"""Rendered report cache keyed by (region, period), valid for one region data version.

The database bumps a region's version whenever anything its reports read changes (energy of a
member site, membership, declared figures), so an entry is served only while its version is still
current: new data invalidates it without any timer or message.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass

__all__ = ["CachedReport", "ReportCache"]


@dataclass(frozen=True, slots=True)
class CachedReport:
    """A rendered report and what access checks need to know about it without re-reading it."""

    body: bytes
    private_sites: int


class ReportCache:
    """A bounded LRU map from a key to (data version, rendered report)."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, tuple[int, CachedReport]] = OrderedDict()
        self._computing: dict[tuple[Hashable, int], asyncio.Future[CachedReport]] = {}
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable, version: int) -> CachedReport | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] != version:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry[1]

    def put(self, key: Hashable, version: int, report: CachedReport) -> None:
        if self.max_entries <= 0:
            return
        self._entries[key] = (version, report)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    async def get_or_compute(
        self, key: Hashable, version: int, compute: Callable[[], Awaitable[CachedReport]]
    ) -> tuple[CachedReport, bool]:
        """The cached report, or one computed now; second item True when it was computed by this call.

        Concurrent misses for the same key and version wait for one computation (single flight):
        when new data invalidates a popular report, dozens of waiting requests would otherwise each
        recompute it at once.
        """
        while True:
            report = self.get(key, version)
            if report is not None:
                return report, False
            flight = self._computing.get((key, version))
            if flight is None:
                break
            try:
                return await asyncio.shield(flight), False
            except asyncio.CancelledError:
                if not flight.cancelled():
                    raise  # this request itself was cancelled
                # The request computing it went away: take over.
        flight = asyncio.get_running_loop().create_future()
        self._computing[(key, version)] = flight
        try:
            report = await compute()
        except asyncio.CancelledError:
            flight.cancel()
            raise
        except BaseException as exc:
            flight.set_exception(exc)
            flight.exception()  # mark retrieved: waiters (if any) re-raise it themselves
            raise
        finally:
            del self._computing[(key, version)]
        flight.set_result(report)
        self.put(key, version, report)
        return report, True

    def __len__(self) -> int:
        return len(self._entries)
