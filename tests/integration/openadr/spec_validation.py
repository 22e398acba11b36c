"""Validate real HTTP exchanges against the official OpenADR 3.1.0 YAML with openapi-core.

The YAML is loaded with spec validation off: its line 2009 (`default: null          -` under
BlVenRequest.targets) makes openapi-spec-validator reject the file (see services/api/openadr/spec/SOURCES.txt).

A second defect is patched, narrowly: `ven` is `allOf: [objectMetadata, BlVenRequest]` and
`resource` is `allOf: [objectMetadata, BlResourceRequest]`, whose `objectType` enums are disjoint
(objectMetadata: PROGRAM…RESOURCE; BlVenRequest: BL_VEN_REQUEST only), so no ven or resource
response can ever validate. Definition.md ("objectType: Used as discriminator. VEN" / "RESOURCE")
says the returned object is a VEN / RESOURCE, so those two values are added to the request enums;

A third: `programRequest.payloadDescriptors` items use `discriminator: {propertyName: objectType}`
without a `mapping`, so OpenAPI 3.0 reads the values EVENT_PAYLOAD_DESCRIPTOR / REPORT_PAYLOAD_DESCRIPTOR
as schema names that do not exist, and any program with payloadDescriptors fails. The mapping the
schema obviously intends (to eventPayloadDescriptor / reportPayloadDescriptor) is added.
Nothing else is changed.
"""

from __future__ import annotations

from functools import cache
from urllib.parse import urlsplit

import httpx
import yaml
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

from services.api.openadr.docs import VTN_SPEC_PATH

__all__ = ["SPEC_PATH", "assert_valid", "spec"]

BASE_PATH = "/openadr3/3.1.0"


SPEC_PATH = VTN_SPEC_PATH  # provenance: services/api/openadr/spec/SOURCES.txt


# The YAML's only server is SwaggerHub's mock; match ours instead (path prefix kept).
_HOST = "http://vtn.test"


@cache
def spec() -> OpenAPI:
    document = yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))
    document["servers"] = [{"url": _HOST + BASE_PATH}]
    schemas = document["components"]["schemas"]
    schemas["BlVenRequest"]["properties"]["objectType"]["enum"].append("VEN")
    schemas["BlResourceRequest"]["properties"]["objectType"]["enum"].append("RESOURCE")
    schemas["programRequest"]["properties"]["payloadDescriptors"]["items"]["discriminator"]["mapping"] = {
        "EVENT_PAYLOAD_DESCRIPTOR": "#/components/schemas/eventPayloadDescriptor",
        "REPORT_PAYLOAD_DESCRIPTOR": "#/components/schemas/reportPayloadDescriptor",
    }
    return OpenAPI.from_dict(document, config=Config(spec_validator_cls=None))


class _Request:
    def __init__(self, request: httpx.Request) -> None:
        url = urlsplit(str(request.url))
        self.host_url = _HOST
        self.path = url.path
        self.method = request.method.lower()
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(list(request.url.params.multi_items())),
            header=Headers(dict(request.headers)),
        )
        self.content_type = request.headers.get("content-type", "")
        self.body = request.content or None


class _Response:
    def __init__(self, response: httpx.Response) -> None:
        self.data = response.content
        self.status_code = response.status_code
        self.content_type = response.headers.get("content-type", "")
        self.headers = Headers(dict(response.headers))


def assert_valid(response: httpx.Response) -> httpx.Response:
    """Raise unless `response` (and the operation it answers) conforms to the OpenADR 3.1.0 YAML."""
    spec().validate_response(_Request(response.request), _Response(response))
    return response
