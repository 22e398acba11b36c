"""The spec's enumerations for the payloads the platform emits and consumes."""

from __future__ import annotations

from typing import Any

import pytest

from vpp.domain.openadr_payloads import payload_problems


def _event(payloads: list[dict[str, Any]], units: str = "KW") -> dict[str, Any]:
    return {
        "payloadDescriptors": [{"payloadType": "IMPORT_CAPACITY_LIMIT", "units": units}],
        "intervals": [{"id": 0, "payloads": payloads}],
    }


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ([-5], "must be at least 0; got -5"),
        (["lots"], "must be a number; got 'lots'"),
        ([True], "must be a number; got True"),
        ([-5, "lots", True], "must hold exactly one value; got 3"),
        ([], "must hold exactly one value; got 0"),
    ],
)
def test_capacity_limits_are_one_number_at_least_zero(values: list[Any], problem: str) -> None:
    [found] = payload_problems("EVENT", _event([{"type": "IMPORT_CAPACITY_LIMIT", "values": values}]))
    assert found == f"intervals[0].payloads[0] (IMPORT_CAPACITY_LIMIT): {problem}"


def test_valid_payloads_and_private_types_pass() -> None:
    payloads = [
        {"type": "IMPORT_CAPACITY_LIMIT", "values": [40.0]},
        {"type": "DISPATCH_SETPOINT", "values": [0]},
        {"type": "SIMPLE", "values": [3]},
        {"type": "X_UTILITY_CODE", "values": ["anything", True]},  # a private extension: not ours to judge
    ]
    assert payload_problems("EVENT", _event(payloads)) == []


@pytest.mark.parametrize("level", [4, -1, 1.5])
def test_simple_is_a_level_from_0_to_3(level: float) -> None:
    assert payload_problems("EVENT", _event([{"type": "SIMPLE", "values": [level]}]))


def test_units_and_reading_types_are_the_spec_enums() -> None:
    assert payload_problems("EVENT", _event([], units="FURLONGS")) == [
        "payloadDescriptors[0].units: 'FURLONGS' is not an OpenADR unit "
        "(AMPS, CELSIUS, FAHRENHEIT, GHG, KVA, KVAH, KVAR, KVARH, KW, KWH, PERCENT, THERMS, VOLTS)"
    ]
    report = {
        "payloadDescriptors": [{"payloadType": "USAGE", "readingType": "GUESSED", "units": "KWH"}],
        "resources": [
            {"resourceName": "m", "intervals": [{"id": 0, "payloads": [{"type": "USAGE", "values": [-1.0]}]}]}
        ],
    }
    assert payload_problems("REPORT", report) == [
        "payloadDescriptors[0].readingType: 'GUESSED' is not an OpenADR reading type",
        "resources[0].intervals[0].payloads[0] (USAGE): must be at least 0; got -1.0",
    ]
