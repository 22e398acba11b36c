"""Batch assembly without I/O: acceptance, dead letters, status, and resilience to a failing lookup."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from services.ingest.batcher import Inbound, build_batch
from vpp.domain.devices import DeviceKind, DeviceRef
from vpp.domain.telemetry import Limits

NOW = datetime(2026, 11, 23, 5, 0, tzinfo=UTC)
DEVICES = {("depot", "meter-1"): DeviceRef(7, 3, DeviceKind.METER)}
SITES = {"depot": 3}


def batch(*messages: tuple[str, bytes], lookup=None):  # type: ignore[no-untyped-def]
    return build_batch(
        [Inbound(topic, payload, NOW) for topic, payload in messages],
        lookup=lookup or (lambda s, d: DEVICES.get((s, d))),
        site_pks=SITES,
        limits=Limits(),
        max_payload_bytes=10_000,
        client_id="test",
    )


def test_accepted_rows_and_dead_letters_are_separated() -> None:
    result = batch(
        ("vpp/v1/depot/meter-1/telemetry", b'{"ts": "2026-11-23T04:59:00Z", "power_kw": 5}'),
        ("vpp/v1/depot/meter-2/telemetry", b'{"ts": "2026-11-23T04:59:00Z", "power_kw": 5}'),
        ("vpp/v1/other/meter-1/telemetry", b'{"ts": "2026-11-23T04:59:00Z", "power_kw": 5}'),
    )
    assert result.rows == [(7, datetime(2026, 11, 23, 4, 59, tzinfo=UTC), 5.0, None, None, None, None)]
    assert [(d.reason, d.client_id) for d in result.dead_letters] == [
        ("unknown_device", "test"),
        ("unknown_site", "test"),
    ]
    assert result.accepted_messages == 1


def test_a_bug_in_processing_one_message_dead_letters_it_and_keeps_the_rest() -> None:
    def flaky(site: str, device: str) -> DeviceRef | None:
        if device == "boom":
            raise KeyError("registry corrupted")
        return DEVICES.get((site, device))

    result = batch(
        ("vpp/v1/depot/boom/telemetry", b'{"ts": "2026-11-23T04:59:00Z", "power_kw": 5}'),
        ("vpp/v1/depot/meter-1/telemetry", b'{"ts": "2026-11-23T04:59:00Z", "power_kw": 5}'),
        lookup=flaky,
    )
    assert len(result.rows) == 1
    assert result.dead_letters[0].reason == "processing_error"
    assert "registry corrupted" in result.dead_letters[0].detail


def test_status_messages() -> None:
    result = batch(
        ("vpp/v1/depot/status", b"online"),
        ("vpp/v1/depot/status", b'{"state": "offline", "reason": "power cut"}'),
        ("vpp/v1/depot/status", b'{"state": "sleeping"}'),
        ("vpp/v1/depot/status", b""),
    )
    assert [(s.site_pk, s.online) for s in result.statuses] == [(3, True), (3, False)]
    assert [d.reason for d in result.dead_letters] == ["invalid_payload"]


BATTERY = {("depot", "battery-1"): DeviceRef(8, 3, DeviceKind.BATTERY, rated_power_kw=50.0)}


def _fifty(**bad: object) -> bytes:
    """A 50-reading battery batch (the columnar fast path's shape) with `bad` merged into readings[37]."""
    readings: list[dict[str, object]] = [
        {"ts": f"2026-11-23T04:{k:02d}:00Z", "power_kw": -4.0, "charge_kwh": 10.0 + k, "soc_pct": 50.0}
        for k in range(50)
    ]
    readings[37] = {**readings[37], **bad}
    return json.dumps({"readings": readings}).encode()


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        ({"power_kw": float("nan")}, "non_finite"),
        ({"power_kw": 10**400}, "non_finite"),
        ({"power_kw": True}, "invalid_payload"),
        ({"power_kw": "12"}, "invalid_payload"),
        ({"ts": "2026-11-23T04:37:00"}, "invalid_payload"),
        ({"ts": "yesterday"}, "invalid_payload"),
        ({"energy_kwh": 1.0}, "invalid_payload"),
        ({"power_w": 1.0}, "invalid_payload"),
        ({"soc_pct": 150.0}, "impossible_value"),
        ({"charge_kwh": -1.0}, "impossible_value"),
        ({"power_kw": 80.0}, "impossible_value"),
        ({"ts": "2026-11-23T06:00:00Z"}, "future_timestamp"),
        ({"ts": "2024-01-01T00:00:00Z"}, "too_old"),
        ({"site_id": "depot-b"}, "topic_mismatch"),
    ],
)
def test_one_bad_reading_in_a_large_batch_rejects_the_message_with_its_reason_and_index(
    bad: dict[str, object], expected: str
) -> None:
    topic = "vpp/v1/depot/battery-1/telemetry"
    result = batch((topic, _fifty(**bad)), (topic, _fifty()), lookup=lambda s, d: {**DEVICES, **BATTERY}.get((s, d)))
    assert [d.reason for d in result.dead_letters] == [expected]
    assert "readings[37]" in result.dead_letters[0].detail
    assert len(result.rows) == 50  # the clean message only
    assert result.accepted_messages == 1


def test_large_batch_rows_are_the_same_as_single_readings_give() -> None:
    topic = "vpp/v1/depot/battery-1/telemetry"
    lookup = lambda s, d: {**DEVICES, **BATTERY}.get((s, d))  # noqa: E731
    whole = batch((topic, _fifty()), lookup=lookup)
    singles = batch(*[(topic, json.dumps(r).encode()) for r in json.loads(_fifty())["readings"]], lookup=lookup)
    assert whole.rows == singles.rows
    assert whole.newest_ts == [max(singles.newest_ts)]
