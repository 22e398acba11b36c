"""A site's retained DR signal: every event in effect at the site, merged into one message.

``vpp/v1/{site}/dr/signal`` is retained, so the broker keeps one message per site: if each event
published only its own intervals, dispatching a second event would hide the first from a site that
reconnects, and cancelling one would clear the other. So every publish to a site carries *all* the
events in effect there, and the message is rebuilt from the database whenever one of them changes.

Where events overlap, the tightest constraint wins in each instant: the lowest import limit and the
highest import floor. When a floor would sit above a limit (an "increase" event overlapping a "reduce"
event), the limit wins and the floor is lowered to it: a limit protects the site's contract and the
grid at a peak, while absorbing more is an opportunity that can be given up.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from vpp.domain.dr_events import DrSignal, SignalEvent, SignalInterval

__all__ = ["EventPart", "merge_intervals", "site_signal"]


@dataclass(frozen=True)
class EventPart:
    """One event's intervals at one site (disjoint, ordered), as it would be signalled on its own."""

    event: SignalEvent
    intervals: tuple[SignalInterval, ...]


def merge_intervals(parts: Sequence[Sequence[SignalInterval]]) -> tuple[SignalInterval, ...]:
    """Merge several events' intervals into disjoint, ordered intervals, tightest constraint per instant.

    The time axis is cut at every interval boundary; each piece covered by at least one interval gets
    the minimum of the limits and the maximum of the floors covering it (floor ≤ limit, see the module
    docstring); adjacent pieces with equal values are joined, so a single event comes back unchanged.
    """
    intervals = [interval for part in parts for interval in part]
    cuts = sorted({moment for interval in intervals for moment in (interval.start, interval.end)})
    merged: list[SignalInterval] = []
    for start, end in itertools.pairwise(cuts):
        covering = [i for i in intervals if i.start <= start and end <= i.end]
        if not covering:
            continue
        limits = [i.import_limit_kw for i in covering if i.import_limit_kw is not None]
        floors = [i.import_floor_kw for i in covering if i.import_floor_kw is not None]
        limit = min(limits) if limits else None
        floor = max(floors) if floors else None
        if floor is not None and limit is not None:
            floor = min(floor, limit)
        previous = merged[-1] if merged else None
        if (
            previous is not None
            and previous.end == start
            and (previous.import_limit_kw, previous.import_floor_kw) == (limit, floor)
        ):
            merged[-1] = SignalInterval(previous.start, end, limit, floor)
        else:
            merged.append(SignalInterval(start, end, limit, floor))
    return tuple(merged)


def site_signal(trigger: SignalEvent, kind: str, in_effect: Sequence[EventPart], issued_at: datetime) -> DrSignal:
    """The message for one site after ``trigger`` changed: every event ``in_effect`` at the site, merged.

    ``trigger`` names the change (the EMS acknowledges its event and revision); it is one of
    ``in_effect`` unless it was cancelled or no longer calls the site. The status is "active" while any
    interval remains, "cancelled" when nothing is in effect any more.
    """
    ordered = sorted(in_effect, key=lambda part: (part.event.start, part.event.event_id))
    intervals = merge_intervals([part.intervals for part in ordered])
    return DrSignal(
        event_id=trigger.event_id,
        revision=trigger.revision,
        kind=kind,
        status="active" if intervals else "cancelled",
        issued_at=issued_at,
        intervals=intervals,
        events=tuple(part.event for part in ordered),
    )
