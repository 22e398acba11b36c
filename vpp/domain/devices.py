"""Device kinds, the quantities each may report, and their sign conventions (DESIGN.md section 3).

Every reading is stored in the same five columns. `power_kw` keeps the contract's sign per kind;
the two energy counters are named by the direction of `power_kw` they integrate:

| kind        | power_kw sign                  | energy_pos_kwh        | energy_neg_kwh   |
|-------------|--------------------------------|-----------------------|------------------|
| meter       | + import, − export             | import counter        | export counter   |
| pv          | + generation                   | generation counter    | —                |
| battery     | + discharge, − charge          | discharge counter     | charge counter   |
| ev_charger  | + charging (site consumption)  | delivered counter     | —                |

Site load = grid + pv + battery (EV charging is part of the load, measured as a sub-meter).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["KIND_FIELDS", "DeviceKind", "DeviceRef"]


class DeviceKind(StrEnum):
    METER = "meter"
    PV = "pv"
    BATTERY = "battery"
    EV_CHARGER = "ev_charger"


# Payload field stem -> stored column, per kind. Energies accept a `_kwh` or `_wh` suffix,
# power `_kw` or `_w`; `soc_pct` and `vehicles` carry no unit choice.
KIND_FIELDS: dict[DeviceKind, dict[str, str]] = {
    DeviceKind.METER: {"import": "energy_pos_kwh", "export": "energy_neg_kwh"},
    DeviceKind.PV: {"energy": "energy_pos_kwh"},
    DeviceKind.BATTERY: {"discharge": "energy_pos_kwh", "charge": "energy_neg_kwh", "soc": "soc_pct"},
    DeviceKind.EV_CHARGER: {"energy": "energy_pos_kwh", "vehicles": "vehicles"},
}


@dataclass(frozen=True, slots=True)
class DeviceRef:
    """A registered device as ingest needs it: database ids, kind, and its rating for plausibility."""

    device_pk: int
    site_pk: int
    kind: DeviceKind
    rated_power_kw: float | None = None
