"""Verification: the ERAB standard baseline per site and slot, and the delivered reduction per event.

Baseline rules are :func:`vpp.domain.baseline.standard_baseline` (High 4 of 5 on weekdays, High 2 of 3
on weekends and Japanese holidays, 30-day look-back, exclusions, tie-break, same-day adjustment);
reduction = adjusted baseline − metered import, kWh per slot; for an "increase" event the delivery is the
increase, metered import − adjusted baseline (stored in the same column, see migration 0006). A slot counts
as metered only when the meter covered most of it (``min_coverage``), so a gateway outage is not mistaken
for a reduction. Where other events were in force at the site in the same slot, the event keeps its part of
the site's one delivery (:func:`vpp.domain.dr_events.attribution_shares`), so it is settled once.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import psycopg

from vpp.domain.baseline import (
    BaselineSettings,
    InsufficientHistory,
    japanese_holiday_checker,
    reductions_kwh,
    standard_baseline,
)
from vpp.domain.dr_events import OWN_CONTROL_SOURCES, Direction, attribution_shares, delivered_kwh
from vpp.domain.openadr import fill_from_reports
from vpp.domain.slots import SLOT
from vpp.log import kv
from vpp.postgres import dr_events as store
from vpp.postgres.dr_verification import ReductionRow, dispatched_dr_days, other_events_at_site, save_reductions
from vpp.postgres.energy_history import daily_slots, jst_midnight
from vpp.postgres.openadr_dr import reported_usage_day

from .event_planning import event_slots
from .metrics import SchedulerMetrics

__all__ = ["VerificationConfig", "verify_event"]

log = logging.getLogger("vpp.dr_scheduler.verification")


@dataclass(frozen=True)
class VerificationConfig:
    baseline: BaselineSettings = field(default_factory=BaselineSettings)
    min_coverage: float = 0.9
    # Verify only this long after an event ends. Gateways send readings in batches (up to a few
    # minutes late) and the rollup lets a slot settle before recomputing it (ingest_rollup_delay_s);
    # verifying at once would read the last slot before all of it is in, and a verified slot with
    # coverage above `min_coverage` is not verified again.
    settle: timedelta = timedelta(minutes=5)


def verify_event(
    conn: psycopg.Connection, event_id: str, now: datetime, config: VerificationConfig, metrics: SchedulerMetrics
) -> int:
    """Compute and store every called site's baseline and reductions; return the number of sites verified."""
    event = store.get_event(conn, event_id)
    if event is None:
        raise LookupError(f"no DR event {event_id!r}")
    day, first, end = event_slots(event.start_at, event.end_at)
    is_holiday = japanese_holiday_checker()
    verified = 0
    try:
        for site in store.event_sites(conn, event.pk):
            lookback = day - timedelta(days=config.baseline.lookback_days + 1)
            history = daily_slots(conn, site.site_pk, lookback, day, "import_kwh", config.min_coverage)
            actual = history.pop(day, None)
            # A VEN's OpenADR USAGE report fills slots its meter did not cover.
            actual = fill_from_reports(actual, reported_usage_day(conn, event.pk, site.site_pk, day))
            try:
                result = standard_baseline(
                    history, day, (first, end), is_holiday=is_holiday,
                    dr_days=dispatched_dr_days(conn, site.site_pk, day, event.pk), event_day_actual=actual,
                    settings=config.baseline,
                )  # fmt: skip
            except InsufficientHistory as error:
                log.warning("site not verified", extra=kv(event_id=event_id, site_id=site.site_id, reason=str(error)))
                continue
            actual_values = actual if actual is not None else [None] * 48
            reductions = delivered_kwh(reductions_kwh(result, actual_values), event.direction)
            # The site's one meter: where other events were in force there too, this event's part only.
            slot_starts = [jst_midnight(day) + slot * SLOT for slot in range(first, end)]
            shares = attribution_shares(
                slot_starts, site.allocated_kw, event.source in OWN_CONTROL_SOURCES, event.direction,
                other_events_at_site(conn, site.site_pk, event.pk, event.start_at, event.end_at),
            )  # fmt: skip
            rows = [
                ReductionRow(
                    slot_start, result.adjusted_kwh[slot], actual_values[slot],
                    None if math.isnan(reduction) else reduction * share,
                )
                for slot, slot_start, reduction, share in zip(
                    range(first, end), slot_starts, reductions, shares, strict=True
                )
            ]  # fmt: skip
            save_reductions(conn, event.pk, site.site_pk, rows, result.method, now)
            delivered = sum(r.reduction_kwh for r in rows if r.reduction_kwh is not None)
            if event.direction == Direction.REDUCE:  # the metric counts reductions, not absorbed surplus
                metrics.verified_kwh.inc(max(delivered, 0.0))
            verified += 1
            log.info(
                "reduction verified",
                extra=kv(event_id=event_id, site_id=site.site_id, method=result.method, direction=event.direction,
                         delivered_kwh=round(delivered, 3),
                         adjustment_kwh=round(result.adjustment_kwh, 3), chosen_days=[d.isoformat() for d in result.chosen_days]),
            )  # fmt: skip
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    return verified
