"""The webhook backlog the alert rules watch: what the API's /metrics says about its deliverer."""

from __future__ import annotations

import asyncio

import httpx
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from services.api.main import create_app
from services.api.openadr.webhooks import RetryPolicy, WebhookDeliverer
from vpp.settings import Settings


def scrape(app_metrics_registry: object) -> dict[str, float]:
    text = generate_latest(app_metrics_registry).decode()  # type: ignore[arg-type]
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("vpp_api_webhook")
    }


def test_pending_deliveries_and_outcomes_reach_the_api_metrics() -> None:
    app = create_app(
        Settings(environment="development"), database_url="postgresql://unused@127.0.0.1:1/unused"
    )  # no connection made
    registry = app.state.api_metrics.registry
    assert scrape(registry) == {
        "vpp_api_webhook_deliveries_pending": 0,
        "vpp_api_webhook_deliveries_total": 0,
        "vpp_api_webhook_deliveries_failed_total": 0,
    }  # before the first notification there is no deliverer yet

    async def scenario() -> list[dict[str, float]]:
        release = asyncio.Event()

        async def held_sleep(_seconds: float) -> None:
            await release.wait()  # a delivery waiting to retry stays pending until released

        def answer(request: httpx.Request) -> httpx.Response:
            return httpx.Response(204 if request.url.host == "ok.test" else 503)

        deliverer = WebhookDeliverer(RetryPolicy(attempts=2), transport=httpx.MockTransport(answer), sleep=held_sleep)
        app.state.openadr_webhooks = deliverer
        tasks = [deliverer.submit("http://down.test/cb", {}), deliverer.submit("http://down.test/cb", {})]
        tasks.append(deliverer.submit("http://ok.test/cb", {}))
        await tasks[-1]
        during = scrape(registry)
        release.set()
        await deliverer.drain()
        return [during, scrape(registry)]

    during, after = asyncio.run(scenario())
    assert during == {
        "vpp_api_webhook_deliveries_pending": 2,
        "vpp_api_webhook_deliveries_total": 1,
        "vpp_api_webhook_deliveries_failed_total": 0,
    }
    assert after == {
        "vpp_api_webhook_deliveries_pending": 0,
        "vpp_api_webhook_deliveries_total": 1,
        "vpp_api_webhook_deliveries_failed_total": 2,
    }
