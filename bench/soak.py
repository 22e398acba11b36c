"""`vpp bench soak`: a bounded fault-injection load test of ingest on loopback (issue 7).

A private PostgreSQL and Mosquitto in a temporary folder; N simulated sites registered in one COPY;
`workers` ingest processes (`python -m services.ingest`), each keeping its partition of the sites; the fleet
publisher in its own process (message shape: see `bench.soak_publisher` — one 4-reading
batch per site per interval, so 20,000 sites at 10 s are ≈2,000 messages/s and ≈8,000 readings/s).
At fixed fractions of the run it SIGKILLs ingest worker 1 (restarted after `worker_down_s`),
restarts the broker (SIGTERM, then the same port and persistence file) and crashes PostgreSQL
(`pg_ctl -m immediate`, started again after `postgres_down_s`).

Reported: readings the broker acknowledged to the publisher versus rows stored, compared per device
(count and a timestamp checksum); duplicate rows; redeliveries ingest ignored (expected after a
SIGKILL: at-least-once); dead letters; PUBACKs that said "no matching subscribers" (accepted by the
broker but routed to nobody: a loss the test would otherwise hide); p99 ingest lag outside the fault
windows (each fault's start to its restore plus `grace_s`, fixed before the run) and over the whole
run; for each fault the time from restore until lag p99 is back under the target and until every
reading acknowledged by the restore is stored.
"""

from __future__ import annotations

import io
import json
import multiprocessing as mp
import os
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from rich.console import Console

from bench.soak_harness import (
    FaultPlan,
    Harness,
    activity_snapshot,
    inject_faults,
    scalar,
    servers,
    wait_ingest_ready,
)
from bench.soak_metrics import (
    LAG_BOUNDS_S,
    Fault,
    Window,
    merge,
    quantile_s,
    recovery_s,
    share_within,
)
from bench.soak_publisher import (
    PublisherCounters,
    PublisherPlan,
    publisher_main,
)
from bench.soak_report import print_report, write_timeline

__all__ = ["FaultResult", "SoakResult", "run_soak"]

PROBE_SITE = "soak-probe"  # registered beside the fleet; its readings prove ingest is subscribed, and are not counted


@dataclass(frozen=True)
class FaultResult:
    name: str
    started_s: float  # after the publisher's start
    restored_s: float | None
    lag_recovered_s: float | None  # from restore until two windows in a row have p99 lag under target
    caught_up_s: float | None  # from restore until everything acknowledged by then is stored
    detail: str = ""


@dataclass(frozen=True)
class SoakResult:
    sites: int
    minutes: float
    interval_s: float
    workers: int
    messages_published: int  # acknowledged by the broker
    readings_published: int
    readings_stored: int
    duplicate_rows: int
    devices_mismatched: int
    readings_missing: int
    readings_unexpected: int
    redeliveries_ignored: int  # readings ingest saw again and the insert ignored (at-least-once at work)
    dead_letters: int
    unrouted_messages: int
    p99_lag_steady_s: float | None
    within_target_steady: float | None  # share of messages with lag <= target outside fault windows
    p99_lag_overall_s: float | None
    lag_target_s: float
    publisher_late_max_s: float
    publish_delay_p99_steady_s: float | None  # reading measured -> broker PUBACK, inside the load generator
    site_steps_skipped: int  # steps the generator dropped after falling an interval behind at the end
    load_average: tuple[float, float, float]  # max 1/5/15-min load seen during the run
    cpus: int
    faults: list[FaultResult] = field(default_factory=list)
    windows: list[Window] = field(default_factory=list, repr=False)
    stalls: list[tuple[float, list[str]]] = field(default_factory=list)  # (t, database sessions) when commits stop

    @property
    def passed(self) -> bool:
        return (
            self.readings_published == self.readings_stored
            and self.devices_mismatched == 0
            and self.duplicate_rows == 0
            and self.unrouted_messages == 0
            and self.dead_letters == 0
            and self.site_steps_skipped == 0
            and len(self.faults) == 3
            and self.p99_lag_steady_s is not None
            and self.p99_lag_steady_s < self.lag_target_s
            and all(f.lag_recovered_s is not None for f in self.faults)
        )


