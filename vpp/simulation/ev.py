"""A depot's EV delivery vans: overnight connection windows, energy needs, and deadline-aware charging.

Each van returns in the evening, needs its day's energy back by the morning, and leaves. The EMS does not
know the actual departure time, only the depot's planned one, so every van is charged against a
deadline before the earliest departure. Within each step the fleet offers the EMS three aggregate powers:

- ``must_kw``: the least that still lets every van finish by its deadline at full charger power later
  (least-laxity), i.e. what cannot be deferred;
- ``flat_kw``: each van spread evenly over its remaining time to the deadline, the EMS's preferred plan,
  which turns the arrival peak into a flat overnight load;
- ``cap_kw``: every charger at its rating (never more than a van still needs).

The EMS picks any power in [must_kw, cap_kw]; :meth:`EvFleet.charge` shares it among the vans so each
gets its own must/flat/cap blend, which keeps every van on schedule.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["EvFleet", "EvPlan"]

_HOUR_S = 3_600.0
_DAY_S = 86_400.0
_JST_OFFSET_S = 9 * _HOUR_S
_ARRIVE_EARLIEST_H = 18.0  # JST, vans return between 18:00 and 20:00
_ARRIVE_SPREAD_H = 2.0
_DEPART_EARLIEST_H = 7.0  # JST next morning, between 07:00 and 08:00
_DEPART_SPREAD_H = 1.0
_DEADLINE_H = 6.5  # charged 30 min before the first van can leave
_NEED_SPREAD = 0.4  # a van's daily need is uniform in (1 ± spread) × the mean
_EPS_KWH = 1e-9


@dataclass(slots=True)
class EvPlan:
    """Aggregate charging bounds for one step, in kW (must_kw <= flat_kw <= cap_kw)."""

    must_kw: float
    flat_kw: float
    cap_kw: float


class EvFleet:
    """Per-van connection state and remaining energy; all times are Unix seconds."""

    def __init__(
        self, count: int, charger_kw: float, daily_kwh: float, start_s: float, rng: np.random.Generator
    ) -> None:
        self._charger_kw = charger_kw
        self._daily_kwh = daily_kwh
        self._rng = rng
        self._arrive_s = [0.0] * count
        self._depart_s = [0.0] * count
        self._deadline_s = [0.0] * count
        self._need_kwh = [0.0] * count
        self._connected = [False] * count
        self._must_kw = [0.0] * count
        self._flat_kw = [0.0] * count
        self._cap_kw = [0.0] * count
        self.unmet_kwh = 0.0  # energy short at departure, summed over all departures
        start_day = int((start_s + _JST_OFFSET_S) // _DAY_S)
        for van in range(count):
            self._schedule(van, start_day - 1)
            if start_s >= self._depart_s[van]:
                self._schedule(van, start_day)
            if start_s >= self._arrive_s[van]:
                # Joined mid-night: assume the van was charged evenly since it arrived.
                left = (self._deadline_s[van] - start_s) / (self._deadline_s[van] - self._arrive_s[van])
                self._need_kwh[van] *= min(1.0, max(0.0, left))
                self._connected[van] = True
        self._plugged = [van for van in range(count) if self._connected[van]]
        self._next_event_s = self._compute_next_event()

    @property
    def vehicles(self) -> int:
        """Vans plugged in, whether or not they are still charging."""
        return len(self._plugged)

    @property
    def needed_kwh(self) -> float:
        """Energy the plugged-in vans still need before their deadline."""
        return sum(self._need_kwh[van] for van in self._plugged)

    def _schedule(self, van: int, day_jst: int) -> None:
        """Set the van's connection window starting on the evening of JST day `day_jst`."""
        arrive_u, depart_u, need_u = self._rng.random(3).tolist()
        midnight_s = day_jst * _DAY_S - _JST_OFFSET_S
        self._arrive_s[van] = midnight_s + (_ARRIVE_EARLIEST_H + _ARRIVE_SPREAD_H * arrive_u) * _HOUR_S
        self._depart_s[van] = midnight_s + _DAY_S + (_DEPART_EARLIEST_H + _DEPART_SPREAD_H * depart_u) * _HOUR_S
        self._deadline_s[van] = midnight_s + _DAY_S + _DEADLINE_H * _HOUR_S
        self._need_kwh[van] = self._daily_kwh * (1.0 + _NEED_SPREAD * (2.0 * need_u - 1.0))

    def _compute_next_event(self) -> float:
        times = [
            self._depart_s[van] if self._connected[van] else self._arrive_s[van] for van in range(len(self._connected))
        ]
        return min(times, default=float("inf"))

    def update_connections(self, now_s: float) -> None:
        """Plug in vans that have arrived and unplug (and reschedule) those that have left by `now_s`."""
        if now_s < self._next_event_s:
            return
        for van in range(len(self._connected)):
            # A long step can cover several windows; walk through them.
            while True:
                if self._connected[van] and now_s >= self._depart_s[van]:
                    if self._need_kwh[van] > _EPS_KWH:
                        self.unmet_kwh += self._need_kwh[van]
                    self._connected[van] = False
                    self._schedule(van, int((self._depart_s[van] + _JST_OFFSET_S) // _DAY_S))
                elif not self._connected[van] and now_s >= self._arrive_s[van]:
                    self._connected[van] = True
                else:
                    break
        self._plugged = [van for van in range(len(self._connected)) if self._connected[van]]
        self._next_event_s = self._compute_next_event()

    def plan(self, now_s: float, dt_h: float) -> EvPlan:
        """Bounds for charging over [now_s, now_s + dt_h) and the per-van split used by :meth:`charge`."""
        charger_kw = self._charger_kw
        need, deadline = self._need_kwh, self._deadline_s
        must, flat, cap = self._must_kw, self._flat_kw, self._cap_kw
        must_sum = flat_sum = cap_sum = 0.0
        for van in self._plugged:
            need_kwh = need[van]
            if need_kwh <= _EPS_KWH:
                must[van] = flat[van] = cap[van] = 0.0
                continue
            cap_kw = need_kwh / dt_h
            if cap_kw > charger_kw:
                cap_kw = charger_kw
            left_h = (deadline[van] - now_s) / _HOUR_S
            if left_h <= dt_h:
                must_kw = flat_kw = cap_kw
            else:
                flat_kw = need_kwh / left_h
                if flat_kw > cap_kw:
                    flat_kw = cap_kw
                # What full-power charging after this step could not deliver must be delivered now.
                must_kw = (need_kwh - charger_kw * (left_h - dt_h)) / dt_h
                must_kw = 0.0 if must_kw < 0.0 else cap_kw if must_kw > cap_kw else must_kw
            must[van], flat[van], cap[van] = must_kw, flat_kw, cap_kw
            must_sum += must_kw
            flat_sum += flat_kw
            cap_sum += cap_kw
        return EvPlan(must_sum, flat_sum, cap_sum)

    def charge(self, plan: EvPlan, power_kw: float, dt_h: float) -> float:
        """Charge for `dt_h` hours at `power_kw` (clamped to the plan's bounds); return the power delivered.

        Below the flat plan every van is placed the same fraction of the way from its must to its flat
        power, above it from flat to cap; so a deferral never pushes a van past its least-laxity point.
        """
        if power_kw <= plan.flat_kw:
            low, high = self._must_kw, self._flat_kw
            span = plan.flat_kw - plan.must_kw
            fraction = (power_kw - plan.must_kw) / span if span > 0.0 else 0.0
        else:
            low, high = self._flat_kw, self._cap_kw
            span = plan.cap_kw - plan.flat_kw
            fraction = (power_kw - plan.flat_kw) / span if span > 0.0 else 0.0
        fraction = 0.0 if fraction < 0.0 else 1.0 if fraction > 1.0 else fraction
        need = self._need_kwh
        delivered_kw = 0.0
        for van in self._plugged:
            van_kw = low[van] + fraction * (high[van] - low[van])
            if van_kw > 0.0:
                remaining_kwh = need[van] - van_kw * dt_h
                need[van] = remaining_kwh if remaining_kwh > 0.0 else 0.0
                delivered_kw += van_kw
        return delivered_kw
