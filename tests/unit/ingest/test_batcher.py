"""Batch assembly without I/O: acceptance, dead letters, status, and resilience to a failing lookup."""

from __future__ import annotations

from datetime import UTC, datetime

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
