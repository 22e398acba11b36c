"""ECHONET Lite class codes and property codes (EPC) the gateway uses, with the MRA's names.

Only what the platform reads or writes is listed. Sizes and units come from the Machine Readable
Appendix Release M; where ECHONET's sign convention differs from the v1 contract it says so here,
and `vpp.echonet.mapping` is the one place that converts.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "BATTERY_MODES",
    "CONTROL_EPCS",
    "EV_MODES",
    "KIND_BY_CLASS",
    "READ_EPCS",
    "ElClass",
    "Epc",
    "Mode",
]


class ElClass(IntEnum):
    """Class group and class code (EOJ without the instance byte)."""

    NODE_PROFILE = 0x0EF0
    SMART_METER = 0x0288  # low-voltage smart electric energy meter
    PV = 0x0279  # household solar power generation
    BATTERY = 0x027D  # storage battery
    EV_CHARGER = 0x027E  # electric vehicle charger/discharger (V2H)


KIND_BY_CLASS: dict[int, str] = {
    ElClass.SMART_METER: "meter",
    ElClass.PV: "pv",
    ElClass.BATTERY: "battery",
    ElClass.EV_CHARGER: "ev_charger",
}


class Epc(IntEnum):
    # Super class / node profile
    OPERATION_STATUS = 0x80
    IDENTIFICATION = 0x83
    STATUS_MAP = 0x9D
    SET_MAP = 0x9E
    GET_MAP = 0x9F
    INSTANCE_LIST = 0xD6  # node profile: self-node instance list S
    # 0x0288 smart meter
    METER_COEFFICIENT = 0xD3  # uint32, multiplies the cumulative counters (optional; 1 when absent)
    METER_DIGITS = 0xD7
    METER_IMPORT = 0xE0  # uint32 cumulative, normal direction (bought), × coefficient × unit
    METER_UNIT = 0xE1  # 1-byte code of the counters' unit, see METER_UNIT_KWH
    METER_EXPORT = 0xE3  # uint32 cumulative, reverse direction (sold)
    METER_POWER = 0xE7  # int32 W, + forward (import) − reverse (export): same as the contract
    # 0x0279 household PV
    PV_POWER = 0xE0  # uint16 W generated
    PV_ENERGY = 0xE1  # uint32, 0.001 kWh generated
    # 0x027D battery and 0x027E EV charger share these codes
    CHARGE_POWER_RANGE = 0xDC  # battery: uint32 min + uint32 max charging power, W
    DISCHARGE_POWER_RANGE = 0xDD  # battery: uint32 min + uint32 max discharging power, W
    EV_CHARGE_POWER_RANGE = 0xC8  # EV charger: uint32 min + uint32 max charging power, W
    EV_CONNECTION = 0xC7  # EV charger: vehicle connection state (0x30 not connected)
    MEASURED_POWER = 0xD3  # int32 W, + CHARGING − discharging: opposite of the contract's battery sign
    CUMULATIVE_DISCHARGE = 0xD6  # uint32, 0.001 kWh
    CUMULATIVE_CHARGE = 0xD8  # uint32, 0.001 kWh
    OPERATION_MODE = 0xDA
    SOC_PCT = 0xE4  # uint8 %, "remaining stored electricity 3"
    CHARGE_POWER_SETTING = 0xEB  # uint32 W (0xAA is an amount in Wh, not a power: do not confuse)
    DISCHARGE_POWER_SETTING = 0xEC  # uint32 W (0xAB is an amount in Wh)


class Mode(IntEnum):
    """Operation mode setting (0xDA) of batteries and EV chargers."""

    RAPID_CHARGING = 0x41
    CHARGING = 0x42
    DISCHARGING = 0x43
    STANDBY = 0x44
    TEST = 0x45
    AUTOMATIC = 0x46
    RESTART = 0x48
    CAPACITY_RECALCULATION = 0x49
    OTHER = 0x40
    IDLE = 0x47


BATTERY_MODES = frozenset(Mode) - {Mode.IDLE}
EV_MODES = frozenset({Mode.CHARGING, Mode.DISCHARGING, Mode.STANDBY, Mode.IDLE, Mode.OTHER, Mode.RAPID_CHARGING})

# What each poll reads: measurements first, then the ranges and settings the DR policy needs.
READ_EPCS: dict[int, tuple[int, ...]] = {
    ElClass.SMART_METER: (Epc.METER_POWER, Epc.METER_IMPORT, Epc.METER_EXPORT, Epc.METER_UNIT, Epc.METER_COEFFICIENT),
    ElClass.PV: (Epc.PV_POWER, Epc.PV_ENERGY),
    ElClass.BATTERY: (
        Epc.MEASURED_POWER,
        Epc.CUMULATIVE_DISCHARGE,
        Epc.CUMULATIVE_CHARGE,
        Epc.SOC_PCT,
        Epc.OPERATION_MODE,
        Epc.CHARGE_POWER_RANGE,
        Epc.DISCHARGE_POWER_RANGE,
    ),
    ElClass.EV_CHARGER: (
        Epc.MEASURED_POWER,
        Epc.CUMULATIVE_CHARGE,
        Epc.EV_CONNECTION,
        Epc.OPERATION_MODE,
        Epc.EV_CHARGE_POWER_RANGE,
        Epc.CHARGE_POWER_SETTING,
    ),
}

# Classes the gateway may write to for DR.
CONTROL_EPCS: dict[int, tuple[int, ...]] = {
    ElClass.BATTERY: (Epc.OPERATION_MODE, Epc.CHARGE_POWER_SETTING, Epc.DISCHARGE_POWER_SETTING),
    ElClass.EV_CHARGER: (Epc.OPERATION_MODE, Epc.CHARGE_POWER_SETTING),
}