def _monitor(
    h: Harness, publisher: mp.process.BaseProcess, scrape_s: float, on_window: Callable[[Window], None]
) -> list[Window]:
    """Scrape every `scrape_s` until the publisher is done and ingest has stored what it published."""
    windows: list[Window] = []
    last_buckets, _, _ = h.sample()
    last_delay = h.publish_delays()
    last_t = h.now_s()
    settle_deadline: float | None = None
    while True:
        time.sleep(max(scrape_s - (h.now_s() - last_t), 0.05))
        buckets, stored, up = h.sample()
        delay = h.publish_delays()
        now = h.now_s()
        window = Window(
            end_s=now,
            length_s=now - last_t,
            lag_buckets=tuple(a - b for a, b in zip(buckets, last_buckets, strict=True)),
            written=0.0 if not windows else stored - windows[-1].stored_total,
            stored_total=stored,
            published_total=h.published_readings(),
            workers_up=up,
            publish_delay_buckets=tuple(a - b for a, b in zip(delay, last_delay, strict=True)),
        )
        windows.append(window)
        on_window(window)
        last_buckets, last_delay, last_t = buckets, delay, now
        publishing = publisher.is_alive()
        if not publishing and settle_deadline is None:
            settle_deadline = time.monotonic() + 120
        # The counters miss what a SIGKILLed worker wrote after its last scrape, so "stored" may never
        # reach "published" here; ten quiet seconds also end it, and the SQL check settles the count.
        quiet_s = sum(w.length_s for w in windows[-10:]) if all(w.written == 0 for w in windows[-10:]) else 0.0
        done = stored >= window.published_total or quiet_s >= 10 or time.monotonic() > (settle_deadline or 0)
        if not publishing and done:
            return windows


@dataclass(frozen=True)
class _Verdict:
    stored: int
    duplicate_rows: int
    mismatched: int
    missing: int
    unexpected: int
    dead_letters: int


def _verify(db_url: str, probe_pk: int, published_file: Path, expected: int) -> _Verdict:
    """Compare storage with what the publisher had acknowledged, device by device."""
    published: dict[str, list[int]] = json.loads(published_file.read_text())
    with psycopg.connect(db_url, autocommit=True) as conn:
        previous, stable_since = -1, time.monotonic()
        while True:  # the last batches may still be committing
            stored = scalar(conn, "SELECT count(*) FROM readings WHERE device_pk <> %s", probe_pk)
            if stored != previous:
                previous, stable_since = stored, time.monotonic()
            if stored >= expected or time.monotonic() - stable_since > 20:
                break
            time.sleep(1.0)
        rows = conn.execute(
            """SELECT s.site_id || '/' || d.device_id, count(*), sum((extract(epoch FROM r.ts) * 1000)::bigint)
               FROM readings r JOIN devices d ON d.id = r.device_pk JOIN sites s ON s.id = d.site_pk
               WHERE r.device_pk <> %s GROUP BY 1""",
            (probe_pk,),
        ).fetchall()
        duplicate_rows = scalar(
            conn,
            "SELECT count(*) - count(DISTINCT (device_pk, ts)) FROM readings WHERE device_pk <> %s",
            probe_pk,
        )
        dead_letters = scalar(conn, "SELECT count(*) FROM dead_letters")
    stored_by_device = {str(key): (int(count), int(checksum)) for key, count, checksum in rows}
    mismatched = missing = unexpected = 0
    for key in set(published) | set(stored_by_device):
        want = tuple(published.get(key, (0, 0)))
        got = stored_by_device.get(key, (0, 0))
        if want != got:
            mismatched += 1
            missing += max(want[0] - got[0], 0)
            unexpected += max(got[0] - want[0], 0)
    return _Verdict(
        sum(c for c, _ in stored_by_device.values()), duplicate_rows, mismatched, missing, unexpected, dead_letters
    )


def _max_load(current: tuple[float, float, float]) -> tuple[float, float, float]:
    now = os.getloadavg()
    return (max(current[0], now[0]), max(current[1], now[1]), max(current[2], now[2]))


