"""Property-based runs over the app's own OpenAPI schema and the official OpenADR 3.1.0 schema: no 5xx, and
no REST response that breaks the app's schema. Then every operation of both, with a NUL in each path
parameter and in the query, and with a body over the size limit: a 4xx, never a 5xx.

Bounded (a few examples per operation) so it fits the suite's time budget; `VPP_SCHEMATHESIS_EXAMPLES=200`
runs a larger search. Requests carry an operator (REST) or business-logic (OpenADR) token so they get
past authentication and into the handlers.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from services.api.main import create_app
from tests.integration.api.api_fixtures import CLIENTS, add_clients, api_settings, register_sites
from tests.integration.api.server import serving
from tests.integration.openadr.spec_validation import BASE_PATH, SPEC_PATH
from tests.support.servers import fresh_database
from vpp.embedded.postgres import EmbeddedPostgres
from vpp.postgres.openadr_clients import add_openadr_client

pytestmark = [
    pytest.mark.integration,
    # Hypothesis warns when the global `random` state moves while a strategy draws; the API served in
    # another thread of this process (webhook back-off jitter) moves it at random moments. Under
    # `filterwarnings = error` that failed an example once and not on replay ("unreliable results").
    pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies"),
]

EXAMPLES = int(os.environ.get("VPP_SCHEMATHESIS_EXAMPLES", "6"))
BL = ("bl-fuzz", "bl-fuzz-secret-0123456789")


@pytest.fixture(scope="module")
def served(pg_server: EmbeddedPostgres) -> Iterator[tuple[str, str, str]]:
    with fresh_database(pg_server) as url:
        register_sites(url)
        add_clients(url)
        with psycopg.connect(url) as conn:
            add_openadr_client(conn, BL[0], BL[1], "bl", None)
            conn.commit()
        # The fuzzer sends many wrong credentials on purpose: lift the failed-login throttle.
        app_settings = api_settings(
            api_token_failures_per_client_per_min=100_000, api_token_failures_per_address_per_min=100_000
        )
        with serving(create_app(app_settings, database_url=url)) as base_url:
            creds = CLIENTS["operator"]
            token = httpx.post(
                f"{base_url}/api/v1/oauth/token",
                data={"grant_type": "client_credentials", "client_id": creds.client_id, "client_secret": creds.secret},
            ).json()["access_token"]
            bl_token = httpx.post(
                f"{base_url}{BASE_PATH}/auth/token",
                data={"grant_type": "client_credentials", "client_id": BL[0], "client_secret": BL[1]},
            ).json()["access_token"]
            yield base_url, token, bl_token


def openadr_schema(base_url: str) -> Any:
    # YAML reads the examples' timestamps as datetimes; JSON Schema wants strings.
    document = json.loads(json.dumps(yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8")), default=str))
    document["servers"] = [{"url": base_url + BASE_PATH}]
    schema = schemathesis.openapi.from_dict(document)
    schema.config.update(base_url=base_url + BASE_PATH)
    return schema


# schemathesis' pytest plugin (`schema.parametrize`) does not run under pytest 9, so drive the
# operations' Hypothesis strategies directly: positive cases reach the handlers, negative ones
# must be refused with a 4xx problem detail.
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
CHECKS = [not_a_server_error, response_schema_conformance]


def fuzz(schema: Any, headers: dict[str, str], checks: list[Any], min_operations: int, examples: int) -> None:
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= min_operations
    for operation in operations:
        for mode in MODES:

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=examples,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
                # No shrinking: its traced "explain" phase takes minutes per failure; the first
                # failing case is reported as found.
                phases=[Phase.explicit, Phase.generate],
            )
            def run(case: schemathesis.Case) -> None:  # type: ignore[type-arg]  # generic only in the stubs
                case.call_and_validate(headers=headers, checks=checks)

            try:
                run()
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # nothing to negate: the operation takes no input
            except Exception as exc:  # collect every operation's failure, then report them together
                inner = "; ".join(str(e)[:600] for e in getattr(exc, "exceptions", ()))  # a flaky failure's causes
                failures.append(f"{operation.label} [{mode.value}]: {exc} {inner}"[:2000])
    assert not failures, "\n\n".join(failures)


def test_api_conforms_to_its_schema(served: tuple[str, str, str]) -> None:
    base_url, token, _ = served
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    fuzz(schema, {"Authorization": f"Bearer {token}"}, CHECKS, 18, EXAMPLES)


def test_openadr_vtn_gives_no_server_error(served: tuple[str, str, str]) -> None:
    base_url, _, bl_token = served
    # Only "no 5xx" here: the official schema's own defects (tests/integration/openadr/spec_validation.py)
    # make conformance a matter for the OpenADR tests, which patch them.
    # Half the examples: generating the OpenADR report bodies costs seconds per operation.
    examples = max(2, EXAMPLES // 2)
    fuzz(openadr_schema(base_url), {"Authorization": f"Bearer {bl_token}"}, [not_a_server_error], 15, examples)


def _operations(document: dict[str, Any], prefix: str) -> Iterator[tuple[str, str]]:
    for path, item in document["paths"].items():
        for method in item:
            if method in {"get", "post", "put", "patch", "delete"}:
                yield method.upper(), prefix + path


def test_nul_bytes_and_oversized_bodies_are_refused_everywhere(served: tuple[str, str, str]) -> None:
    base_url, token, bl_token = served
    rest = httpx.get(f"{base_url}/openapi.json").json()
    openadr = yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))
    targets = [(m, p, token) for m, p in _operations(rest, "")]
    targets += [(m, p, bl_token) for m, p in _operations(openadr, BASE_PATH)]
    oversized = b'{"name": "' + b"x" * (1024 * 1024 + 1) + b'"}'
    server_errors: list[str] = []
    with httpx.Client(base_url=base_url, timeout=30) as client:
        for method, template, bearer in targets:
            headers = {"Authorization": f"Bearer {bearer}", "Content-Type": "application/json"}
            with_nul = re.sub(r"\{[^}]+\}", "a%00b", template) + "?q=%00&limit=%00"
            requests: list[tuple[str, bytes | None]] = [(with_nul, None)]
            if method in {"POST", "PUT", "PATCH"}:
                requests += [(re.sub(r"\{[^}]+\}", "a", template), oversized)]
                requests += [(re.sub(r"\{[^}]+\}", "a", template), b'{"name": "a\\u0000b", "programName": "\\u0000"}')]
            for url, body in requests:
                response = client.request(method, url, content=body, headers=headers)
                if response.status_code >= 500:
                    server_errors.append(f"{method} {url[:80]} ({len(body or b'')} bytes): {response.status_code}")
                elif body is oversized:
                    assert response.status_code == 413, (method, url, response.status_code)
    assert len(targets) >= 35
    assert not server_errors, "\n".join(server_errors)
