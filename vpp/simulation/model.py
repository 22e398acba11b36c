"""A pure simulation of one site's EMS and its devices, publishing MQTT telemetry v1 readings.

No I/O and no clock: the caller passes every instant. :meth:`SiteSimulator.step` advances the physics
from the previous instant to `now` and returns one reading per device (DESIGN.md section 3). Each
reading's ``power_kw`` is the average over that step, so every energy counter advances by exactly
``power_kw × hours`` (net of the opposite counter for the meter and the battery), and
site load = meter + pv + battery holds in every reading.

Steps are split internally at 30-minute slot boundaries (the demand controller's unit) and at most every
15 minutes, so a caller may step by anything from a second to hours.
"""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime
from typing import ClassVar

import numpy as np

from vpp.domain.dr_events import DrSignal
from vpp.simulation.ems import allowed_import_kw, dispatch
from vpp.simulation.ev import EvFleet, EvPlan
from vpp.simulation.load import is_off_day, load_factor
from vpp.simulation.solar import CloudModel, clear_sky_poa_table, location_key
from vpp.simulation.spec import SiteSpec, SiteState, fleet_specs

__all__ = ["SiteSimulator", "SiteSpec", "SiteState", "fleet_specs"]

_HOUR_S = 3_600.0
_DAY_S = 86_400.0
_SLOT_S = 1_800.0
_JST_OFFSET_S = 9 * _HOUR_S
_MAX_SUBSTEP_S = 900.0
_KEPT_SLOT_IMPORTS = 96

_PERFORMANCE_RATIO = 0.8  # inverter, temperature, soiling and wiring losses on plane-of-array irradiance
_BATTERY_EFFICIENCY = 0.92  # each way, so ~85% round trip
_SOC_MIN = 0.10
_SOC_MAX = 0.95
_SOC_RESERVE = 0.50  # below this the battery is kept for demand control; above it, for self-consumption
_DEMAND_MARGIN = 0.98  # aim under the target: load noise arrives after the decision for the slot
_FLOOR_MARGIN = 1.02  # and over a DR import floor, for the same reason
_PRECHARGE_LEAD_S = 6 * _HOUR_S  # fill the battery this long before a DR limit starts (empty it before a floor)
_GRID_CHARGE_FROM_H, _GRID_CHARGE_TO_H = 22.0, 6.0  # JST off-peak window for refilling the reserve

# Non-EV load noise: multiplicative, a slow (weather, air conditioning) and a fast (machines) component.
_LOAD_SLOW_TAU_S, _LOAD_SLOW_SIGMA = 2 * _HOUR_S, 0.08
_LOAD_FAST_TAU_S, _LOAD_FAST_SIGMA = 300.0, 0.06
_NORMAL_BATCH = 1024


def _require_aware(moment: datetime, name: str) -> float:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {moment.isoformat()}")
    return moment.timestamp()


def _site_seed(site_id: str) -> int:
    # Python's hash() is salted per process; a digest keeps a site's randomness stable across runs.
    return int.from_bytes(hashlib.blake2b(site_id.encode(), digest_size=8).digest(), "big")


