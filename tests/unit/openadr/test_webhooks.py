from __future__ import annotations

import asyncio

import httpx
import pytest

from services.api.openadr.webhooks import RetryPolicy, WebhookDeliverer

POLICY = RetryPolicy(attempts=4, first_delay_s=1.0, factor=2.0, max_delay_s=3.0, jitter=0.0)


def _run(
    statuses: list[int | Exception], policy: RetryPolicy = POLICY, headers: dict[str, str] | None = None
) -> tuple[bool, list[float], int]:
    calls = 0
    delays: list[float] = []

    def answer(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        outcome = statuses[min(calls, len(statuses) - 1)]
        calls += 1
        if isinstance(outcome, Exception):
            raise outcome
        return httpx.Response(outcome, headers=headers)

    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    deliverer = WebhookDeliverer(policy, transport=httpx.MockTransport(answer), sleep=sleep)
    ok = asyncio.run(deliverer.deliver("http://receiver.test/cb", {"operation": "CREATE"}))
    return ok, delays, calls


def test_back_off_doubles_up_to_the_cap() -> None:
    ok, delays, calls = _run([503, 502, 500, 200])
    assert (ok, delays, calls) == (True, [1.0, 2.0, 3.0], 4)


def test_connection_errors_and_throttling_are_retried() -> None:
    ok, delays, calls = _run([httpx.ConnectError("refused"), 429, 200])
    assert (ok, delays, calls) == (True, [1.0, 2.0], 3)


def test_retry_after_is_honoured_within_the_cap() -> None:
    ok, delays, _ = _run([429, 200], headers={"Retry-After": "2.5"})
    assert ok
    assert delays == [2.5]
    _, capped, _ = _run([503, 200], headers={"Retry-After": "600"})
    assert capped == [3.0]


@pytest.mark.parametrize("status", [400, 401, 404, 410])
def test_client_errors_end_delivery(status: int) -> None:
    assert _run([status]) == (False, [], 1)


def test_jitter_stays_within_its_fraction() -> None:
    policy = RetryPolicy(first_delay_s=10.0, jitter=0.1)
    assert all(9.0 <= policy.delay_s(1) <= 11.0 for _ in range(200))


def test_submitted_deliveries_can_be_drained() -> None:
    async def scenario() -> bool:
        deliverer = WebhookDeliverer(POLICY, transport=httpx.MockTransport(lambda r: httpx.Response(204)))
        task = deliverer.submit("http://receiver.test/cb", {"operation": "DELETE"})
        await deliverer.drain()
        return task.result() and deliverer.delivered == 1

    assert asyncio.run(scenario())
