"""The soak test's fleet publisher, run in its own process so the measured side never shares its GIL.

Message shape (why ≈2,000 messages/s carry ≈8,000 readings/s for 20,000 sites): every site steps its
model once per interval, producing one reading for each of its four devices (meter, PV, battery, EV
charger). Each device gateway batches its readings and sends them every fourth interval as one v1
batch message (`{"readings": [4 readings]}` on `vpp/v1/{site}/{device}/telemetry`); a site's four
devices are staggered by one interval, so every site sends exactly one message per interval, and the
sites are spread evenly across the interval so the broker sees a steady rate instead of bursts.
Every device still has a reading every interval; the newest reading of each message is stamped with
the wall-clock instant it was measured, so commit time minus that timestamp is an honest ingest lag.
The models are stepped before the run starts (`_precompute`): the generator stands in for 20,000
gateways, each with its own CPU, and must not take the two cores the platform is measured on.
"""

from __future__ import annotations

import bisect
import dataclasses
import gc
import json
import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from bench.soak_metrics import LAG_BOUNDS_S
from vpp.mqtt import make_client, session_properties, telemetry_topic
from vpp.simulation.model import SiteSimulator, SiteSpec, fleet_specs

__all__ = ["READINGS_PER_MESSAGE", "PublisherCounters", "PublisherPlan", "publisher_main", "soak_fleet"]

READINGS_PER_MESSAGE = 4
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_OUTSTANDING = 20_000  # messages handed to paho but not yet acknowledged by the broker
_NO_MATCHING_SUBSCRIBERS = 16  # MQTT v5 PUBACK reason: the broker accepted the message but routed it nowhere


def soak_fleet(sites: int, seed: int = 0) -> list[SiteSpec]:
    """`fleet_specs` with every site given a battery and an EV charger, so each site has all four devices."""
    specs: list[SiteSpec] = []
    for spec in fleet_specs(sites, seed):
        if spec.battery_kwh <= 0:
            battery_kwh = max(round(spec.pv_kw * 0.5, 1), 1.0)
            spec = dataclasses.replace(spec, battery_kwh=battery_kwh, battery_power_kw=round(battery_kwh * 0.33, 1))
        if spec.ev_count <= 0:
            spec = dataclasses.replace(spec, ev_count=1)
        specs.append(spec)
    return specs


@dataclass(frozen=True)
class PublisherPlan:
    port: int
    sites: int
    interval_s: float
    duration_s: float
    result_file: str
    seed: int = 0


@dataclass
class PublisherCounters:
    """Shared-memory counters the orchestrator reads while the publisher runs (multiprocessing RawValues)."""

    handed: Any  # messages handed to paho
    acked: Any  # PUBACKs received
    unrouted: Any  # PUBACKs saying "no matching subscribers": accepted by the broker, delivered to nobody
    late_ms: Any  # worst lateness of a site's step behind its schedule
    done: Any  # 1 when every message is acked and the result file is written
    start_ms: Any  # wall-clock epoch ms of interval 0, site 0, chosen once the fleet is built
    skipped: Any  # site steps abandoned because the generator fell more than an interval behind
    delay_counts: Any  # per LAG_BOUNDS_S bucket (+Inf last): newest reading measured -> PUBACK, non-cumulative


