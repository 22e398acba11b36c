"""A device whose setup fails (pychonet raises on a short answer to the property-map reads) is tried again when
its node next speaks, instead of being left out for good: pychonet already knows the node and would not report
it again. pychonet's client is stood in for: a short answer on demand is what a real device cannot be made to
give here."""

from __future__ import annotations

import asyncio
from typing import Any

from services.gateway.echonet import EchonetGateway, GatewayConfig
from vpp.echonet.codes import ElClass

METER = int(ElClass.SMART_METER)
HOST = "192.0.2.20"


class _Api:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.state: dict[str, Any] = {}
        self.unregistered: list[str] = []

    async def discover(self, host: str) -> bool:
        self.state[host] = {"uid": "fe00aa", "instances": {METER >> 8: {METER & 0xFF: {1: {}}}}}
        return True

    async def getAllPropertyMaps(self, host: str, gc: int, cc: int, ci: int) -> None:  # noqa: N802 - pychonet's
        if self.failures:
            self.failures -= 1
            raise IndexError("short answer")  # what pychonet raises on a truncated property map

    def unregister_host(self, host: str) -> None:
        self.unregistered.append(host)
        self.state.pop(host, None)


def test_a_device_whose_setup_failed_is_admitted_when_its_node_speaks_again() -> None:
    gateway = EchonetGateway(GatewayConfig("site-1", "192.0.2.1"), publisher_factory=lambda _signal: None)  # type: ignore[arg-type,return-value]
    api = _Api(failures=1)
    gateway.api = api  # type: ignore[assignment]

    async def node_speaks() -> None:
        await gateway._unknown_host(HOST)
        await gateway._admit_new_hosts()

    asyncio.run(node_speaks())
    assert gateway.instances == {}
    assert api.unregistered == [HOST]  # forgotten by pychonet: its next packet is an unknown host again
    asyncio.run(node_speaks())
    assert list(gateway.instances) == [(HOST, METER, 1)]
