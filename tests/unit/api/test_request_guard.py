from __future__ import annotations

from services.api.request_guard import json_depth


def test_json_depth_counts_nesting_and_skips_strings() -> None:
    assert json_depth(b'{"a": [1, {"b": []}]}', 2) == 3
    assert json_depth(b'{"a": "[[[[[[[[[[[[[[[[[[[[[["}', 2) == 1
    assert json_depth(b'["\\"[[[[", [[]]]', 1) == 2  # an escaped quote does not end the string
    assert json_depth(b"[" * 100_000 + b"]" * 100_000, 32) == 33  # stops counting past the limit
    assert json_depth(b"[]", 32) == 0  # too few brackets to matter: not scanned
