"""One webhook POST for an OpenADR notification, and the back-off between attempts.

A callback that answers 2xx is done; a connection error, timeout, 408, 425, 429 or 5xx is worth
another attempt after ``first_delay_s × factor**n`` (capped, with a little jitter so many
subscribers do not retry in step, and never sooner than a ``Retry-After`` the receiver asked for,
within the cap); any other 4xx is the subscriber's error and is not retried. The outbox
(`services.api.openadr.outbox`) keeps the attempts count and the schedule in the database, so a
retry survives an API restart.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

__all__ = ["Attempt", "RetryPolicy", "next_delay_s", "post_notification"]

_RETRY_STATUSES = {408, 425, 429}


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 10
    first_delay_s: float = 1.0
    factor: float = 2.0
    max_delay_s: float = 600.0
    jitter: float = 0.1  # ± fraction of each delay
    timeout_s: float = 5.0

    def delay_s(self, failures: int) -> float:
        """Wait before the attempt after `failures` failed ones (1-based)."""
        base = min(self.first_delay_s * self.factor ** (failures - 1), self.max_delay_s)
        return base * (1 + random.uniform(-self.jitter, self.jitter))


@dataclass(frozen=True, slots=True)
class Attempt:
    ok: bool
    retry: bool  # worth another attempt
    reason: str = ""
    retry_after_s: float | None = None  # what the receiver asked for


def _retry_after_s(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None


async def post_notification(
    client: httpx.AsyncClient, url: str, body: Mapping[str, Any], bearer_token: str | None
) -> Attempt:
    headers = {"Authorization": f"Bearer {bearer_token}"} if bearer_token else {}
    try:
        response = await client.post(url, json=dict(body), headers=headers)
    except httpx.HTTPError as exc:
        return Attempt(False, True, f"{type(exc).__name__}: {exc}")
    if response.is_success:
        return Attempt(True, False)
    reason = f"HTTP {response.status_code}"
    if response.status_code < 500 and response.status_code not in _RETRY_STATUSES:
        return Attempt(False, False, reason)
    return Attempt(False, True, reason, _retry_after_s(response))


def next_delay_s(policy: RetryPolicy, attempts: int, attempt: Attempt) -> float | None:
    """Wait before retrying after `attempts` failed ones ending with `attempt`; None: give up."""
    if attempt.ok or not attempt.retry or attempts >= policy.attempts:
        return None
    delay_s = policy.delay_s(attempts)
    if attempt.retry_after_s is not None:
        delay_s = min(max(delay_s, attempt.retry_after_s), policy.max_delay_s)
    return delay_s
