"""Is an import limit plausible for a site? Checked at the moment a limit is about to be published.

A limit far above anything the site can draw is not a harmless no-op: it is the visible end of bad
data upstream (the issue behind this check: corrupted 30-minute history made the scheduler publish
an IMPORT_CAPACITY_LIMIT of 6,577 kW to a ~20 kW site), and an EMS that trusts it may release every
constraint it had. The scheduler refuses such a limit, raises an alarm, and says why.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SiteCapacity", "implausible_limit"]


@dataclass(frozen=True)
class SiteCapacity:
    """What bounds a site's import: its rated import (None if unknown) and its recent demand history."""

    site_id: str
    rated_import_kw: float | None
    history_p95_kw: float | None  # 95th percentile of 30-minute demand over the covered recent slots
    history_slots: int = 0


# Below this many covered slots (a day) the history says too little to judge by.
MIN_HISTORY_SLOTS = 48


def implausible_limit(
    limit_kw: float, capacity: SiteCapacity, *, history_factor: float = 3.0, history_margin_kw: float = 10.0
) -> str | None:
    """Why `limit_kw` cannot be meant for this site, or None if it is plausible."""
    if limit_kw != limit_kw or limit_kw < 0:  # NaN or negative
        return f"import limit {limit_kw} kW for {capacity.site_id} is not a non-negative number"
    if capacity.rated_import_kw is not None and limit_kw > capacity.rated_import_kw:
        return (
            f"import limit {limit_kw:.1f} kW for {capacity.site_id} is above its rated import "
            f"{capacity.rated_import_kw:.1f} kW"
        )
    if capacity.history_p95_kw is not None and capacity.history_slots >= MIN_HISTORY_SLOTS:
        ceiling = capacity.history_p95_kw * history_factor + history_margin_kw
        if limit_kw > ceiling:
            return (
                f"import limit {limit_kw:.1f} kW for {capacity.site_id} is far above its history "
                f"(95th percentile {capacity.history_p95_kw:.1f} kW over {capacity.history_slots} slots; "
                f"ceiling {ceiling:.1f} kW)"
            )
    return None