def run_soak(
    sites: int = 20_000,
    minutes: float = 5.0,
    interval_s: float = 10.0,
    workers: int = 2,
    *,
    fault_at: tuple[float, float, float] = (0.25, 0.5, 0.75),
    worker_down_s: float = 5.0,
    postgres_down_s: float = 10.0,
    grace_s: float = 30.0,
    lag_target_s: float = 2.0,
    scrape_s: float = 1.0,
    seed: int = 0,
    timeline_csv: Path | None = None,
    ingest_env: Mapping[str, str] | None = None,
    console: Console | None = None,
) -> SoakResult:
    """Run the soak and return its figures; prints a table and a lag chart to `console`.

    `ingest_env` adds VPP_* settings for the ingest workers (e.g. to isolate a suspect component).
    """
    out = console or Console(file=io.StringIO())
    duration_s = minutes * 60.0
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="vpp-soak-") as tmp:
        h = Harness(Path(tmp), workers, ingest_env)
        with servers(h, sites, seed) as probe_pk:
            out.print(f"[dim]private servers up in {tmp}; {sites:,} sites registered; waiting for ingest…[/]")
            wait_ingest_ready(h, probe_pk)
            ctx = mp.get_context("spawn")
            names = ("handed", "acked", "unrouted", "late_ms", "done", "start_ms", "skipped")
            h.publisher = PublisherCounters(
                **{name: ctx.RawValue("q", 0) for name in names},
                delay_counts=ctx.RawArray("q", len(LAG_BOUNDS_S) + 1),
            )
            plan = PublisherPlan(h.broker.port, sites, interval_s, duration_s, str(h.workdir / "published.json"), seed)
            ready = ctx.Event()
            publisher = ctx.Process(target=publisher_main, args=(plan, h.publisher, ready), daemon=True)
            publisher.start()
            if not ready.wait(300):
                raise RuntimeError("the publisher process did not start")
            h.t0 = h.publisher.start_ms.value / 1000.0
            faults: list[Fault] = []
            stop = threading.Event()
            fault_plan = FaultPlan(
                (duration_s * fault_at[0], duration_s * fault_at[1], duration_s * fault_at[2]),
                worker_down_s,
                postgres_down_s,
            )
            injector = threading.Thread(target=inject_faults, args=(h, fault_plan, faults, stop), daemon=True)
            injector.start()

            stalls: list[tuple[float, list[str]]] = []
            quiet = [0]  # windows in a row without a commit

            def on_window(window: Window) -> None:
                nonlocal load
                load = _max_load(load)
                publishing = window.end_s < duration_s
                quiet[0] = quiet[0] + 1 if window.written == 0 and window.published_total > 0 and publishing else 0
                if quiet[0] % 15 == 5 and len(stalls) < 6:  # a stall: show who waits on whom
                    stalls.append((window.end_s, activity_snapshot(h.db_url)))
                    out.print(f"[yellow]t={window.end_s:.0f} s: no commits for {quiet[0]} s[/]")
                    for line in stalls[-1][1]:
                        out.print(f"  {line}", style="yellow", markup=False)
                if int(window.end_s) % 15 == 0 or window.end_s < 1.5:
                    p99 = quantile_s(window.lag_buckets, 0.99)
                    out.print(
                        f"[dim]t={window.end_s:6.0f} s  published {window.published_total:>10,.0f}  "
                        f"stored {window.stored_total:>10,.0f}  p99 lag {p99 if p99 is not None else float('nan'):6.2f} s"
                        f"  workers up {window.workers_up}  load {load[0]:.1f}[/]"
                    )

            windows = _monitor(h, publisher, scrape_s, on_window)
            stop.set()
            injector.join(60)
            publisher.join(60)
            verdict = _verify(h.db_url, probe_pk, Path(plan.result_file), h.published_readings())
            redeliveries = int(sum(c.duplicates for c in h.counters))
            result = _result(
                sites,
                minutes,
                interval_s,
                workers,
                h,
                windows,
                faults,
                verdict,
                redeliveries,
                load,
                grace_s,
                lag_target_s,
                stalls,
            )
    print_report(result, out)
    if timeline_csv is not None:
        write_timeline(result, timeline_csv)
    return result


def _result(
    sites: int,
    minutes: float,
    interval_s: float,
    workers: int,
    h: Harness,
    windows: list[Window],
    faults: list[Fault],
    verdict: _Verdict,
    redeliveries: int,
    load: tuple[float, float, float],
    grace_s: float,
    lag_target_s: float,
    stalls: list[tuple[float, list[str]]],
) -> SoakResult:
    assert h.publisher is not None
    excluded = [(f.started_s, (f.restored_s or f.started_s) + grace_s) for f in faults]
    steady = [w for w in windows if not any(w.start_s < end and w.end_s > start for start, end in excluded)]
    steady_buckets = merge([w.lag_buckets for w in steady]) if steady else merge([])
    all_buckets = merge([w.lag_buckets for w in windows])
    results = []
    for f in faults:
        lag_back, caught_up = recovery_s(
            windows, f, lag_target_s, published_at_restore=f.extra.get("published_at_restore")
        )
        results.append(FaultResult(f.name, f.started_s, f.restored_s, lag_back, caught_up, f.detail))
    return SoakResult(
        sites=sites,
        minutes=minutes,
        interval_s=interval_s,
        workers=workers,
        messages_published=int(h.publisher.acked.value),
        readings_published=h.published_readings(),
        readings_stored=verdict.stored,
        duplicate_rows=verdict.duplicate_rows,
        devices_mismatched=verdict.mismatched,
        readings_missing=verdict.missing,
        readings_unexpected=verdict.unexpected,
        redeliveries_ignored=redeliveries,
        dead_letters=verdict.dead_letters,
        unrouted_messages=int(h.publisher.unrouted.value),
        p99_lag_steady_s=quantile_s(steady_buckets, 0.99),
        within_target_steady=share_within(steady_buckets, lag_target_s),
        p99_lag_overall_s=quantile_s(all_buckets, 0.99),
        publish_delay_p99_steady_s=quantile_s(merge([w.publish_delay_buckets for w in steady]), 0.99)
        if steady
        else None,
        site_steps_skipped=int(h.publisher.skipped.value),
        lag_target_s=lag_target_s,
        publisher_late_max_s=h.publisher.late_ms.value / 1000.0,
        load_average=load,
        cpus=os.cpu_count() or 0,
        faults=results,
        windows=windows,
        stalls=stalls,
    )
