"""Unit conversion for telemetry quantities: the platform stores kW, kWh, % and counts."""

from __future__ import annotations

__all__ = ["ENERGY_UNITS", "POWER_UNITS", "to_kw", "to_kwh"]

# Scale to the stored unit. SenML (RFC 8428 / RFC 8798) names "W", "kW", "Wh", "kWh";
# MWh appears on some gateways that report plant-level counters.
POWER_UNITS: dict[str, float] = {"W": 1e-3, "kW": 1.0, "MW": 1e3}
ENERGY_UNITS: dict[str, float] = {"Wh": 1e-3, "kWh": 1.0, "MWh": 1e3}


def to_kw(value: float, unit: str) -> float:
    """Convert a power in `unit` (W, kW, MW) to kW."""
    return value * POWER_UNITS[unit]


def to_kwh(value: float, unit: str) -> float:
    """Convert an energy in `unit` (Wh, kWh, MWh) to kWh."""
    return value * ENERGY_UNITS[unit]
