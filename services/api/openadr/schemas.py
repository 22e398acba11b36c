# ruff: noqa: N815 - field names are the spec's wire spellings (programID, intervalPeriod, ...)
"""Request bodies of the OpenADR 3.1.0 API (components/schemas/*Request), as pydantic models.

Field names are exactly the YAML's. Unknown fields are ignored, as the YAML does not forbid them;
VTN-set metadata (id, createdDateTime, modificationDateTime, clientID of VEN objects) is never
taken from a body.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
)

from vpp.domain.openadr import is_duration

__all__ = [
    "EventRequest",
    "ProgramRequest",
    "ReportRequest",
    "ResourceRequest",
    "SubscriptionRequest",
    "VenRequest",
]

ObjectID = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[a-zA-Z0-9_-]*$")]
Name = Annotated[str, Field(min_length=1, max_length=128)]


def _duration(text: str) -> str:
    if not is_duration(text):
        raise ValueError(f"not an ISO 8601 duration: {text!r}")
    return text


# The spec's duration pattern uses a look-ahead, which pydantic's (Rust) regex engine lacks.
Duration = Annotated[str, AfterValidator(_duration)]
Targets = list[Name] | None
ObjectTypeName = Literal["PROGRAM", "EVENT", "REPORT", "SUBSCRIPTION", "VEN", "RESOURCE"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Point(_Model):
    x: StrictFloat | StrictInt
    y: StrictFloat | StrictInt


class ValuesMap(_Model):
    type: Name
    values: list[StrictBool | StrictInt | StrictFloat | str | Point]


class IntervalPeriod(_Model):
    start: AwareDatetime | None = None
    duration: Duration | None = None
    randomizeStart: Duration | None = None


class Interval(_Model):
    id: int = Field(ge=-(2**31), lt=2**31)
    intervalPeriod: IntervalPeriod | None = None
    payloads: list[ValuesMap]


class EventPayloadDescriptor(_Model):
    objectType: Literal["EVENT_PAYLOAD_DESCRIPTOR"] = "EVENT_PAYLOAD_DESCRIPTOR"
    payloadType: Name
    units: Name | None = None
    currency: str | None = None


class ReportPayloadDescriptor(_Model):
    objectType: Literal["REPORT_PAYLOAD_DESCRIPTOR"] = "REPORT_PAYLOAD_DESCRIPTOR"
    payloadType: Name
    readingType: Name | None = None
    units: Name | None = None
    accuracy: float | None = None
    confidence: int | None = Field(None, ge=0, le=100)


class ReportDescriptor(_Model):
    payloadType: Name
    readingType: Name | None = None
    units: Name | None = None
    targets: Targets = None
    aggregate: bool = False
    startInterval: int = -1
    numIntervals: int = -1
    historical: bool = True
    frequency: int = -1
    repeat: int = 1
    reportIntervals: Literal["INTERVALS", "SUB_INTERVALS", "OPEN_INTERVALS"] = "INTERVALS"


class ProgramDescription(_Model):
    URL: AnyHttpUrl


class ProgramRequest(_Model):
    programName: Name
    intervalPeriod: IntervalPeriod | None = None
    programDescriptions: list[ProgramDescription] | None = None
    payloadDescriptors: (
        list[Annotated[EventPayloadDescriptor | ReportPayloadDescriptor, Field(discriminator="objectType")]] | None
    ) = None
    attributes: list[ValuesMap] | None = None
    targets: Targets = None


class EventRequest(_Model):
    programID: ObjectID
    eventName: str | None = None
    duration: Duration | None = None
    priority: int | None = Field(None, ge=0)
    targets: Targets = None
    reportDescriptors: list[ReportDescriptor] | None = None
    payloadDescriptors: list[EventPayloadDescriptor] | None = None
    intervalPeriod: IntervalPeriod | None = None
    intervals: list[Interval] = Field(default_factory=list)


class ReportResource(_Model):
    resourceName: Name
    intervalPeriod: IntervalPeriod | None = None
    intervals: list[Interval]


class ReportRequest(_Model):
    eventID: ObjectID
    clientName: Name
    reportName: str | None = None
    payloadDescriptors: list[ReportPayloadDescriptor] | None = None
    resources: list[ReportResource]


class ObjectOperation(_Model):
    objects: list[ObjectTypeName] = Field(min_length=1)
    operations: list[Literal["READ", "CREATE", "UPDATE", "DELETE"]] = Field(min_length=1)
    callbackUrl: AnyHttpUrl
    bearerToken: str | None = None


class SubscriptionRequest(_Model):
    clientName: Name
    programID: ObjectID | None = None
    objectOperations: list[ObjectOperation] = Field(min_length=1)
    targets: Targets = None


class VenRequest(_Model):
    """BlVenRequest or VenVenRequest (told apart by objectType)."""

    objectType: Literal["BL_VEN_REQUEST", "VEN_VEN_REQUEST"]
    clientID: Name | None = None
    venName: Name
    targets: Targets = None
    attributes: list[ValuesMap] | None = None


class ResourceRequest(_Model):
    """BlResourceRequest or VenResourceRequest (told apart by objectType)."""

    objectType: Literal["BL_RESOURCE_REQUEST", "VEN_RESOURCE_REQUEST"]
    clientID: Name | None = None
    resourceName: Name
    venID: ObjectID
    targets: Targets = None
    attributes: list[ValuesMap] | None = None
