"""One webhook POST's outcome and the back-off the outbox schedules after it."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from services.api.openadr.webhooks import Attempt, RetryPolicy, next_delay_s, post_notification

POLICY = RetryPolicy(attempts=4, first_delay_s=1.0, factor=2.0, max_delay_s=3.0, jitter=0.0)


def _post(outcome: int | Exception, headers: dict[str, str] | None = None) -> tuple[Attempt, httpx.Request]:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if isinstance(outcome, Exception):
            raise outcome
        return httpx.Response(outcome, headers=headers)

    async def scenario() -> Attempt:
        async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
            return await post_notification(client, "http://receiver.test/cb", {"operation": "CREATE"}, "tok")

    attempt = asyncio.run(scenario())
    return attempt, seen[0]


def test_success_carries_the_subscription_bearer_token() -> None:
    attempt, request = _post(204)
    assert attempt == Attempt(True, False)
    assert request.headers["authorization"] == "Bearer tok"
    assert next_delay_s(POLICY, 1, attempt) is None


@pytest.mark.parametrize("outcome", [503, 500, 429, 408, httpx.ConnectError("refused")])
def test_server_errors_throttling_and_connection_errors_are_retried(outcome: int | Exception) -> None:
    attempt, _ = _post(outcome)
    assert not attempt.ok
    assert attempt.retry


@pytest.mark.parametrize("status", [400, 401, 404, 410])
def test_client_errors_end_delivery(status: int) -> None:
    attempt, _ = _post(status)
    assert attempt == Attempt(False, False, f"HTTP {status}")
    assert next_delay_s(POLICY, 1, attempt) is None


def test_back_off_doubles_up_to_the_cap_then_gives_up() -> None:
    failed = Attempt(False, True, "HTTP 503")
    assert [next_delay_s(POLICY, n, failed) for n in (1, 2, 3, 4)] == [1.0, 2.0, 3.0, None]


def test_retry_after_is_honoured_within_the_cap() -> None:
    attempt, _ = _post(429, {"Retry-After": "2.5"})
    assert attempt.retry_after_s == 2.5
    assert next_delay_s(POLICY, 1, attempt) == 2.5
    capped, _ = _post(503, {"Retry-After": "600"})
    assert next_delay_s(POLICY, 1, capped) == 3.0


def test_jitter_stays_within_its_fraction() -> None:
    policy = RetryPolicy(first_delay_s=10.0, jitter=0.1)
    assert all(9.0 <= policy.delay_s(1) <= 11.0 for _ in range(200))
