"""Webhook delivery for OpenADR subscriptions: POST a notification, retrying with exponential back-off.

At-most-a-few-attempts delivery from the API process: a callback that answers 2xx is done; a
connection error, timeout, 408, 429 or 5xx is retried after ``first_delay_s × factor**n`` (capped,
with a little jitter so many subscribers do not retry in step, and never sooner than a
``Retry-After`` the receiver asked for, within the cap); any other 4xx is the subscriber's error
and is not retried. Deliveries run as tasks so a slow receiver never holds up the request that
caused the notification.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

__all__ = ["RetryPolicy", "WebhookDeliverer"]

_log = logging.getLogger(__name__)
_RETRY_STATUSES = {408, 425, 429}


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 6
    first_delay_s: float = 0.5
    factor: float = 2.0
    max_delay_s: float = 60.0
    jitter: float = 0.1  # ± fraction of each delay
    timeout_s: float = 5.0

    def delay_s(self, failures: int) -> float:
        """Wait before the attempt after `failures` failed ones (1-based)."""
        base = min(self.first_delay_s * self.factor ** (failures - 1), self.max_delay_s)
        return base * (1 + random.uniform(-self.jitter, self.jitter))


def _retry_after_s(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None


class WebhookDeliverer:
    def __init__(
        self,
        policy: RetryPolicy | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.policy = policy or RetryPolicy()
        self._transport = transport
        self._sleep = sleep
        self._tasks: set[asyncio.Task[bool]] = set()
        self.delivered = 0
        self.failed = 0

    @property
    def pending(self) -> int:
        """Deliveries under way or waiting to retry (the backlog an operator watches)."""
        return len(self._tasks)

    def submit(self, url: str, body: Mapping[str, Any], bearer_token: str | None = None) -> asyncio.Task[bool]:
        """Start delivering `body` to `url` in the background; the task's result says whether it arrived."""
        task = asyncio.get_running_loop().create_task(self.deliver(url, body, bearer_token))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def deliver(self, url: str, body: Mapping[str, Any], bearer_token: str | None = None) -> bool:
        headers = {"Authorization": f"Bearer {bearer_token}"} if bearer_token else {}
        policy = self.policy
        async with httpx.AsyncClient(transport=self._transport, timeout=policy.timeout_s) as client:
            for attempt in range(1, policy.attempts + 1):
                wait_s: float | None = None
                try:
                    response = await client.post(url, json=dict(body), headers=headers)
                except httpx.HTTPError as exc:
                    reason = f"{type(exc).__name__}: {exc}"
                else:
                    if response.is_success:
                        self.delivered += 1
                        return True
                    reason = f"HTTP {response.status_code}"
                    if response.status_code < 500 and response.status_code not in _RETRY_STATUSES:
                        _log.warning("webhook refused; not retried", extra={"url": url, "reason": reason})
                        break
                    wait_s = _retry_after_s(response)
                if attempt == policy.attempts:
                    _log.warning("webhook gave up", extra={"url": url, "reason": reason, "attempts": attempt})
                    break
                delay_s = policy.delay_s(attempt)
                if wait_s is not None:
                    delay_s = min(max(delay_s, wait_s), policy.max_delay_s)
                await self._sleep(delay_s)
        self.failed += 1
        return False

    async def drain(self) -> None:
        """Wait for every delivery under way (shutdown, tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
