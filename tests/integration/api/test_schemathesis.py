"""Property-based run over the app's own OpenAPI schema: no 5xx, no response that breaks the schema.

Bounded (a few examples per operation) so it fits the suite's time budget. Requests carry an
operator token so they get past authentication and into the handlers.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from services.api.main import create_app
from tests.integration.api.api_fixtures import CLIENTS, add_clients, api_settings, register_sites
from tests.integration.api.server import serving
from tests.support.servers import fresh_database
from vpp.embedded.postgres import EmbeddedPostgres

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def served(pg_server: EmbeddedPostgres) -> Iterator[tuple[str, str]]:
    with fresh_database(pg_server) as url:
        register_sites(url)
        add_clients(url)
        with serving(create_app(api_settings(), database_url=url)) as base_url:
            creds = CLIENTS["operator"]
            token = httpx.post(
                f"{base_url}/api/v1/oauth/token",
                data={"grant_type": "client_credentials", "client_id": creds.client_id, "client_secret": creds.secret},
            ).json()["access_token"]
            yield base_url, token


# schemathesis' pytest plugin (`schema.parametrize`) does not run under pytest 9, so drive the
# operations' Hypothesis strategies directly: positive cases reach the handlers, negative ones
# must be refused with a 4xx problem detail.
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
CHECKS = [not_a_server_error, response_schema_conformance]


def test_api_conforms_to_its_schema(served: tuple[str, str]) -> None:
    base_url, token = served
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    headers = {"Authorization": f"Bearer {token}"}
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 18
    for operation in operations:
        for mode in MODES:

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=6, deadline=None, database=None, suppress_health_check=list(HealthCheck))
            def run(case: schemathesis.Case) -> None:
                case.call_and_validate(headers=headers, checks=CHECKS)

            try:
                run()
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # nothing to negate: the operation takes no input
            except Exception as exc:  # collect every operation's failure, then report them together
                failures.append(f"{operation.label} [{mode.value}]: {exc}"[:2000])
    assert not failures, "\n\n".join(failures)
