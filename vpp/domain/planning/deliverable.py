"""What a site can really deliver in a DR window, from its own forecast plan, and the plan that delivers it.

A regional "X kW less" event is shared among sites by what each can deliver (:mod:`vpp.domain.allocation`).
Nominal figures (battery rating, EV energy anywhere near the window) promise what the site cannot do: a
battery that starts the day empty, must end it as full as it started, or sits at a site whose import in
the window is lower than its rating. Here the reduction is what the site's own LP plan achieves on its
forecast:

- the *no-DR import* is the forecast day without DR: no battery, EVs charged as they arrive;
- the *baseline peak* is its highest slot in the window, kW;
- the *lowest peak* is the window peak of :func:`vpp.domain.planning.plan_peak_shift` with target 0: the
  battery starts from its state of charge at slot 0, ends at least as full (the end-SoC rule), EV
  charging moves only within the windows the forecast has, and no slot outside the window goes above
  the site's cap (its current monthly maximum demand), so the reduction never buys a new peak;
- the *deliverable* reduction = baseline peak − lowest peak, kW; it cannot exceed the forecast import in
  the window because import is never negative.

The site's limit is then baseline peak − its share, and :func:`plan_window_limit` plans to it; a share no
larger than the deliverable is reachable on the forecast by construction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from vpp.domain.planning import EvDemand, Plan, SiteFlex, plan_peak_shift, threshold_controller

__all__ = ["WindowDeliverable", "no_dr_import_kw", "outside_cap_kw", "plan_window_limit", "window_deliverable"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class WindowDeliverable:
    """A site's reduction in one window, kW (module docstring), and the plan that reaches it."""

    baseline_peak_kw: float
    lowest_peak_kw: float
    outside_cap_kw: float | None
    plan: Plan

    @property
    def deliverable_kw(self) -> float:
        return max(self.baseline_peak_kw - self.lowest_peak_kw, 0.0)


def no_dr_import_kw(base_load_kw: Sequence[float], pv_kw: Sequence[float], evs: Sequence[EvDemand]) -> FloatArray:
    """The forecast import per slot without DR (no battery, EVs charged as they arrive), kW."""
    plan = threshold_controller(base_load_kw, pv_kw, SiteFlex.without_battery(), evs, 0.0)
    return np.asarray(plan.import_kw, dtype=float)


def outside_cap_kw(monthly_max_kw: float | None, no_dr_kw: FloatArray, first: int, end: int) -> float | None:
    """The import cap outside the window: the month's maximum demand so far, kW.

    Never below what the day would import there without DR anyway (a cap the site breaks without any
    plan says nothing about the plan); None when the month has no metered demand and the day has no slot
    outside the window.
    """
    outside = np.concatenate([no_dr_kw[:first], no_dr_kw[end:]])
    floor_kw = float(outside.max()) if outside.size else None
    if monthly_max_kw is None:
        return floor_kw
    return monthly_max_kw if floor_kw is None else max(monthly_max_kw, floor_kw)


def window_deliverable(
    base_load_kw: Sequence[float],
    pv_kw: Sequence[float],
    flex: SiteFlex,
    evs: Sequence[EvDemand],
    first: int,
    end: int,
    price_jpy_per_kwh: Sequence[float],
    monthly_max_kw: float | None = None,
) -> WindowDeliverable:
    """The site's deliverable reduction in slots [first, end), kW, from its own forecast plan.

    Raises :class:`vpp.domain.planning.InfeasiblePlan` when the site cannot be planned at all.
    """
    if not 0 <= first < end <= len(base_load_kw):
        raise ValueError(f"window [{first}, {end}) is outside the horizon of {len(base_load_kw)} slots")
    no_dr = no_dr_import_kw(base_load_kw, pv_kw, evs)
    cap = outside_cap_kw(monthly_max_kw, no_dr, first, end)
    plan = plan_peak_shift(
        base_load_kw, pv_kw, flex, evs, price_jpy_per_kwh, range(first, end), window_target_kw=0.0, outside_cap_kw=cap
    )
    lowest = float(max(plan.import_kw[first:end]))
    return WindowDeliverable(float(no_dr[first:end].max()), lowest, cap, plan)


def plan_window_limit(
    base_load_kw: Sequence[float],
    pv_kw: Sequence[float],
    flex: SiteFlex,
    evs: Sequence[EvDemand],
    first: int,
    end: int,
    limit_kw: float,
    price_jpy_per_kwh: Sequence[float],
    cap_kw: float | None,
) -> Plan:
    """The site's plan for its share: window import ≤ ``limit_kw``, nothing outside above ``cap_kw``.

    ``target_met`` on the returned plan says whether the limit is reachable on the forecast.
    """
    return plan_peak_shift(
        base_load_kw, pv_kw, flex, evs, price_jpy_per_kwh, range(first, end),
        window_target_kw=max(limit_kw, 0.0), outside_cap_kw=cap_kw,
    )  # fmt: skip
