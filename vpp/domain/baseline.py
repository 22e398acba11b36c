"""Standard DR baseline: METI ERAB guideline "High 4 of 5, same-day adjusted", per 30-minute slot.

The baseline is what a site would have used in each slot of the event day had there been no DR
event. It is built from the site's own recent history:

1. Look back up to ``lookback_days`` calendar days before the event day (the event day itself is
   never used).
2. Candidates are days of the event day's type: weekdays for a weekday event, weekends and Japanese
   public holidays for a weekend/holiday event.
3. Skip earlier DR event days and days with missing data (absent, not 48 slots, None or NaN).
4. Skip low-use days: a candidate whose mean use over the DR window is below
   ``low_use_ratio`` × the mean of all candidates' DR-window means (the candidates being every
   day that survived steps 2-3 in the lookback period).
5. Pool the ``pool`` most recent eligible days (5 weekdays / 3 holidays), keep the ``keep``
   (4 / 2) with the highest DR-window use. Ties are broken by dropping the day farthest from the
   event. Average the kept days slot by slot.
6. Same-day adjustment: the mean of (actual − baseline) over the slots from 4 h to 1 h before the
   event start is added to every event slot, optionally capped.

Reduction per event slot = adjusted baseline − actual kWh at the site's meter.

Decisions (the guideline leaves these open or the product chose them):

- Too few eligible days: by default :class:`InsufficientHistory` is raised, because a settlement
  baseline must be defensible. With ``BaselineSettings.allow_degraded`` the available days (at
  least one) are averaged and ``method`` is ``"degraded"`` so that operational estimates still
  work; such a result must not be used for settlement.
- When fewer than ``pool`` but at least ``keep`` eligible days exist, all of them are pooled and
  ``method`` says so, e.g. ``"high4of4"``.
- Every day of the lookback period ends up either in ``chosen_days`` or in ``excluded`` with a
  reason, so a verification report can show why each day was (not) used.
- The adjustment window may reach back across midnight. Those slots are then taken from the day
  before the event (actual) and from the days before the chosen days (baseline). When any of that
  data is missing the window is shrunk to the event day's part and a note is recorded; when nothing
  is left the adjustment is zero and a note says why.
- The adjustment needs every slot of its window to be known; with unknown actuals it is not applied
  (``adjustment_applied`` is False), so a partial window never produces a value that later changes.
- The adjusted baseline is not clipped at zero; use ``adjust_cap_ratio`` to bound the adjustment.

Reference: 経済産業省「エネルギー・リソース・アグリゲーション・ビジネスに関するガイドライン」,
standard baseline (High 4 of 5 with same-day adjustment).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum

import holidays
import numpy as np
import numpy.typing as npt

from vpp.domain.slots import SLOT, SLOTS_PER_DAY

__all__ = [
    "BaselineResult",
    "BaselineSettings",
    "Exclusion",
    "InsufficientHistory",
    "japanese_holiday_checker",
    "reductions_kwh",
    "standard_baseline",
]

FloatArray = npt.NDArray[np.float64]

# Window means equal to this many decimals (1e-9 kWh) count as a tie: hand-equal days must not be
# ranked by floating-point noise.
_TIE_DECIMALS = 9


class InsufficientHistory(ValueError):  # noqa: N818 - name fixed by the product vocabulary
    """Too few eligible days in the lookback period to form the standard baseline."""


class Exclusion(StrEnum):
    """Why a day of the lookback period was not used in the baseline."""

    OTHER_DAY_TYPE = "other_day_type"
    DR_DAY = "dr_day"
    MISSING_DATA = "missing_data"
    LOW_USE = "low_use"
    OLDER_THAN_POOL = "older_than_pool"
    NOT_IN_TOP = "not_in_top"


@dataclass(frozen=True)
class BaselineSettings:
    """Parameters of the standard baseline (the guideline's values are the defaults).

    Attributes
    ----------
    lookback_days : int
        Calendar days before the event day that may be searched.
    weekday_pool, weekday_keep : int
        Weekday event: pool the most recent ``pool`` eligible weekdays, keep the ``keep`` highest.
    holiday_pool, holiday_keep : int
        Weekend/holiday event: the same over weekends and public holidays.
    low_use_ratio : float
        A day is low-use when its DR-window mean is below this fraction of the candidates' mean.
    adjust_from_before, adjust_to_before : timedelta
        Same-day adjustment window [event start − from, event start − to); whole 30-minute slots.
    adjust_cap_ratio : float or None
        Cap on |adjustment| as a fraction of the unadjusted baseline's mean over the event window
        (unverified in the guideline, hence a setting); None means uncapped.
    allow_degraded : bool
        Average whatever eligible days exist (≥ 1) instead of raising :class:`InsufficientHistory`.
    """

    lookback_days: int = 30
    weekday_pool: int = 5
    weekday_keep: int = 4
    holiday_pool: int = 3
    holiday_keep: int = 2
    low_use_ratio: float = 0.25
    adjust_from_before: timedelta = timedelta(hours=4)
    adjust_to_before: timedelta = timedelta(hours=1)
    adjust_cap_ratio: float | None = None
    allow_degraded: bool = False

    def __post_init__(self) -> None:
        if self.lookback_days < 1:
            raise ValueError(f"lookback_days must be ≥ 1, got {self.lookback_days}")
        for pool, keep, kind in (
            (self.weekday_pool, self.weekday_keep, "weekday"),
            (self.holiday_pool, self.holiday_keep, "holiday"),
        ):
            if not 1 <= keep <= pool:
                raise ValueError(f"{kind}: need 1 ≤ keep ≤ pool, got keep={keep}, pool={pool}")
        if not 0.0 <= self.low_use_ratio < 1.0:
            raise ValueError(f"low_use_ratio must be in [0, 1), got {self.low_use_ratio}")
        for name in ("adjust_from_before", "adjust_to_before"):
            span: timedelta = getattr(self, name)
            if span < timedelta(0) or span % SLOT:
                raise ValueError(f"{name} must be a non-negative whole number of 30-minute slots")
        if self.adjust_from_before <= self.adjust_to_before:
            raise ValueError("adjust_from_before must be longer than adjust_to_before")
        if self.adjust_cap_ratio is not None and not self.adjust_cap_ratio >= 0.0:
            raise ValueError(f"adjust_cap_ratio must be ≥ 0 or None, got {self.adjust_cap_ratio}")


@dataclass(frozen=True)
class BaselineResult:
    """A baseline for one site and one event day.

    Attributes
    ----------
    slots_kwh : tuple of float
        48 unadjusted baseline values, kWh per slot (slot 0 = 00:00-00:30 JST).
    adjusted_kwh : tuple of float
        48 values, kWh; the same-day adjustment added on the event slots only.
    adjustment_kwh : float
        Adjustment added to each event slot, kWh per slot (after the cap; 0 when not applied).
    adjustment_applied : bool
        False when the actuals needed for the adjustment were unknown.
    adjustment_window : tuple of int
        [first, end) slot indices relative to the event day actually used; negative indices are
        slots of the previous day (-1 = 23:30-24:00).
    chosen_days : tuple of date
        Days averaged, most recent first.
    excluded : dict of date to str
        Every other day of the lookback period with an :class:`Exclusion` reason.
    method : str
        ``"high4of5"``-style name of the rule applied, or ``"degraded"``.
    event_slots : tuple of int
        [start, end) event slot indices on the event day.
    notes : tuple of str
        Human-readable remarks (window shrunk, cap applied, adjustment not applied...).
    """

    slots_kwh: tuple[float, ...]
    adjusted_kwh: tuple[float, ...]
    adjustment_kwh: float
    adjustment_applied: bool
    adjustment_window: tuple[int, int]
    chosen_days: tuple[date, ...]
    excluded: dict[date, str]
    method: str
    event_slots: tuple[int, int]
    notes: tuple[str, ...] = ()


def japanese_holiday_checker(extra_holidays: Collection[date] = ()) -> Callable[[date], bool]:
    """Return ``is_holiday(day)``: True on Saturdays, Sundays and Japanese public holidays.

    Public holidays (substitute and "citizens'" holidays included) come from the ``holidays``
    package. ``extra_holidays`` adds site-specific closed days (e.g. 29 Dec - 3 Jan at offices).
    """
    calendar = holidays.country_holidays("JP")
    extra = frozenset(extra_holidays)

    def is_holiday(day: date) -> bool:
        return day.weekday() >= 5 or day in extra or day in calendar

    return is_holiday


def standard_baseline(
    history: Mapping[date, Sequence[float | None]],
    event_day: date,
    event_slots: tuple[int, int],
    *,
    is_holiday: Callable[[date], bool],
    dr_days: Collection[date] = (),
    event_day_actual: Sequence[float | None] | None = None,
    settings: BaselineSettings = BaselineSettings(),
) -> BaselineResult:
    """Compute the High-K-of-N same-day-adjusted baseline for one event day.

    Parameters
    ----------
    history : mapping of date to sequence of float
        48 metered kWh values per JST day (slot 0 = 00:00-00:30). Days may be absent.
    event_day : date
        The DR event day (JST).
    event_slots : tuple of int
        [start, end) 0-based slot indices of the event on ``event_day``; 0 ≤ start < end ≤ 48.
        An event crossing midnight is two events, one per day.
    is_holiday : callable
        True for days that count as holidays (weekends included), e.g.
        :func:`japanese_holiday_checker`.
    dr_days : collection of date
        Earlier DR event days, excluded from the baseline.
    event_day_actual : sequence of float or None, optional
        48 metered kWh values of the event day; None/NaN where not yet known. Without it no
        same-day adjustment is applied.
    settings : BaselineSettings
        Rule parameters.

    Returns
    -------
    BaselineResult

    Raises
    ------
    InsufficientHistory
        When fewer than ``keep`` eligible days exist (and degraded mode is off or there are none).
    ValueError
        On malformed event slots or event-day actuals.
    """
    start, end = _check_event_slots(event_slots)
    holiday_event = is_holiday(event_day)
    pool_size, keep = (
        (settings.holiday_pool, settings.holiday_keep)
        if holiday_event
        else (settings.weekday_pool, settings.weekday_keep)
    )

    excluded: dict[date, str] = {}
    complete: dict[date, FloatArray] = {}  # insertion order: most recent first
    dr = frozenset(dr_days)
    for back in range(1, settings.lookback_days + 1):
        day = event_day - timedelta(days=back)
        if is_holiday(day) != holiday_event:
            excluded[day] = Exclusion.OTHER_DAY_TYPE
        elif day in dr:
            excluded[day] = Exclusion.DR_DAY
        elif (values := _complete_day(history.get(day))) is None:
            excluded[day] = Exclusion.MISSING_DATA
        else:
            complete[day] = values

    window_mean_kwh = {day: float(values[start:end].mean()) for day, values in complete.items()}
    if window_mean_kwh:
        floor_kwh = settings.low_use_ratio * sum(window_mean_kwh.values()) / len(window_mean_kwh)
        for day, mean_kwh in window_mean_kwh.items():
            if mean_kwh < floor_kwh:
                excluded[day] = Exclusion.LOW_USE
    eligible = [day for day in complete if day not in excluded]
    pool = eligible[:pool_size]
    for day in eligible[pool_size:]:
        excluded[day] = Exclusion.OLDER_THAN_POOL

    day_kind = "holiday/weekend" if holiday_event else "weekday"
    notes: list[str] = []
    if len(pool) >= keep:
        method = f"high{keep}of{len(pool)}"
    elif pool and settings.allow_degraded:
        method = "degraded"
        notes.append(
            f"degraded: only {len(pool)} eligible {day_kind} day(s) in {settings.lookback_days} days, "
            f"all averaged instead of the rule's {keep} of {pool_size}; not for settlement"
        )
        keep = len(pool)
    else:
        raise InsufficientHistory(
            f"baseline for {event_day.isoformat()} ({day_kind}) needs {keep} eligible {day_kind} days "
            f"in the {settings.lookback_days} days before it, found {len(pool)}; "
            f"excluded: {_count_reasons(excluded)}"
        )

    # Highest DR-window use first; among equal uses the nearer day first, so the farther one drops.
    ranked = sorted(pool, key=lambda day: (-round(window_mean_kwh[day], _TIE_DECIMALS), event_day - day))
    chosen = sorted(ranked[:keep], reverse=True)
    for day in ranked[keep:]:
        excluded[day] = Exclusion.NOT_IN_TOP
    profile_kwh = np.mean([complete[day] for day in chosen], axis=0)

    adjustment = _same_day_adjustment(history, event_day, (start, end), chosen, profile_kwh, event_day_actual, settings)
    notes.extend(adjustment.notes)
    adjusted_kwh = profile_kwh.copy()
    adjusted_kwh[start:end] += adjustment.kwh
    return BaselineResult(
        slots_kwh=tuple(profile_kwh.tolist()),
        adjusted_kwh=tuple(adjusted_kwh.tolist()),
        adjustment_kwh=adjustment.kwh,
        adjustment_applied=adjustment.applied,
        adjustment_window=adjustment.window,
        chosen_days=tuple(chosen),
        excluded=dict(sorted(excluded.items())),
        method=method,
        event_slots=(start, end),
        notes=tuple(notes),
    )


def reductions_kwh(
    result: BaselineResult,
    actual_kwh: Sequence[float | None],
    event_slots: tuple[int, int] | None = None,
) -> tuple[float, ...]:
    """Delivered reduction per event slot: adjusted baseline − actual, kWh per slot.

    ``event_slots`` defaults to the result's own. Slots whose actual is unknown (None/NaN) give
    NaN, so a partially metered event is visible as such rather than counted as zero.
    """
    start, end = _check_event_slots(event_slots if event_slots is not None else result.event_slots)
    actual = _as_day_array(actual_kwh, "actual_kwh")
    baseline = np.asarray(result.adjusted_kwh, dtype=float)
    return tuple((baseline[start:end] - actual[start:end]).tolist())


@dataclass(frozen=True)
class _Adjustment:
    kwh: float
    applied: bool
    window: tuple[int, int]
    notes: tuple[str, ...]


def _same_day_adjustment(
    history: Mapping[date, Sequence[float | None]],
    event_day: date,
    event_slots: tuple[int, int],
    chosen: Sequence[date],
    profile_kwh: FloatArray,
    event_day_actual: Sequence[float | None] | None,
    settings: BaselineSettings,
) -> _Adjustment:
    """Mean (actual − baseline) over the adjustment window, kWh per slot, capped if configured."""
    start, end = event_slots
    first = start - settings.adjust_from_before // SLOT
    stop = start - settings.adjust_to_before // SLOT
    actual = None if event_day_actual is None else _as_day_array(event_day_actual, "event_day_actual")
    notes: list[str] = []
    differences: list[FloatArray] = []

    if first < 0:
        # Part of the window lies in the previous day: baseline those slots from the days before
        # the chosen days, the same way the event day's slots are baselined from the chosen days.
        prev_slots = slice(SLOTS_PER_DAY + first, SLOTS_PER_DAY + min(stop, 0))
        prev_actual = _slots_known(history.get(event_day - timedelta(days=1)), prev_slots)
        prev_days = [_slots_known(history.get(day - timedelta(days=1)), prev_slots) for day in chosen]
        known_days = [values for values in prev_days if values is not None]
        if prev_actual is not None and len(known_days) == len(prev_days):
            differences.append(prev_actual - np.mean(known_days, axis=0))
        else:
            notes.append(
                "adjustment window shrunk to the event day: previous-day data missing for "
                "the event day's eve or a chosen day's eve"
            )
            first = 0

    if stop > 0:
        today = slice(max(first, 0), stop)
        if actual is None or not np.isfinite(actual[today]).all():
            # A partial window would give a value that changes once the rest is metered.
            notes.append("same-day adjustment not applied: event-day actuals unknown in its window")
            return _Adjustment(0.0, False, (first, stop), tuple(notes))
        differences.append(actual[today] - profile_kwh[today])

    if not differences:
        notes.append("same-day adjustment not applied: no data left in the adjustment window")
        return _Adjustment(0.0, False, (0, 0), tuple(notes))

    adjustment_kwh = float(np.concatenate(differences).mean())
    if settings.adjust_cap_ratio is not None:
        cap_kwh = settings.adjust_cap_ratio * float(profile_kwh[start:end].mean())
        if abs(adjustment_kwh) > cap_kwh:
            notes.append(f"adjustment {adjustment_kwh:+.3f} kWh capped to ±{cap_kwh:.3f} kWh")
            adjustment_kwh = math.copysign(cap_kwh, adjustment_kwh)
    return _Adjustment(adjustment_kwh, True, (first, stop), tuple(notes))


def _check_event_slots(event_slots: tuple[int, int]) -> tuple[int, int]:
    start, end = event_slots
    if not 0 <= start < end <= SLOTS_PER_DAY:
        raise ValueError(f"event slots must satisfy 0 ≤ start < end ≤ 48, got [{start}, {end})")
    return start, end


def _as_day_array(values: Sequence[float | None], name: str) -> FloatArray:
    # dtype=float turns None into NaN, so "unknown" has one representation from here on.
    array = np.asarray(values, dtype=float)
    if array.shape != (SLOTS_PER_DAY,):
        raise ValueError(f"{name} must hold {SLOTS_PER_DAY} slot values, got shape {array.shape}")
    return array


def _complete_day(values: Sequence[float | None] | None) -> FloatArray | None:
    """The day's 48 values, or None when the day is absent, short or has unknown slots."""
    return _slots_known(values, slice(None))


def _slots_known(values: Sequence[float | None] | None, slots: slice) -> FloatArray | None:
    """The given slots of a day, or None unless the day has 48 values and these are all known."""
    if values is None or len(values) != SLOTS_PER_DAY:
        return None
    array = np.asarray(values, dtype=float)[slots]
    return array if np.isfinite(array).all() else None


def _count_reasons(excluded: Mapping[date, str]) -> str:
    counts: dict[str, int] = {}
    for reason in excluded.values():
        counts[reason] = counts.get(reason, 0) + 1
    return ", ".join(f"{count} {reason}" for reason, count in sorted(counts.items())) or "none"
