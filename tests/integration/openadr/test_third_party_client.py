"""Interoperability with a third-party OpenADR 3 client library: `openadr3` (grid-coordination/python-oa3).

Business logic creates a program, a ven granting the depot's VEN its site, and an event; the VEN
discovers the token endpoint through /auth/server, reads the event and posts a USAGE report.
(`openadr3-client` was the other candidate; every release requires Python ≥ 3.12.)
"""

from __future__ import annotations

from decimal import Decimal

import openadr3
import pytest

from tests.integration.openadr.conftest import CLIENTS, validate_response
from tests.integration.openadr.spec_validation import BASE_PATH

pytestmark = pytest.mark.integration


def _validated(client: openadr3.OpenADRClient) -> openadr3.OpenADRClient:
    # The library's responses are checked against the YAML too (its httpx client is `_http`).
    client._http.event_hooks["response"].append(validate_response)
    return client


def test_openadr3_library_business_logic_and_ven(vtn_url: str) -> None:
    base = vtn_url + BASE_PATH
    bl_client, ven_client = CLIENTS["bl"], CLIENTS["ven_a"]
    bl_token = openadr3.fetch_token(base, bl_client.client_id, bl_client.secret)
    ven_token = openadr3.fetch_token(
        base, ven_client.client_id, ven_client.secret, scopes=["read_targets", "read_ven_objects", "write_reports"]
    )

    with _validated(openadr3.create_bl_client(base, bl_token)) as bl:
        program = bl.create_program({"programName": "interop-peak-cut"})
        assert program.status_code == 201, program.text
        program_id = openadr3.body(program)["id"]
        ven = bl.create_ven(
            {
                "objectType": "BL_VEN_REQUEST",
                "venName": "interop-depot",
                "clientID": ven_client.client_id,
                "targets": ["site:depot-a"],
            }
        )
        assert ven.status_code == 201, ven.text
        event = bl.create_event(
            {
                "programID": program_id,
                "eventName": "interop peak-cut",
                "targets": ["site:depot-a"],
                "payloadDescriptors": [
                    {"objectType": "EVENT_PAYLOAD_DESCRIPTOR", "payloadType": "IMPORT_CAPACITY_LIMIT", "units": "KW"}
                ],
                "reportDescriptors": [{"payloadType": "USAGE", "units": "KWH"}],
                "intervalPeriod": {"start": "2030-08-01T14:00:00+09:00", "duration": "PT30M"},
                "intervals": [{"id": 0, "payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [35.0]}]}],
            }
        )
        assert event.status_code == 201, event.text
        event_id = openadr3.body(event)["id"]

    with _validated(openadr3.create_ven_client(base, ven_token)) as client:
        events = client.events(programID=program_id)
        assert [e.id for e in events] == [event_id]
        read = client.event(event_id)
        assert read.program_id == program_id
        [interval] = read.resolved_intervals()
        assert interval.payloads[0].values == [35.0]
        report = client.create_report(
            {
                "eventID": event_id,
                "clientName": "interop-depot",
                "resources": [
                    {
                        "resourceName": "meter-1",
                        "intervalPeriod": {"start": "2030-08-01T14:00:00+09:00", "duration": "PT30M"},
                        "intervals": [{"id": 0, "payloads": [{"type": "USAGE", "values": [16.75]}]}],
                    }
                ],
            }
        )
        assert report.status_code == 201, report.text
        [mine] = client.reports(eventID=event_id)
        assert mine.client_name == "interop-depot"
        assert mine.resources[0].intervals[0].payloads[0].values == [Decimal("16.75")]

    with _validated(openadr3.create_bl_client(base, bl_token)) as bl:
        assert [r.id for r in bl.reports(eventID=event_id)] == [openadr3.body(report)["id"]]
