"""The OpenADR 3.1.0 enumerations for the payloads this platform emits and consumes (pure).

From the spec's enumeration schemas (specs/openadr3/spec-3.1.0/enumerations): the event payloads
the DR scheduler sends (SIMPLE, IMPORT_CAPACITY_LIMIT, DISPATCH_SETPOINT) plus EXPORT_CAPACITY_LIMIT,
and the report payloads verification reads (USAGE, DEMAND); the `units` and `readingType` enums.
Payload types outside this table are the spec's other enumerations or private extensions
("Enumerated or private string", Definition.md) and pass unchecked; a unit must be one of the
spec's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["EVENT_PAYLOADS", "READING_TYPES", "REPORT_PAYLOADS", "UNITS", "payload_problems"]


@dataclass(frozen=True, slots=True)
class ValuesRule:
    """One value (minItems = maxItems = 1), a number or an integer, within bounds."""

    integer: bool = False
    minimum: float | None = None
    maximum: float | None = None

    def problem(self, values: Sequence[Any]) -> str | None:
        if len(values) != 1:
            return f"must hold exactly one value; got {len(values)}"
        value = values[0]
        # JSON true/false are not numbers, though Python's bool is an int.
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"must be {'an integer' if self.integer else 'a number'}; got {value!r}"
        if self.integer and not float(value).is_integer():
            return f"must be an integer; got {value!r}"
        if self.minimum is not None and value < self.minimum:
            return f"must be at least {self.minimum:g}; got {value!r}"
        if self.maximum is not None and value > self.maximum:
            return f"must be at most {self.maximum:g}; got {value!r}"
        return None


_NON_NEGATIVE = ValuesRule(minimum=0)
EVENT_PAYLOADS: Mapping[str, ValuesRule] = {
    "SIMPLE": ValuesRule(integer=True, minimum=0, maximum=3),
    "IMPORT_CAPACITY_LIMIT": _NON_NEGATIVE,
    "EXPORT_CAPACITY_LIMIT": _NON_NEGATIVE,
    "DISPATCH_SETPOINT": _NON_NEGATIVE,
}
REPORT_PAYLOADS: Mapping[str, ValuesRule] = {"USAGE": _NON_NEGATIVE, "DEMAND": _NON_NEGATIVE}
UNITS = frozenset(
    ("KWH", "THERMS", "GHG", "VOLTS", "AMPS", "CELSIUS", "FAHRENHEIT", "PERCENT", "KW", "KVAH", "KVARH", "KVA", "KVAR")
)
READING_TYPES = frozenset(
    ("DIRECT_READ", "ESTIMATED", "SUMMED", "MEAN", "PEAK", "FORECAST", "AVERAGE", "NORMAL", "ERROR")
)


def _descriptor_problems(where: str, descriptors: Iterable[Mapping[str, Any]]) -> list[str]:
    out = []
    for n, descriptor in enumerate(descriptors):
        units = descriptor.get("units")
        if units is not None and units not in UNITS:
            out.append(f"{where}[{n}].units: {units!r} is not an OpenADR unit ({', '.join(sorted(UNITS))})")
        reading = descriptor.get("readingType")
        if reading is not None and reading not in READING_TYPES:
            out.append(f"{where}[{n}].readingType: {reading!r} is not an OpenADR reading type")
    return out


def _interval_problems(
    where: str, intervals: Iterable[Mapping[str, Any]], rules: Mapping[str, ValuesRule]
) -> list[str]:
    out = []
    for i, interval in enumerate(intervals):
        for p, payload in enumerate(interval.get("payloads") or ()):
            rule = rules.get(payload.get("type", ""))
            problem = rule.problem(payload.get("values") or []) if rule is not None else None
            if problem is not None:
                out.append(f"{where}[{i}].payloads[{p}] ({payload['type']}): {problem}")
    return out


def payload_problems(object_type: str, body: Mapping[str, Any]) -> list[str]:
    """What in a program, event or report body breaks the enumerations above (empty: nothing)."""
    out = _descriptor_problems("payloadDescriptors", body.get("payloadDescriptors") or ())
    if object_type == "EVENT":
        out += _descriptor_problems("reportDescriptors", body.get("reportDescriptors") or ())
        out += _interval_problems("intervals", body.get("intervals") or (), EVENT_PAYLOADS)
    elif object_type == "REPORT":
        for r, resource in enumerate(body.get("resources") or ()):
            out += _interval_problems(f"resources[{r}].intervals", resource.get("intervals") or (), REPORT_PAYLOADS)
    return out
