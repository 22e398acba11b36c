"""DR signal → ECHONET Lite writes: the gateway's dispatch rule for a household battery and EV charger.

The signal's interval in effect gives an import limit and/or floor (kW at the meter). Every poll the
gateway recomputes, from the meter and the devices' own measurements, what the site would import with
the battery idle and the EV charger at its present power, and sets:

- under a limit, battery discharge = the excess (within 0xDD's range), then EV charging reduced by what
  the battery cannot cover (within 0xC8's range; below its minimum the charger goes to standby);
- under a floor, battery charging = the shortfall (within 0xDC's range);
- inside an interval with neither need, the battery on standby, so it neither adds import nor exports;
- after the signal, the battery back to automatic and the EV charger back to its maximum.

Closed loop rather than a slot-average plan (vpp.simulation.ems): the gateway sees only this site's
meter, updated every poll, so tracking the limit instant by instant keeps the slot average under it too.
Writes are in W (0xEB/0xEC), never the Wh amounts 0xAA/0xAB.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from vpp.domain.dr_events import DrSignal, SignalInterval
from vpp.echonet.codes import Epc, Mode
from vpp.echonet.mapping import encode_uint

__all__ = ["DEADBAND_W", "DeviceView", "Write", "interval_at", "plan_writes", "release_writes"]

DEADBAND_W = 100  # re-writing a setpoint for less than this only wears the device's flash


@dataclass(frozen=True)
class DeviceView:
    """What the policy needs of a battery or EV charger; power in the contract's sign (kW)."""

    device_id: str
    power_kw: float  # battery + discharge; EV + charging
    mode: int | None
    charge_range_w: tuple[int, int] | None = None
    discharge_range_w: tuple[int, int] | None = None


@dataclass(frozen=True)
class Write:
    device_id: str
    epc: int
    edt: bytes
    what: str  # for logs and the ack: "battery-1 discharge 2000 W"


def interval_at(signal: DrSignal | None, now: datetime) -> SignalInterval | None:
    if signal is None or signal.status != "active":
        return None
    return next((i for i in signal.intervals if i.start <= now < i.end), None)


def _clamp_w(wanted_w: float, span: tuple[int, int] | None) -> int:
    low, high = span if span is not None else (0, 999_999_999)
    return round(min(max(wanted_w, low), high))


def _mode(device: DeviceView, mode: Mode) -> Write:
    return Write(device.device_id, Epc.OPERATION_MODE, bytes([mode]), f"{device.device_id} mode {mode.name.lower()}")


def plan_writes(
    interval: SignalInterval, grid_kw: float, battery: DeviceView | None, ev: DeviceView | None
) -> tuple[list[Write], float]:
    """Writes for one control step, and the shortfall (kW) the devices cannot cover (0 when none).

    ``grid_kw`` is the meter's power (+ import). Setpoint writes come before the mode write, so a
    device never runs a new mode with an old setpoint.
    """
    battery_kw = battery.power_kw if battery is not None else 0.0
    idle_import_kw = grid_kw + battery_kw  # what the site would import with the battery idle
    writes: list[Write] = []
    short_kw = 0.0
    limit, floor = interval.import_limit_kw, interval.import_floor_kw
    if limit is not None and idle_import_kw > limit:
        excess_w = (idle_import_kw - limit) * 1000.0
        covered_w = 0
        if battery is not None and battery.discharge_range_w != (0, 0):
            covered_w = _clamp_w(excess_w, battery.discharge_range_w)
            writes.append(Write(battery.device_id, Epc.DISCHARGE_POWER_SETTING, encode_uint(covered_w, 4),
                                f"{battery.device_id} discharge {covered_w} W"))  # fmt: skip
            writes.append(_mode(battery, Mode.DISCHARGING))
        remaining_w = excess_w - covered_w
        if remaining_w > 0 and ev is not None and ev.power_kw > 0:
            target_w = ev.power_kw * 1000.0 - remaining_w
            low_w = ev.charge_range_w[0] if ev.charge_range_w is not None else 0
            if target_w < max(low_w, 1):
                writes.append(_mode(ev, Mode.STANDBY))
                remaining_w -= ev.power_kw * 1000.0
            else:
                limit_w = _clamp_w(target_w, ev.charge_range_w)
                writes.append(Write(ev.device_id, Epc.CHARGE_POWER_SETTING, encode_uint(limit_w, 4),
                                    f"{ev.device_id} charging limited to {limit_w} W"))  # fmt: skip
                writes.append(_mode(ev, Mode.CHARGING))
                remaining_w -= ev.power_kw * 1000.0 - limit_w
        short_kw = max(0.0, remaining_w / 1000.0)
    elif floor is not None and idle_import_kw < floor:
        wanted_w = (floor - idle_import_kw) * 1000.0
        if battery is not None and battery.charge_range_w != (0, 0):
            charge_w = _clamp_w(wanted_w, battery.charge_range_w)
            writes.append(Write(battery.device_id, Epc.CHARGE_POWER_SETTING, encode_uint(charge_w, 4),
                                f"{battery.device_id} charge {charge_w} W"))  # fmt: skip
            writes.append(_mode(battery, Mode.CHARGING))
            wanted_w -= charge_w
        short_kw = max(0.0, wanted_w / 1000.0)
    elif battery is not None:
        writes.append(_mode(battery, Mode.STANDBY))
    return writes, short_kw


def release_writes(battery: DeviceView | None, ev: DeviceView | None) -> list[Write]:
    """After the signal: the battery back to automatic, the EV charger back to its full power."""
    writes: list[Write] = []
    if battery is not None:
        writes.append(_mode(battery, Mode.AUTOMATIC))
    if ev is not None:
        if ev.charge_range_w is not None:
            top_w = ev.charge_range_w[1]
            writes.append(Write(ev.device_id, Epc.CHARGE_POWER_SETTING, encode_uint(top_w, 4),
                                f"{ev.device_id} charging limit back to {top_w} W"))  # fmt: skip
        writes.append(_mode(ev, Mode.CHARGING))
    return writes
