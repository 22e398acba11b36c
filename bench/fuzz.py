"""`vpp bench fuzz`: generated payloads through ingest's decoders; no input may end as processing_error.

Hypothesis generates telemetry and status messages that stay close to the contract (the field names
gateways use, SenML records, RFC 3339 times with odd offsets and years, huge and non-finite numbers,
nesting, wrong types) plus raw bytes and misfit topics, and runs each through `build_batch` exactly as
the ingest worker does (fast columnar path and reference path), then through the COPY encoder. A
`processing_error` dead letter means an exception escaped the decoders, which the runbook treats as
a bug; an encoder failure would be a batch the database refuses on every retry.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from services.ingest.batcher import Inbound, build_batch
from vpp.domain.devices import DeviceKind, DeviceRef
from vpp.domain.telemetry import Limits, RejectReason
from vpp.postgres.readings import encode_rows

__all__ = ["FuzzResult", "fuzz_decoders"]

NOW = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
_DEVICES = {
    ("site-a", "meter-1"): DeviceRef(1, 1, DeviceKind.METER, None),
    ("site-a", "pv-1"): DeviceRef(2, 1, DeviceKind.PV, 45.0),
    ("site-a", "battery-1"): DeviceRef(3, 1, DeviceKind.BATTERY, 20.0),
    ("site-a", "ev-1"): DeviceRef(4, 1, DeviceKind.EV_CHARGER, 150.0),
}
_SITE_PKS = {"site-a": 1}
_KEYS = [
    "ts", "power_kw", "power_w", "import_kwh", "export_kwh", "import_wh", "energy_kwh", "energy_wh", "charge_kwh",
    "discharge_kwh", "soc_pct", "vehicles", "site_id", "device_id", "readings", "state",
    "bn", "bt", "bu", "n", "u", "v", "t", "vs", "bver",
]  # fmt: skip
_NAMES = ["power", "soc", "vehicles", "import", "export", "energy", "charge", "discharge", "urn:dev:x:power", "x/"]
_UNITS = ["W", "kW", "Wh", "kWh", "%EL", "%", "/", "count", "", "w"]


def _timestamps() -> st.SearchStrategy[Any]:
    offsets = st.sampled_from(["Z", "+00:00", "+09:00", "-23:59", "+14:00", "", "+24:00", "-00:00"])
    # Naive on purpose: the offset is appended as text, including offsets no datetime would accept.
    stamps = st.datetimes(min_value=datetime.min, max_value=datetime.max)  # noqa: DTZ901
    near = st.integers(-(10**7), 10**6).map(lambda s: NOW.timestamp() + s)
    valid = st.builds(
        lambda s, o: datetime.fromtimestamp(s, UTC).replace(tzinfo=None).isoformat() + o,
        near,
        st.sampled_from(["Z", "+00:00", "+09:00"]),
    )
    return st.one_of(
        valid,
        valid,
        valid,
        st.builds(lambda d, o: d.isoformat() + o, stamps, offsets),
        st.builds(lambda s, o: datetime.fromtimestamp(s, UTC).replace(tzinfo=None).isoformat() + o, near, offsets),
        st.text(max_size=30),
        near,
    )


def _numbers() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(min_value=-(10**400), max_value=10**400),
        st.floats(-200, 200),
        st.booleans(),
        st.sampled_from([1.8e9, 2**28, 2**28 - 1, 1e20, -1e20, 0, -0.0]),
    )


def _scalars() -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), _numbers(), st.text(max_size=20), _timestamps(), st.sampled_from(_NAMES + _UNITS))


def _values() -> st.SearchStrategy[Any]:
    return st.recursive(
        _scalars(),
        lambda inner: st.one_of(
            st.lists(inner, max_size=5),
            st.dictionaries(st.one_of(st.sampled_from(_KEYS), st.text(max_size=8)), inner, max_size=6),
        ),
        max_leaves=8,
    )


_READING_KEYS = ["power_kw", "power_w", "import_kwh", "export_kwh", "energy_wh", "charge_kwh", "discharge_kwh",
                 "soc_pct", "vehicles"]  # fmt: skip


def _reading() -> st.SearchStrategy[dict[str, Any]]:
    # Generation, not the decoders, dominates the run time: mostly numbers, sometimes anything.
    return st.fixed_dictionaries(
        {"ts": _timestamps()},
        optional={
            **{k: _numbers() for k in _READING_KEYS},
            "site_id": st.sampled_from(["site-a", "site-b", 1]),
            "device_id": st.sampled_from(["meter-1", "pv-1", None]),
            "extra": _values(),
        },
    )


def _senml_record() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {},
        optional={
            "bn": st.one_of(st.sampled_from(["urn:dev:site-a:meter-1:", "", "x/"]), _scalars()),
            "bt": _numbers(),
            "bu": st.one_of(st.sampled_from(_UNITS), _scalars()),
            "n": st.one_of(st.sampled_from(_NAMES), _scalars()),
            "u": st.one_of(st.sampled_from(_UNITS), _scalars(), st.lists(st.sampled_from(_UNITS), max_size=2)),
            "v": _numbers(),
            "t": _numbers(),
        },
    )


def _plausible() -> st.SearchStrategy[dict[str, Any]]:
    """Meter readings that mostly pass, so the accepting paths (columnar and reference) run too."""
    near = st.integers(-86_400, 200).map(lambda s: datetime.fromtimestamp(NOW.timestamp() + s, UTC).isoformat())
    return st.builds(
        lambda ts, p, e: {"ts": ts, "power_kw": p, "import_kwh": e},
        near,
        st.one_of(st.floats(-150, 150), st.integers(-200, 200)),
        st.one_of(st.floats(0, 1e6), st.integers(-1, 10**13)),
    )


def _bodies() -> st.SearchStrategy[Any]:
    same_fields = st.lists(_reading(), min_size=1, max_size=8)
    return st.one_of(
        _plausible(),
        st.builds(lambda r: {"readings": r}, st.lists(_plausible(), min_size=1, max_size=8)),
        _reading(),
        st.builds(lambda r: {"readings": r}, same_fields),
        st.builds(lambda r, n: {"readings": [dict(r) for _ in range(n)]}, _reading(), st.integers(1, 6)),
        st.lists(_senml_record(), max_size=6),
        _values(),
    )


def _payloads() -> st.SearchStrategy[bytes]:
    import json

    def dump(body: Any) -> bytes:
        try:
            return json.dumps(body).encode("utf-8", "surrogatepass")
        except (ValueError, TypeError, RecursionError):
            return b"{}"

    return st.one_of(
        _bodies().map(dump),
        st.binary(max_size=200),
        st.sampled_from([b"[" * 5000, b'{"ts":' * 3000, b"\xef\xbb\xbf{}", "{}".encode("utf-16")]),
    )


def _topics() -> st.SearchStrategy[str]:
    known = [f"vpp/v1/{s}/{d}/telemetry" for s, d in _DEVICES]
    return st.one_of(
        st.sampled_from(known),
        st.sampled_from(known),
        st.sampled_from(known),
        st.sampled_from(["vpp/v1/site-a/status", "vpp/v1/nowhere/status", "vpp/v1/x/status/extra", "vpp/v1/status"]),
        st.sampled_from(["vpp/v1", "vpp/v1/", "vpp/v1/site-a", "vpp/v1/site-a/telemetry", "vpp/v1/a/b/c/d/e"]),
        st.builds(lambda a, b: f"vpp/v1/{a}/{b}/telemetry", st.text(max_size=70), st.text(max_size=70)),
    )


_MAX_BATCH = 10
# Hypothesis favours short lists; measured mean batch size of the strategy above, rounded down, so that
# at least `examples` messages run (the result reports the exact number).
_MEAN_BATCH = 4


@dataclass
class FuzzResult:
    examples: int = 0
    seconds: float = 0.0
    outcomes: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)


def fuzz_decoders(examples: int, *, seed_value: int | None = None) -> FuzzResult:
    """Run at least `examples` generated messages, in generated batches of up to ten as ingest forms
    them; failures lists any processing_error (an encoder failure raises)."""
    result = FuzzResult()
    limits = Limits()

    def check(messages: list[tuple[str, bytes]]) -> None:
        batch = build_batch(
            [Inbound(topic, payload, NOW, i, 1, 0) for i, (topic, payload) in enumerate(messages)],
            lookup=lambda s, d: _DEVICES.get((s, d)),
            site_pks=_SITE_PKS,
            limits=limits,
            max_payload_bytes=64 * 1024,
            confirm=True,
        )
        encode_rows(batch.rows)
        result.examples += len(messages)
        result.outcomes["accepted"] += batch.accepted_messages
        result.outcomes["status"] += len(batch.statuses)
        for dead in batch.dead_letters:
            result.outcomes[dead.reason] += 1
            if dead.reason == RejectReason.PROCESSING_ERROR:
                result.failures.append(f"{dead.topic!r} {dead.payload[:200]!r}: {dead.detail}")
                raise AssertionError(dead.detail)

    test = settings(
        max_examples=max(1, examples // _MEAN_BATCH),
        deadline=None,
        database=None,
        derandomize=seed_value is None,
        suppress_health_check=list(HealthCheck),
    )(given(st.lists(st.tuples(_topics(), _payloads()), min_size=1, max_size=_MAX_BATCH))(check))
    if seed_value is not None:
        test = seed(seed_value)(test)
    began = time.monotonic()
    try:
        test()
    finally:
        result.seconds = time.monotonic() - began
    return result


def run_bench_fuzz(examples: int, seed_value: int | None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    try:
        result = fuzz_decoders(examples, seed_value=seed_value)
    except AssertionError:
        console.print("[red]an input ended as processing_error (or broke the COPY encoder); see above[/red]")
        raise
    table = Table(title=f"decoder fuzz: {result.examples:,} messages in {result.seconds:.0f} s", title_justify="left")
    table.add_column("outcome")
    table.add_column("messages", justify="right")
    for outcome, count in result.outcomes.most_common():
        table.add_row(outcome, f"{count:,}")
    console.print(table)
    console.print("[green]no input ended as processing_error[/green]")
