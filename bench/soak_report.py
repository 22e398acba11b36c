"""The soak test's report: a results table, a faults table, and a text chart of p99 lag over time."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from bench.soak_metrics import Window, merge, quantile_s

if TYPE_CHECKING:
    from bench.soak import SoakResult

__all__ = ["lag_chart", "print_report", "write_timeline"]

_ROWS_S = (30.0, 10.0, 5.0, 2.0, 1.0, 0.5, 0.25, 0.1)
_SPARK = "▁▂▃▄▅▆▇█"
_TIMELINE_COLUMNS = (
    "end_s",
    "length_s",
    "messages",
    "p50_lag_s",
    "p99_lag_s",
    "p99_publish_delay_s",
    "written",
    "stored",
    "published",
)
_MARKS = {"ingest SIGKILL": "K", "broker restart": "B", "PostgreSQL crash": "P"}


def _seconds(value: float | None, suffix: str = " s") -> str:
    return "—" if value is None else f"{value:.2f}{suffix}"


def print_report(result: SoakResult, console: Console) -> None:
    ok = "[green]✓[/]"
    bad = "[red]✗[/]"
    table = Table(title=f"Soak: {result.sites:,} sites · {result.minutes:g} min · {result.workers} ingest workers")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("", justify="center")
    duration_s = result.minutes * 60
    table.add_row(
        "messages published (broker-acked)",
        f"{result.messages_published:,}  ({result.messages_published / duration_s:,.0f}/s)",
        "",
    )
    table.add_row(
        "readings published", f"{result.readings_published:,}  ({result.readings_published / duration_s:,.0f}/s)", ""
    )
    equal = result.readings_published == result.readings_stored and result.devices_mismatched == 0
    table.add_row("readings stored", f"{result.readings_stored:,}", ok if equal else bad)
    table.add_row(
        "devices whose count or ts checksum differ",
        f"{result.devices_mismatched:,} (missing {result.readings_missing:,}, unexpected {result.readings_unexpected:,})",
        ok if result.devices_mismatched == 0 else bad,
    )
    table.add_row("duplicate rows stored", f"{result.duplicate_rows:,}", ok if result.duplicate_rows == 0 else bad)
    table.add_row("redeliveries ignored by ingest (at-least-once)", f"{result.redeliveries_ignored:,}", "")
    table.add_row(
        "PUBACKs 'no matching subscribers'",
        f"{result.unrouted_messages:,}",
        ok if result.unrouted_messages == 0 else bad,
    )
    table.add_row("dead letters", f"{result.dead_letters:,}", ok if result.dead_letters == 0 else bad)
    steady_ok = result.p99_lag_steady_s is not None and result.p99_lag_steady_s < result.lag_target_s
    within = result.within_target_steady
    table.add_row(
        "p99 ingest lag outside fault windows",
        f"{_seconds(result.p99_lag_steady_s)}  ({'—' if within is None else f'{within:.3%}'} ≤ {result.lag_target_s:g} s)",
        ok if steady_ok else bad,
    )
    table.add_row("p99 ingest lag, whole run", _seconds(result.p99_lag_overall_s), "")
    table.add_row("publisher's worst lateness behind schedule", _seconds(result.publisher_late_max_s), "")
    table.add_row(
        "  of the lag: measured → broker PUBACK in the generator (p99, steady)",
        _seconds(result.publish_delay_p99_steady_s),
        "",
    )
    table.add_row(
        "site steps the generator dropped (fell behind)",
        f"{result.site_steps_skipped:,}",
        ok if result.site_steps_skipped == 0 else bad,
    )
    load = result.load_average
    table.add_row(
        "max load average (1/5/15 min)", f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on {result.cpus} CPUs", ""
    )
    console.print(table)

    faults = Table(title="Faults (times after the publisher's start)")
    for column in ("fault", "at", "restored", "lag p99 < target after", "caught up after", "how"):
        faults.add_column(column, justify="left" if column in {"fault", "how"} else "right")
    for f in result.faults:
        faults.add_row(
            f.name,
            f"{f.started_s:.1f} s",
            _seconds(f.restored_s),
            _seconds(f.lag_recovered_s) if f.lag_recovered_s is not None else "[red]not within the run[/]",
            _seconds(f.caught_up_s),
            f.detail,
        )
    console.print(faults)
    for at_s, sessions in result.stalls:
        console.print(f"ingest stalled (no commits) at t={at_s:.0f} s; database sessions then:", style="yellow")
        for line in sessions or ["(none active)"]:
            console.print(f"  {line}", style="yellow", markup=False)
    console.print(lag_chart(result.windows, result.faults, result.minutes * 60, result.lag_target_s))
    console.print(
        "[dim]Messages: one 4-reading batch per site per interval (each device's last four interval readings, "
        "the site's devices staggered by one interval). Lag: commit time − newest reading ts, per message, "
        "from the workers' histograms; fault windows run from each fault to its restore + grace.[/]"
    )
    console.print("[bold green]PASS[/]" if result.passed else "[bold red]FAIL[/]")


def lag_chart(windows: Sequence[Window], faults: Sequence[object], duration_s: float, target_s: float) -> str:
    """p99 lag per time bin as a bar chart (log rows), stored readings/s as a sparkline, fault markers."""
    if not windows:
        return "(no data)"
    width = 72
    end_s = max(duration_s, windows[-1].end_s)
    bin_s = max(1.0, math.ceil(end_s / width))
    bins = math.ceil(end_s / bin_s)
    grouped: list[list[Window]] = [[] for _ in range(bins)]
    for window in windows:
        grouped[min(int(max(window.end_s - 1e-9, 0.0) // bin_s), bins - 1)].append(window)
    p99s = [quantile_s(merge([w.lag_buckets for w in group]), 0.99) if group else None for group in grouped]
    rates = [sum(w.written for w in group) / bin_s if group else 0.0 for group in grouped]
    lines = [f"p99 ingest lag per {bin_s:g} s (log scale; ━ marks the {target_s:g} s target)"]
    for row_s in _ROWS_S:
        label = f"{row_s:>5g} s ┤" if row_s != target_s else f"{row_s:>5g} s ┫"
        cells = "".join(
            "·" if p is None else ("█" if p >= row_s else ("━" if row_s == target_s else " ")) for p in p99s
        )
        lines.append(label + cells)
    marks = [" "] * bins
    for fault in faults:
        started = getattr(fault, "started_s", 0.0)
        restored = getattr(fault, "restored_s", None) or started
        for i in range(int(started // bin_s), min(int(restored // bin_s) + 1, bins)):
            marks[i] = "~"
        marks[min(int(started // bin_s), bins - 1)] = _MARKS.get(getattr(fault, "name", ""), "!")
    lines.append("  fault ┤" + "".join(marks))
    peak = max(rates) or 1.0
    spark = "".join(_SPARK[min(int(r / peak * (len(_SPARK) - 1) + 0.5), len(_SPARK) - 1)] for r in rates)
    lines.append(f" stored ┤{spark}  (peak {peak:,.0f} readings/s)")
    axis = [" "] * bins
    for i in range(0, bins, max(1, int(60 // bin_s))):
        for j, ch in enumerate(f"{i * bin_s:.0f}s"):
            if i + j < bins:
                axis[i + j] = ch
    lines.append("        └" + "".join(axis))
    lines.append("K ingest worker SIGKILL · B broker restart · P PostgreSQL crash · ~ until restored · '·' no commits")
    return "\n".join(lines)


def write_timeline(result: SoakResult, path: Path) -> None:
    with path.open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(_TIMELINE_COLUMNS)
        for w in result.windows:
            out.writerow(
                [
                    f"{w.end_s:.2f}",
                    f"{w.length_s:.2f}",
                    f"{w.observations:.0f}",
                    quantile_s(w.lag_buckets, 0.5),
                    quantile_s(w.lag_buckets, 0.99),
                    quantile_s(w.publish_delay_buckets, 0.99) if w.publish_delay_buckets else None,
                    f"{w.written:.0f}",
                    f"{w.stored_total:.0f}",
                    f"{w.published_total:.0f}",
                ]
            )
