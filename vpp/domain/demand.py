"""Demand (デマンド): average import power over a 30-minute slot, its monthly maximum and the ratchet.

Demand in kW = slot import energy in kWh / 0.5 h = kWh x 2. For high-voltage customers the basic
charge is billed on a contract demand equal to the highest monthly maximum demand of the current
and previous 11 months (実量制, the 12-month ratchet), so one bad half hour costs a year. A demand
controller therefore predicts the end-of-slot demand while the slot runs and warns or sheds load
before the target is crossed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Literal

import numpy as np

from vpp.domain.slots import SLOT, require_aware
from vpp.domain.slots import slot_start as slot_start_of

__all__ = [
    "RATCHET_MONTHS",
    "SLOT_HOURS",
    "DemandAlarm",
    "YearMonth",
    "demand_alarm",
    "demand_kw",
    "monthly_max_demand",
    "predict_end_of_slot_demand_kw",
    "ratchet_contract_demand",
]

SLOT_HOURS = SLOT / timedelta(hours=1)
"""Length of a slot in hours (0.5)."""

RATCHET_MONTHS = 12

# Japan has kept UTC+9 without daylight saving since 1951, so a fixed shift gives JST wall time
# for whole arrays without a per-element zone lookup.
_JST_OFFSET_S = 9 * 3600
_SLOT_S = int(SLOT.total_seconds())

DemandAlarm = Literal["ok", "warn", "over"]
YearMonth = tuple[int, int]


def demand_kw(energy_kwh: float) -> float:
    """Demand of a slot, kW: its energy divided by half an hour."""
    return energy_kwh / SLOT_HOURS


def _epoch_s(moment: datetime) -> float:
    # Inlined awareness check: this runs once per slot (17,520 a year), and timestamp() would
    # silently read a naive datetime as the server's local time.
    if moment.utcoffset() is None:
        raise ValueError(f"slot start must be timezone-aware, got naive {moment.isoformat()}")
    return moment.timestamp()


def monthly_max_demand(slot_import_kwh: Mapping[datetime, float]) -> dict[YearMonth, tuple[float, datetime]]:
    """Maximum demand of each JST calendar month and the slot where it occurred.

    Parameters
    ----------
    slot_import_kwh : mapping of datetime to float
        Grid import energy per slot, kWh, keyed by aware slot starts.

    Returns
    -------
    dict
        ``{(year, month): (demand_kw, slot_start)}`` with months judged in JST. When several slots
        tie, the earliest is reported (the one that set the maximum first).

    Raises
    ------
    ValueError
        For naive or non-slot-aligned keys, or negative or non-finite energies.
    """
    if not slot_import_kwh:
        return {}
    starts = list(slot_import_kwh)
    epoch_s = np.fromiter((_epoch_s(s) for s in starts), dtype=np.float64, count=len(starts))
    energy_kwh = np.fromiter(slot_import_kwh.values(), dtype=np.float64, count=len(starts))
    misaligned = np.flatnonzero(epoch_s % _SLOT_S != 0)
    if misaligned.size:
        raise ValueError(f"{starts[misaligned[0]].isoformat()} is not a slot start")
    if not np.all(np.isfinite(energy_kwh)) or np.any(energy_kwh < 0):
        raise ValueError("slot import energies must be finite and non-negative kWh")

    jst_months = (
        (epoch_s.astype(np.int64) + _JST_OFFSET_S).astype("datetime64[s]").astype("datetime64[M]").astype(np.int64)
    )
    # Sort by month, then energy descending, then time ascending: each month's first row is its maximum.
    order = np.lexsort((epoch_s, -energy_kwh, jst_months))
    months_sorted = jst_months[order]
    _, first = np.unique(months_sorted, return_index=True)
    result: dict[YearMonth, tuple[float, datetime]] = {}
    for row in order[first]:
        month_index = int(jst_months[row])
        key = (1970 + month_index // 12, month_index % 12 + 1)
        result[key] = (demand_kw(float(energy_kwh[row])), starts[row])
    return result


def _previous_months(month: YearMonth, count: int) -> list[YearMonth]:
    year, number = month
    index = year * 12 + (number - 1)
    return [((index - back) // 12, (index - back) % 12 + 1) for back in range(count)]


def ratchet_contract_demand(monthly_max_kw: Mapping[YearMonth, float], month: YearMonth) -> float:
    """Contract demand for `month` under the 12-month ratchet, kW.

    The maximum of the monthly maximum demands of `month` and the 11 months before it. Months
    missing from `monthly_max_kw` are skipped (a new connection has no history yet).

    Raises
    ------
    ValueError
        If `month` is not a valid ``(year, month)`` or none of the 12 months has a value.
    """
    if not 1 <= month[1] <= 12:
        raise ValueError(f"month number must be 1..12; got {month!r}")
    window = [monthly_max_kw[m] for m in _previous_months(month, RATCHET_MONTHS) if m in monthly_max_kw]
    if not window:
        raise ValueError(f"no monthly maximum demand in the 12 months ending {month[0]}-{month[1]:02d}")
    return max(window)


def predict_end_of_slot_demand_kw(
    slot_start: datetime, now: datetime, energy_so_far_kwh: float, current_power_kw: float
) -> float:
    """Predicted demand of the running slot, kW, as a demand controller computes it.

    ``(energy so far + current power x remaining hours) x 2``: the current import power is assumed
    to hold until the slot ends.

    Parameters
    ----------
    slot_start : datetime
        Start of the running slot (aware, slot-aligned).
    now : datetime
        Current time, within ``[slot_start, slot_start + 30 min]``.
    energy_so_far_kwh : float
        Import energy since the slot started, kWh.
    current_power_kw : float
        Current grid power, kW. Export (negative) is treated as 0: it does not wind back the
        import meter, so it cannot lower the slot's demand.

    Raises
    ------
    ValueError
        For naive or misaligned times, `now` outside the slot, or negative energy.
    """
    require_aware(now, "now")
    start_utc = slot_start_of(slot_start)  # also rejects a naive slot_start
    if start_utc != slot_start:
        raise ValueError(f"{slot_start.isoformat()} is not a slot start")
    slot_end = start_utc + SLOT
    now_utc = now.astimezone(UTC)
    if not start_utc <= now_utc <= slot_end:
        raise ValueError(f"now {now.isoformat()} is outside the slot starting {slot_start.isoformat()}")
    if not (energy_so_far_kwh >= 0 and math.isfinite(energy_so_far_kwh)):
        raise ValueError(f"energy_so_far_kwh must be finite and >= 0; got {energy_so_far_kwh!r}")
    remaining_h = (slot_end - now_utc) / timedelta(hours=1)
    projected_kwh = energy_so_far_kwh + max(current_power_kw, 0.0) * remaining_h
    return demand_kw(projected_kwh)


def demand_alarm(predicted_kw: float, target_kw: float, warn_ratio: float = 0.9) -> DemandAlarm:
    """Classify a predicted demand against the target.

    ``"over"`` when the prediction exceeds the target, ``"warn"`` from ``warn_ratio x target`` up
    to and including the target, otherwise ``"ok"``.
    """
    if not target_kw > 0:
        raise ValueError(f"target_kw must be positive; got {target_kw!r}")
    if not 0 < warn_ratio <= 1:
        raise ValueError(f"warn_ratio must be within (0, 1]; got {warn_ratio!r}")
    if predicted_kw > target_kw:
        return "over"
    if predicted_kw >= warn_ratio * target_kw:
        return "warn"
    return "ok"