def _ms_to_datetime(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


def _schedule(plan: PublisherPlan, start_s: float) -> Iterator[tuple[int, int, float]]:
    """(interval k, site s, due wall time) in time order: site s runs at phase s/N of each interval."""
    k = 0
    while True:
        base_s = start_s + k * plan.interval_s
        if base_s - start_s >= plan.duration_s:
            return
        for s in range(plan.sites):
            yield k, s, base_s + plan.interval_s * s / plan.sites
        k += 1


def _fragment(reading: dict[str, object]) -> str:
    """A reading's JSON object without its braces and `ts`, to be stamped when it is sent."""
    return json.dumps({key: value for key, value in reading.items() if key != "ts"}, separators=(",", ":"))[1:-1]


def _precompute(
    plan: PublisherPlan, sims: list[SiteSimulator], devices: list[list[str]], first_s: float, steps: int
) -> list[list[tuple[str, ...]]]:
    """Every site's readings for every interval of the run, as JSON fragments per device.

    Why before the start: on a fleet of real sites each EMS computes its own readings; here one
    process would have to step 20,000 models in real time (about 80 µs each, a sixth of a core) on
    the two cores that ingest, the broker and PostgreSQL are being measured on. What is left for the
    run is what a site's gateway does: stamp, frame and publish. Readings are stepped at the
    schedule's instants from `first_s`; each is stamped with the wall-clock instant it is sent.
    Memory grows with the run: about 70 MB per minute at 20,000 sites (four short strings per site
    and interval), so an hour-long soak holds about 4 GB.
    """
    fragments: list[list[tuple[str, ...]]] = [[] for _ in sims]
    for k in range(steps):
        for s, sim in enumerate(sims):
            due_ms = round((first_s + k * plan.interval_s + plan.interval_s * s / plan.sites) * 1000)
            readings = sim.step(_ms_to_datetime(due_ms))
            fragments[s].append(tuple(_fragment(readings[device_id]) for device_id in devices[s]))
    return fragments


def publisher_main(plan: PublisherPlan, counters: PublisherCounters, ready: Any) -> None:
    specs = soak_fleet(plan.sites, plan.seed)
    born_ms = round((time.time() - 4 * plan.interval_s) * 1000)
    sims = [SiteSimulator(spec, _ms_to_datetime(born_ms), seed=plan.seed) for spec in specs]
    devices = [list(sim.devices) for sim in sims]
    # Three intervals of history before the start, so every device's first batch holds four readings.
    history = 3
    intervals = math.ceil(plan.duration_s / plan.interval_s)
    fragments = _precompute(plan, sims, devices, born_ms / 1000 + plan.interval_s, history + intervals)
    del sims
    # The fleet's readings are long-lived objects: keep the cyclic collector from walking them.
    gc.collect()
    gc.freeze()
    start_s = time.time() + 1.0 + plan.sites * 20e-6
    # Per site and device: (epoch ms, ts, fragment) of the readings not yet sent.
    buffers: list[dict[str, list[tuple[int, str, str]]]] = [{d: [] for d in ds} for ds in devices]
    for k in range(-history, 0):
        for s in range(plan.sites):
            due_ms = round((start_s + k * plan.interval_s + plan.interval_s * s / plan.sites) * 1000)
            ts = _ms_to_datetime(due_ms).isoformat()
            for device_id, fragment in zip(devices[s], fragments[s][k + history], strict=True):
                buffers[s][device_id].append((due_ms, ts, fragment))

    # paho calls on_publish holding its own mutex: never hold `lock` while calling into paho.
    lock = threading.Lock()
    pending: dict[int, tuple[str, int, int, float]] = {}  # mid -> (site/device, readings, sum of ts ms, newest ts)
    early: dict[int, float] = {}  # mid -> PUBACK time, for acks that beat the bookkeeping after publish()
    published: dict[str, list[int]] = {}  # "site/device" -> [readings, sum of epoch ms], credited on PUBACK

    def credit(entry: tuple[str, int, int, float], acked_at: float) -> None:
        key, readings, ms_sum, newest_s = entry
        tally = published.setdefault(key, [0, 0])
        tally[0] += readings
        tally[1] += ms_sum
        counters.delay_counts[bisect.bisect_left(LAG_BOUNDS_S, acked_at - newest_s)] += 1

    def on_publish(_c: mqtt.Client, _u: Any, mid: int, reason: Any, _p: Any) -> None:
        now = time.time()
        with lock:
            counters.acked.value += 1
            if getattr(reason, "value", 0) == _NO_MATCHING_SUBSCRIBERS:
                counters.unrouted.value += 1
            entry = pending.pop(mid, None)
            if entry is None:
                early[mid] = now
            else:
                credit(entry, now)

    client = make_client("soak-publisher", max_inflight=0)  # _MAX_OUTSTANDING bounds what is outstanding
    client.on_publish = on_publish
    client.connect("127.0.0.1", plan.port, keepalive=30, clean_start=False, properties=session_properties())
    client.loop_start()
    counters.start_ms.value = round(start_s * 1000)
    ready.set()

    last_ms = [0] * plan.sites
    give_up_s = start_s + plan.duration_s + plan.interval_s  # an overloaded generator must not stretch the run
    for k, s, due_s in _schedule(plan, start_s):
        now_s = time.time()
        if due_s - now_s > 0.002:
            time.sleep(due_s - now_s)
        elif now_s > give_up_s:
            counters.skipped.value += 1
            continue
        now_ms = max(round(time.time() * 1000), last_ms[s] + 1)
        last_ms[s] = now_ms
        late_ms = now_ms - round(due_s * 1000)
        if late_ms > counters.late_ms.value:
            counters.late_ms.value = late_ms
        ts = _ms_to_datetime(now_ms).isoformat()
        site_buffers = buffers[s]
        for device_id, fragment in zip(devices[s], fragments[s][k + history], strict=True):
            site_buffers[device_id].append((now_ms, ts, fragment))
        site_devices = devices[s]
        device_id = site_devices[(k + s) % len(site_devices)]
        batch = site_buffers[device_id][-READINGS_PER_MESSAGE:]
        site_buffers[device_id] = []
        site_id = specs[s].site_id
        # paho keys unacknowledged messages by a 16-bit packet id: far more than 65,535 outstanding
        # and a newer message silently replaces an older one. A gateway waits instead; so do we.
        while counters.handed.value - counters.acked.value > _MAX_OUTSTANDING:
            time.sleep(0.001)
        body = '{"readings":[' + ",".join(f'{{"ts":"{ts}",{fragment}}}' for _ms, ts, fragment in batch) + "]}"
        info = client.publish(telemetry_topic(site_id, device_id), body, qos=1)
        counters.handed.value += 1
        entry = (f"{site_id}/{device_id}", len(batch), sum(ms for ms, _ts, _f in batch), now_ms / 1000)
        with lock:
            acked_at = early.pop(info.mid, None)
            if acked_at is None:
                pending[info.mid] = entry
            else:
                credit(entry, acked_at)

    deadline = time.monotonic() + 120
    while counters.acked.value < counters.handed.value and time.monotonic() < deadline:
        time.sleep(0.05)
    client.disconnect()
    client.loop_stop()
    with lock:
        Path(plan.result_file).write_text(json.dumps(published))
    counters.done.value = 1
