"""Turn a batch of MQTT messages into rows to write and dead letters to keep. No I/O here."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import repeat
from typing import NamedTuple

from vpp.domain.devices import DeviceRef
from vpp.domain.telemetry import (
    Limits,
    Reading,
    ReadingColumns,
    Rejection,
    RejectReason,
    TopicParts,
    decode_body,
    load_json,
    parse_topic,
    validate_columns,
    validate_reading,
)
from vpp.postgres.readings import DeadLetter, ReadingRow, StatusRow

__all__ = ["Batch", "Inbound", "build_batch"]

log = logging.getLogger("vpp.ingest.batcher")


class Inbound(NamedTuple):
    """A message as the subscriber hands it over; `mid`/`generation`/`source` are what acking needs
    (`source`: which of the configured brokers it came from, an index into the worker's subscribers).

    A named tuple rather than a frozen dataclass: one is built per message on the MQTT network
    thread, the busiest thread of ingest, and a tuple is built in C (a quarter of the cost).
    """

    topic: str
    payload: bytes
    received_at: datetime
    mid: int = 0
    qos: int = 0
    generation: int = 0
    source: int = 0


@dataclass
class Batch:
    rows: list[ReadingRow] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    statuses: list[StatusRow] = field(default_factory=list)
    accepted_messages: int = 0
    newest_ts: list[datetime] = field(default_factory=list)  # per accepted telemetry message
    # site_id -> device_id -> RFC 3339 timestamps of accepted readings: the end-to-end confirmation to
    # send once the batch is committed (filled only when `build_batch(confirm=True)`).
    stored: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    def rejections_by_reason(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for dead in self.dead_letters:
            counts[dead.reason] = counts.get(dead.reason, 0) + 1
        return counts


Lookup = Callable[[str, str], DeviceRef | None]

_JSONB_UNSAFE = re.compile(r"\\u(0000|d[89a-f])", re.IGNORECASE)


def build_batch(
    messages: Sequence[Inbound],
    *,
    lookup: Lookup,
    site_pks: Mapping[str, int],
    limits: Limits,
    max_payload_bytes: int,
    client_id: str | None = None,
    confirm: bool = False,
) -> Batch:
    batch = Batch()
    for message in messages:
        if message.topic.endswith("/status"):
            _status(message, site_pks, batch, client_id, max_payload_bytes)
            continue
        try:
            outcome = _telemetry(message, lookup, site_pks, limits, max_payload_bytes)
        except Exception as error:  # one bad message must never stop the stream
            log.exception("message processing failed", extra={"topic": message.topic[:200]})
            outcome = Rejection(RejectReason.PROCESSING_ERROR, f"{type(error).__name__}: {error}"[:300])
        if isinstance(outcome, Rejection):
            batch.dead_letters.append(
                DeadLetter(
                    message.received_at,
                    message.topic,
                    message.payload,
                    str(outcome.reason),
                    outcome.detail,
                    client_id,
                )
            )
            continue
        device_pk, readings = outcome
        batch.accepted_messages += 1
        if confirm:
            # As sent where we have the text (the columnar path), else formatted; gateways compare
            # instants, so "+09:00" and "Z" forms of one instant are the same reading.
            stamps = readings.ts_text if isinstance(readings, ReadingColumns) else [_rfc3339(r.ts) for r in readings]
            _site, _sep, rest = message.topic[7:].partition("/")  # vpp/v1/{site}/{device}/telemetry
            batch.stored.setdefault(_site, {}).setdefault(rest.partition("/")[0], []).extend(stamps)
        if isinstance(readings, ReadingColumns):
            batch.newest_ts.append(readings.newest)
            # Rows assembled by zip: no Python code runs per reading.
            none = repeat(None)
            batch.rows.extend(
                zip(
                    repeat(device_pk, len(readings.ts)),
                    readings.ts,
                    none if readings.power_kw is None else readings.power_kw,
                    none if readings.energy_pos_kwh is None else readings.energy_pos_kwh,
                    none if readings.energy_neg_kwh is None else readings.energy_neg_kwh,
                    none if readings.soc_pct is None else readings.soc_pct,
                    none if readings.vehicles is None else readings.vehicles,
                    strict=False,  # repeat() is endless; the ts column sets the length
                )
            )
        else:
            batch.newest_ts.append(max(r.ts for r in readings))
            batch.rows.extend(
                (device_pk, r.ts, r.power_kw, r.energy_pos_kwh, r.energy_neg_kwh, r.soc_pct, r.vehicles)
                for r in readings
            )
    return batch


def _telemetry(
    message: Inbound, lookup: Lookup, site_pks: Mapping[str, int], limits: Limits, max_payload_bytes: int
) -> tuple[int, ReadingColumns | list[Reading]] | Rejection:
    topic = parse_topic(message.topic)
    if isinstance(topic, Rejection):
        return topic
    body = load_json(message.payload, max_bytes=max_payload_bytes)
    if isinstance(body, Rejection):
        return body
    device = lookup(topic.site_id, topic.device_id)
    if device is not None:
        columns = validate_columns(
            body, topic, device.kind, now=message.received_at, limits=limits, rated_power_kw=device.rated_power_kw
        )
        if columns is not None:
            return device.device_pk, columns
    # The reference path: one reading at a time, deciding and explaining every rejection.
    raw_readings = decode_body(body, received_at=message.received_at, limits=limits)
    if isinstance(raw_readings, Rejection):
        return raw_readings
    if device is None:
        known_site = topic.site_id in site_pks
        reason = RejectReason.UNKNOWN_DEVICE if known_site else RejectReason.UNKNOWN_SITE
        what = f"device {topic.device_id!r} of site {topic.site_id!r}" if known_site else f"site {topic.site_id!r}"
        return Rejection(reason, f"{what} is not registered")
    readings: list[Reading] = []
    for index, raw in enumerate(raw_readings):
        where = f"readings[{index}]" if len(raw_readings) > 1 else "reading"
        mismatch = _claims_mismatch(topic, raw.site_id, raw.device_id)
        if mismatch:
            return Rejection(RejectReason.TOPIC_MISMATCH, f"{where}: {mismatch}")
        checked = validate_reading(
            raw,
            device.kind,
            now=message.received_at,
            limits=limits,
            rated_power_kw=device.rated_power_kw,
            where=where,
        )
        if isinstance(checked, Rejection):
            return checked
        readings.append(checked)
    return device.device_pk, readings


def _claims_mismatch(topic: TopicParts, site_id: str | None, device_id: str | None) -> str | None:
    # The broker's ACL ties a site's credentials to its topic prefix; a payload that names another
    # site is either a misconfigured gateway or an attempt to speak for someone else.
    if site_id is not None and site_id != topic.site_id:
        return f"payload site_id {site_id!r} differs from topic site {topic.site_id!r}"
    if device_id is not None and device_id != topic.device_id:
        return f"payload device_id {device_id!r} differs from topic device {topic.device_id!r}"
    return None


def _status(
    message: Inbound, site_pks: Mapping[str, int], batch: Batch, client_id: str | None, max_payload_bytes: int
) -> None:
    parts = message.topic.split("/")

    def reject(reason: RejectReason, detail: str) -> None:
        batch.dead_letters.append(
            DeadLetter(message.received_at, message.topic, message.payload, str(reason), detail, client_id)
        )

    if len(parts) != 4 or parts[:2] != ["vpp", "v1"]:
        reject(RejectReason.BAD_TOPIC, f"expected vpp/v1/{{site}}/status, got {message.topic[:200]!r}")
        return
    if len(message.payload) > max_payload_bytes:
        reject(RejectReason.OVERSIZED, f"payload is {len(message.payload)} bytes, limit {max_payload_bytes}")
        return
    site_pk = site_pks.get(parts[2])
    if site_pk is None:
        reject(RejectReason.UNKNOWN_SITE, f"status for unregistered site {message.topic!r}")
        return
    if not message.payload:
        return  # a retained status being cleared
    text = message.payload.decode("utf-8", errors="replace").strip()
    detail: str | None = None
    if text in {"online", "offline"}:
        online = text == "online"
    else:
        try:
            body = json.loads(text)
        except (ValueError, RecursionError):
            reject(RejectReason.MALFORMED_JSON, "status must be 'online', 'offline' or a JSON object")
            return
        state = body.get("state") if isinstance(body, dict) else None
        if state != "online" and state != "offline":
            reject(RejectReason.INVALID_PAYLOAD, "status.state must be 'online' or 'offline'")
            return
        online = state == "online"
        try:
            detail = json.dumps(body, allow_nan=False)
        except (ValueError, RecursionError):
            detail = None
        if detail is None or _JSONB_UNSAFE.search(detail):
            # jsonb refuses NaN, \u0000 and lone surrogates: the batch would fail on every retry.
            reject(RejectReason.INVALID_PAYLOAD, "status object holds NaN, a NUL or a lone surrogate")
            return
    batch.statuses.append(StatusRow(site_pk, online, detail, message.received_at))


def _rfc3339(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")
