"""The COPY encoder against psycopg's own binary dumpers, value for value, without a database."""

from __future__ import annotations

import random
import struct
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from psycopg import adapt, postgres
from psycopg.pq import Format

from vpp.postgres.readings import ReadingRow, encode_rows

_TYPES = ["int4", "timestamptz", "float8", "float8", "float8", "float4", "int2"]


def _psycopg_row(tx: Any, row: ReadingRow) -> bytes:
    """One row as psycopg's binary COPY writes it (field count, then length-prefixed values)."""
    out = struct.pack(">h", len(row))
    for value in tx.dump_sequence(row, [adapt.PyFormat.BINARY] * len(row)):
        out += struct.pack(">i", -1) if value is None else struct.pack(">i", len(value)) + bytes(value)
    return out


def _expected(rows: list[ReadingRow]) -> bytes:
    tx = adapt.Transformer()
    tx.set_dumper_types([postgres.types[name].oid for name in _TYPES], Format.BINARY)
    header = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
    return header + b"".join(_psycopg_row(tx, row) for row in rows) + struct.pack(">h", -1)


def _random_row(rng: random.Random, pattern: tuple[bool, ...]) -> ReadingRow:
    offset = timezone(timedelta(hours=rng.choice([0, 9, -5])))
    ts = datetime(2026, 11, 23, tzinfo=offset) + timedelta(microseconds=rng.randint(-(10**15), 10**15))
    values: list[Any] = [
        rng.uniform(-1e5, 1e5),
        rng.choice([0.0, 1e12, rng.uniform(0, 1e6)]),
        rng.choice([-0.0, 5e-324, 10.0]),
        rng.uniform(0, 100),
        rng.randint(0, 10_000),
    ]
    power, pos, neg, soc, vehicles = (v if has else None for v, has in zip(values, pattern, strict=True))
    return (rng.randint(1, 2**31 - 1), ts, power, pos, neg, soc, vehicles)


@pytest.mark.parametrize("count", [0, 1, 2, 50, 1000])
def test_one_null_pattern_encodes_exactly_as_psycopg_does(count: int) -> None:
    rng = random.Random(count)
    for _ in range(20):
        pattern = tuple(rng.random() < 0.6 for _ in range(5))
        rows = [_random_row(rng, pattern) for _ in range(count)]
        encoded = encode_rows(rows)
        assert encoded.count == count
        assert encoded.payload == _expected(rows)


def test_mixed_null_patterns_encode_every_row_once() -> None:
    rng = random.Random(7)
    rows = [_random_row(rng, tuple(rng.random() < 0.5 for _ in range(5))) for _ in range(500)]
    encoded = encode_rows(rows)
    tx = adapt.Transformer()
    tx.set_dumper_types([postgres.types[name].oid for name in _TYPES], Format.BINARY)
    # Rows are grouped by pattern, so compare them as a multiset of encoded rows.
    body = encoded.payload[19:-2]
    expected_rows = sorted(_psycopg_row(tx, row) for row in rows)
    got_rows: list[bytes] = []
    position = 0
    while position < len(body):
        start = position
        (fields,) = struct.unpack_from(">h", body, position)
        position += 2
        for _ in range(fields):
            (length,) = struct.unpack_from(">i", body, position)
            position += 4 + max(length, 0)
        got_rows.append(body[start:position])
    assert sorted(got_rows) == expected_rows
    assert encoded.payload[:19] == _expected([])[:19]
    assert encoded.payload[-2:] == b"\xff\xff"


def test_a_timestamp_before_2000_and_a_naive_one() -> None:
    early = (1, datetime(1999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC), 1.0, None, None, None, None)
    assert encode_rows([early]).payload == _expected([early])
    naive = (1, datetime(2026, 1, 1), 1.0, None, None, None, None)  # noqa: DTZ001 - the case under test
    with pytest.raises(TypeError):
        encode_rows([naive])  # type: ignore[list-item]
