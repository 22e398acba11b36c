"""2.0b events as openleadr builds them into oadrDistributeEvent, from `vpp.domain.oadr2b.Signal2b`."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from openleadr import objects

from vpp.domain.oadr2b import Signal2b
from vpp.domain.openadr import SLOT

__all__ = ["build_event"]

# Kawasaki is in the 50 Hz east of Japan; the itemBase needs some power attributes, and these are the
# low-voltage three-phase service most depots and schools have.
_POWER_ATTRIBUTES = objects.PowerAttributes(hertz=50, voltage=200, ac=True)


def _measurement(signal: Signal2b) -> objects.Measurement | None:
    if signal.units != "KW":
        return None
    return objects.Measurement(
        name="powerReal", description="RealPower", unit="W", scale="k", power_attributes=_POWER_ATTRIBUTES
    )


def build_event(
    event_id: str,
    modification_number: int,
    signal: Signal2b,
    *,
    status: str,
    ven_id: str,
    market_context: str,
    modified_at: datetime,
) -> dict[str, Any]:
    """One oadrEvent (as the dict openleadr's templates render), addressed to `ven_id`."""
    intervals = [
        objects.Interval(dtstart=signal.start_at + n * SLOT, duration=SLOT, signal_payload=value, uid=n)
        for n, value in enumerate(signal.values)
    ]
    descriptor = objects.EventDescriptor(
        event_id=event_id,
        modification_number=modification_number,
        market_context=market_context,
        event_status=status,
        modification_date_time=modified_at,
        created_date_time=modified_at,
        # Which 3.1 payload (a ceiling or a floor) the LOAD_DISPATCH setpoint stands for, and the revision.
        vtn_comment=f"{signal.payload_type}; {signal.event_name}",
    )
    event_signal = objects.EventSignal(
        intervals=intervals,
        signal_name=signal.signal_name,
        signal_type=signal.signal_type,
        signal_id=f"{event_id}-0",
        measurement=_measurement(signal),
    )
    active_period = objects.ActivePeriod(dtstart=signal.start_at, duration=signal.end_at - signal.start_at)
    event = objects.Event(
        event_descriptor=descriptor,
        event_signals=[event_signal],
        targets=[objects.Target(ven_id=ven_id)],
        active_period=active_period,
        response_required="always",
    )
    event.event_descriptor.event_status = status  # Event() sets it from the times, which cannot say cancelled
    return asdict(event)