class SiteSimulator:
    """One site's meter, PV, battery and EV chargers under its EMS, stepped by the caller's clock."""

    DEVICES: ClassVar[dict[str, str]] = {
        "meter-1": "meter",
        "pv-1": "pv",
        "battery-1": "battery",
        "ev-1": "ev_charger",
    }

    def __init__(self, spec: SiteSpec, start: datetime, seed: int = 0) -> None:
        start_s = _require_aware(start, "start")
        if min(spec.pv_kw, spec.battery_kwh, spec.battery_power_kw, spec.ev_charger_kw, spec.ev_daily_kwh) < 0:
            raise ValueError(f"{spec.site_id}: capacities must be >= 0")
        if spec.ev_count < 0 or spec.base_load_kw < 0 or spec.demand_target_kw <= 0:
            raise ValueError(f"{spec.site_id}: ev_count and base_load_kw must be >= 0, demand_target_kw > 0")
        self.spec = spec
        self._rng = np.random.default_rng([seed, _site_seed(spec.site_id)])
        rng = self._rng
        self._cloud = CloudModel.from_cloudiness(spec.cloudiness)
        self._location = location_key(spec.latitude, spec.longitude)
        self._has_pv = spec.pv_kw > 0
        self._has_battery = spec.battery_kwh > 0 and spec.battery_power_kw > 0
        self._ev = (
            EvFleet(spec.ev_count, spec.ev_charger_kw, spec.ev_daily_kwh, start_s, rng)
            if spec.ev_count > 0 and spec.ev_charger_kw > 0
            else None
        )
        self._soc_min_kwh = _SOC_MIN * spec.battery_kwh
        self._soc_max_kwh = _SOC_MAX * spec.battery_kwh
        self._stored_kwh = _SOC_RESERVE * spec.battery_kwh
        # Real meters and inverters have run for years before the simulation starts.
        offsets = rng.random(6).tolist()
        self._import_kwh = 1_000.0 + 20_000.0 * spec.base_load_kw * offsets[0]
        self._export_kwh = 2_000.0 * spec.pv_kw * offsets[1]
        self._pv_kwh = 3_000.0 * spec.pv_kw * offsets[2]
        self._charge_kwh = 300.0 * spec.battery_kwh * offsets[3]
        self._discharge_kwh = self._charge_kwh * _BATTERY_EFFICIENCY**2
        self._ev_kwh = 2_000.0 * spec.ev_count * spec.ev_daily_kwh / 14.0 * offsets[4]
        self._cloud_slow_z, self._cloud_fast_z, self._load_slow_z, self._load_fast_z = rng.standard_normal(4).tolist()
        self._normals: list[float] = []
        self._normal_at = 0
        self._decay_dt_s = -1.0
        self._decays: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0)
        self._shocks: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0)
        self._t_s = start_s
        self._ts = start
        self._slot = -1
        self._slot_import_kwh = 0.0
        self._start_s = start_s
        # Grid import of each slot the simulation covered whole, slot start (s) -> kWh: what a VEN reports
        # as its metered usage per slot. Only the recent ones are kept.
        self._slot_imports: dict[float, float] = {}
        self._day_jst = -1
        self._off_day = False
        self._pv_day = -1
        self._pv_table: list[float] = []
        # DR windows (start_s, end_s, limit_kw, floor_kw), disjoint and sorted; None = no limit / no floor.
        self._limits: list[tuple[float, float, float | None, float | None]] = []
        self._powers = (0.0, 0.0, 0.0, 0.0, 0.0)  # base, pv, ev, battery, grid: the last step's averages
        self._readings: dict[str, dict[str, object]] | None = None
        self._devices = {
            device_id: kind
            for device_id, kind in self.DEVICES.items()
            if (kind != "pv" or self._has_pv)
            and (kind != "battery" or self._has_battery)
            and (kind != "ev_charger" or self._ev is not None)
        }

    @property
    def devices(self) -> dict[str, str]:
        """The devices this site has, device_id -> kind."""
        return dict(self._devices)

    @property
    def state(self) -> SiteState:
        """A snapshot for tests and the status display (not part of the telemetry contract)."""
        base_kw, pv_kw, ev_kw, battery_kw, grid_kw = self._powers
        capacity_kwh = self.spec.battery_kwh
        limit_kw, floor_kw = self._window_at(self._t_s)
        return SiteState(
            ts=self._ts,
            soc_pct=100.0 * self._stored_kwh / capacity_kwh if self._has_battery else 0.0,
            battery_stored_kwh=self._stored_kwh if self._has_battery else 0.0,
            load_kw=base_kw + ev_kw,
            base_load_kw=base_kw,
            pv_kw=pv_kw,
            battery_kw=battery_kw,
            ev_kw=ev_kw,
            grid_kw=grid_kw,
            import_kwh=self._import_kwh,
            export_kwh=self._export_kwh,
            pv_energy_kwh=self._pv_kwh,
            battery_charge_kwh=self._charge_kwh,
            battery_discharge_kwh=self._discharge_kwh,
            ev_energy_kwh=self._ev_kwh,
            vehicles=self._ev.vehicles if self._ev else 0,
            ev_needed_kwh=self._ev.needed_kwh if self._ev else 0.0,
            ev_unmet_kwh=self._ev.unmet_kwh if self._ev else 0.0,
            slot_import_kwh=self._slot_import_kwh,
            import_limit_kw=limit_kw,
            import_floor_kw=floor_kw,
            clear_sky_index=self._cloud.index(self._cloud_slow_z, self._cloud_fast_z),
        )

    def slot_imports_kwh(self, since: datetime) -> dict[datetime, float]:
        """Grid import (kWh) of each complete 30-minute slot starting at or after `since`, by slot start (UTC).

        What the site's meter would report per slot; only slots the simulation covered from their start,
        and only the last two days of them."""
        since_s = _require_aware(since, "since")
        return {
            datetime.fromtimestamp(start_s, UTC): kwh
            for start_s, kwh in self._slot_imports.items()
            if start_s >= since_s
        }

    def set_import_limit(
        self, start: datetime, end: datetime, limit_kw: float | None, floor_kw: float | None = None
    ) -> None:
        """DR signal interval: keep 30-min average grid import <= limit_kw (and >= floor_kw, an "increase"
        event) during [start, end); both None clears.

        A new window replaces whatever overlapped it. The site's own demand target still applies, so the
        effective target is the lower of the two, and a floor never pushes import above it. Windows are
        meant to be slot-aligned, as DR intervals are: in a slot the window enters halfway, the energy
        imported before it still counts.
        """
        start_s, end_s = _require_aware(start, "start"), _require_aware(end, "end")
        if end_s <= start_s:
            raise ValueError(f"end {end.isoformat()} must be after start {start.isoformat()}")
        for name, value in (("limit_kw", limit_kw), ("floor_kw", floor_kw)):
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0 or None, got {value}")
        kept: list[tuple[float, float, float | None, float | None]] = []
        for window_start, window_end, window_limit, window_floor in self._limits:
            if window_start < start_s:
                kept.append((window_start, min(window_end, start_s), window_limit, window_floor))
            if window_end > end_s:
                kept.append((max(window_start, end_s), window_end, window_limit, window_floor))
        if limit_kw is not None or floor_kw is not None:
            kept.append((start_s, end_s, limit_kw, floor_kw))
        self._limits = sorted(kept)

    def apply_signal(self, signal: DrSignal) -> None:
        """Obey a site's DR signal: it carries every interval in effect at the site (the v1 contract), so it
        replaces all earlier windows; a cancellation (no intervals) clears them."""
        self._limits = []
        if signal.status == "active":
            for interval in signal.intervals:
                self.set_import_limit(interval.start, interval.end, interval.import_limit_kw, interval.import_floor_kw)

    def step(self, now: datetime) -> dict[str, dict[str, object]]:
        """Advance to `now` and return one MQTT telemetry v1 reading per device, keyed by device_id.

        ``power_kw`` is the average over the step ending at `now`. Stepping to the previous instant
        again returns the previous readings; the first call at the start instant previews the powers the
        EMS would choose then, without advancing anything.
        """
        end_s = _require_aware(now, "now")
        start_s = self._t_s
        if end_s < start_s:
            raise ValueError(f"now {now.isoformat()} is before the previous step {self._ts.isoformat()}")
        if end_s == start_s:
            if self._readings is None:
                self._powers = self._preview(start_s)
                self._readings = self._build_readings(now)
            return {device_id: dict(reading) for device_id, reading in self._readings.items()}
        if self._limits and self._limits[0][1] <= start_s:
            self._limits = [window for window in self._limits if window[1] > start_s]

        t_s = start_s
        step_end_s = min(end_s, (t_s // _SLOT_S + 1) * _SLOT_S, t_s + _MAX_SUBSTEP_S)
        if step_end_s == end_s:
            self._powers = self._substep(t_s, end_s - t_s)
        else:
            kw_seconds = [0.0] * 5
            while t_s < end_s:
                powers = self._substep(t_s, step_end_s - t_s)
                for index in range(5):
                    kw_seconds[index] += powers[index] * (step_end_s - t_s)
                t_s = step_end_s
                step_end_s = min(end_s, (t_s // _SLOT_S + 1) * _SLOT_S, t_s + _MAX_SUBSTEP_S)
            duration_s = end_s - start_s
            base_kw, pv_kw, ev_kw, battery_kw, grid_kw = (value / duration_s for value in kw_seconds)
            self._powers = (base_kw, pv_kw, ev_kw, battery_kw, grid_kw)
        self._t_s = end_s
        self._ts = now
        self._readings = self._build_readings(now)
        return self._readings

    def _build_readings(self, now: datetime) -> dict[str, dict[str, object]]:
        ts = now.isoformat()
        _, pv_kw, ev_kw, battery_kw, grid_kw = self._powers
        readings: dict[str, dict[str, object]] = {
            "meter-1": {"ts": ts, "power_kw": grid_kw, "import_kwh": self._import_kwh, "export_kwh": self._export_kwh}
        }
        if self._has_pv:
            readings["pv-1"] = {"ts": ts, "power_kw": pv_kw, "energy_kwh": self._pv_kwh}
        if self._has_battery:
            readings["battery-1"] = {
                "ts": ts,
                "power_kw": battery_kw,
                "soc_pct": 100.0 * self._stored_kwh / self.spec.battery_kwh,
                "charge_kwh": self._charge_kwh,
                "discharge_kwh": self._discharge_kwh,
            }
        if self._ev is not None:
            readings["ev-1"] = {"ts": ts, "power_kw": ev_kw, "energy_kwh": self._ev_kwh, "vehicles": self._ev.vehicles}
        return readings

    def _substep(self, t_s: float, dt_s: float) -> tuple[float, float, float, float, float]:
        """Advance over [t_s, t_s + dt_s), within one slot; return (base, pv, ev, battery, grid) in kW."""
        slot = int(t_s // _SLOT_S)
        if slot != self._slot:
            self._slot = slot
            self._slot_import_kwh = 0.0
        self._advance_noise(dt_s)
        dt_h = dt_s / _HOUR_S
        base_kw, pv_kw, plan, ev_target_kw, battery_kw = self._decide(t_s, dt_s)
        ev_kw = self._ev.charge(plan, ev_target_kw, dt_h) if self._ev is not None else 0.0
        if battery_kw > 0.0:
            self._stored_kwh = max(self._soc_min_kwh, self._stored_kwh - battery_kw * dt_h / _BATTERY_EFFICIENCY)
            self._discharge_kwh += battery_kw * dt_h
        elif battery_kw < 0.0:
            self._stored_kwh = min(self._soc_max_kwh, self._stored_kwh - battery_kw * dt_h * _BATTERY_EFFICIENCY)
            self._charge_kwh -= battery_kw * dt_h
        grid_kw = base_kw + ev_kw - pv_kw - battery_kw
        if grid_kw > 0.0:
            self._import_kwh += grid_kw * dt_h
            self._slot_import_kwh += grid_kw * dt_h
        else:
            self._export_kwh -= grid_kw * dt_h
        slot_start_s = slot * _SLOT_S
        # Substeps end exactly on slot boundaries (up to float rounding of t_s + dt_s).
        if t_s + dt_s >= slot_start_s + _SLOT_S - 1e-6 and slot_start_s >= self._start_s:
            self._slot_imports[slot_start_s] = self._slot_import_kwh
            if len(self._slot_imports) > _KEPT_SLOT_IMPORTS:
                del self._slot_imports[next(iter(self._slot_imports))]  # inserted in time order
        self._pv_kwh += pv_kw * dt_h
        self._ev_kwh += ev_kw * dt_h
        return base_kw, pv_kw, ev_kw, battery_kw, grid_kw

    def _preview(self, t_s: float) -> tuple[float, float, float, float, float]:
        base_kw, pv_kw, _, ev_kw, battery_kw = self._decide(t_s, 0.0)
        return base_kw, pv_kw, ev_kw, battery_kw, base_kw + ev_kw - pv_kw - battery_kw

    def _decide(self, t_s: float, dt_s: float) -> tuple[float, float, EvPlan, float, float]:
        """Base load, PV, the vans' plan and the EMS's choice of EV and battery power for one substep."""
        spec = self.spec
        # A zero-length preview still needs finite energy-to-power limits.
        dt_h = max(dt_s, 1.0) / _HOUR_S
        local_s = t_s + _JST_OFFSET_S
        day_jst = int(local_s // _DAY_S)
        if day_jst != self._day_jst:
            self._day_jst = day_jst
            self._off_day = is_off_day(day_jst)
        hour_jst = (local_s - day_jst * _DAY_S) / _HOUR_S
        noise = 1.0 + _LOAD_SLOW_SIGMA * self._load_slow_z + _LOAD_FAST_SIGMA * self._load_fast_z
        base_kw = spec.base_load_kw * load_factor(hour_jst, self._off_day) * (noise if noise > 0.2 else 0.2)
        pv_kw = self._pv_power_kw(t_s + 0.5 * dt_s) if self._has_pv else 0.0

        ev = self._ev
        if ev is not None:
            ev.update_connections(t_s)
            plan = ev.plan(t_s, dt_h)
        else:
            plan = _NO_EV_PLAN

        limit_kw, floor_kw = self._window_at(t_s) if self._limits else (None, None)
        target_kw = spec.demand_target_kw if limit_kw is None else min(spec.demand_target_kw, limit_kw)
        remaining_h = ((t_s // _SLOT_S + 1) * _SLOT_S - t_s) / _HOUR_S
        allowed_kw = allowed_import_kw(_DEMAND_MARGIN * target_kw, self._slot_import_kwh, remaining_h)
        required_kw = (
            None
            if floor_kw is None
            else allowed_import_kw(_FLOOR_MARGIN * floor_kw, self._slot_import_kwh, remaining_h)
        )

        if self._has_battery:
            rating_kw = spec.battery_power_kw
            stored_kwh = self._stored_kwh
            coming = self._window_starts_soon(t_s) if limit_kw is None and floor_kw is None else None
            # Before a limit the battery fills up to cover it; before a floor it empties to make room to absorb.
            precharge, predrain = coming == "limit", coming == "floor"
            reserve_kwh = (
                self._soc_max_kwh if precharge else self._soc_min_kwh if predrain else _SOC_RESERVE * spec.battery_kwh
            )
            discharge_max_kw = min(rating_kw, max(0.0, stored_kwh - self._soc_min_kwh) * _BATTERY_EFFICIENCY / dt_h)
            charge_max_kw = min(rating_kw, max(0.0, self._soc_max_kwh - stored_kwh) / _BATTERY_EFFICIENCY / dt_h)
            free_kw = 0.0 if precharge else min(discharge_max_kw, max(0.0, stored_kwh - reserve_kwh) / dt_h)
            off_peak = hour_jst >= _GRID_CHARGE_FROM_H or hour_jst < _GRID_CHARGE_TO_H
            grid_charge_kw = (
                min(charge_max_kw, max(0.0, reserve_kwh - stored_kwh) / _BATTERY_EFFICIENCY / dt_h)
                if precharge or (off_peak and limit_kw is None)
                else 0.0
            )
            ev_kw, battery_kw = dispatch(
                base_kw - pv_kw, plan, allowed_kw, discharge_max_kw, charge_max_kw, free_kw, grid_charge_kw,
                required_kw,
            )  # fmt: skip
        else:
            ev_kw, battery_kw = dispatch(base_kw - pv_kw, plan, allowed_kw, 0.0, 0.0, 0.0, 0.0, required_kw)
        return base_kw, pv_kw, plan, ev_kw, battery_kw

    def _pv_power_kw(self, mid_s: float) -> float:
        day = int(mid_s // _DAY_S)
        if day != self._pv_day:
            self._pv_table = clear_sky_poa_table(day, *self._location)
            self._pv_day = day
        table = self._pv_table
        minute_f = (mid_s - day * _DAY_S) / 60.0
        minute = int(minute_f)
        poa_w_m2 = table[minute] + (minute_f - minute) * (table[minute + 1] - table[minute])
        clear_sky_index = self._cloud.index(self._cloud_slow_z, self._cloud_fast_z)
        return self.spec.pv_kw * _PERFORMANCE_RATIO * poa_w_m2 / 1000.0 * clear_sky_index

    def _advance_noise(self, dt_s: float) -> None:
        """Ornstein-Uhlenbeck updates of the four latent N(0, 1) states over `dt_s` seconds."""
        if dt_s != self._decay_dt_s:
            taus_s = (CloudModel.SLOW_TAU_S, CloudModel.FAST_TAU_S, _LOAD_SLOW_TAU_S, _LOAD_FAST_TAU_S)
            decays = tuple(math.exp(-dt_s / tau_s) for tau_s in taus_s)
            self._decays = decays
            self._shocks = tuple(math.sqrt(1.0 - decay * decay) for decay in decays)
            self._decay_dt_s = dt_s
        at = self._normal_at
        normals = self._normals
        if at + 4 > len(normals):
            # Drawing a batch costs as much as drawing one; numpy's per-call overhead dominates.
            normals = self._normals = self._rng.standard_normal(_NORMAL_BATCH).tolist()
            at = 0
        d0, d1, d2, d3 = self._decays
        s0, s1, s2, s3 = self._shocks
        self._cloud_slow_z = d0 * self._cloud_slow_z + s0 * normals[at]
        self._cloud_fast_z = d1 * self._cloud_fast_z + s1 * normals[at + 1]
        self._load_slow_z = d2 * self._load_slow_z + s2 * normals[at + 2]
        self._load_fast_z = d3 * self._load_fast_z + s3 * normals[at + 3]
        self._normal_at = at + 4

    def _window_at(self, t_s: float) -> tuple[float | None, float | None]:
        """(limit_kw, floor_kw) in force at ``t_s``."""
        for start_s, end_s, limit_kw, floor_kw in self._limits:
            if start_s <= t_s < end_s:
                return limit_kw, floor_kw
        return None, None

    def _window_starts_soon(self, t_s: float) -> str | None:
        """ "limit" or "floor" when the next DR window within the lead time has one (a limit first), else None."""
        for start_s, _, limit_kw, _floor_kw in self._limits:
            if t_s < start_s <= t_s + _PRECHARGE_LEAD_S:
                return "limit" if limit_kw is not None else "floor"
        return None


_NO_EV_PLAN = EvPlan(0.0, 0.0, 0.0)
