"""Which webhook addresses the VTN refuses outside development (SSRF)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any

import pytest

from services.api.openadr.callback_guard import callback_refusal
from vpp.domain.callback_address import address_refusal, host_refusal


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
        ("169.254.169.254", "link-local"),  # cloud metadata
        ("fe80::1", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "reserved"),
    ],
)
def test_addresses_into_this_host_or_its_link_are_refused(address: str, why: str) -> None:
    reason = address_refusal(ipaddress.ip_address(address))
    assert reason is not None
    assert why in reason


@pytest.mark.parametrize("address", ["10.0.0.5", "172.16.0.1", "192.168.1.2", "fd00::1", "203.0.113.9", "8.8.8.8"])
def test_private_and_public_addresses_are_allowed(address: str) -> None:
    # VENs sit on a utility's private network or VPN as often as on the internet.
    assert address_refusal(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST.", "ems.localhost", "[::1]", "127.0.0.1", "0.0.0.0"])
def test_hosts_that_name_this_host_are_refused_as_written(host: str) -> None:
    assert host_refusal(host) is not None


def test_a_name_is_left_to_resolution() -> None:
    assert host_refusal("ven.example.com") is None


def test_a_name_that_resolves_into_this_host_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # No DNS server here: the resolver's answer is what a rebound name would give.
    answers = {"rebound.example": "127.0.0.1", "metadata.example": "169.254.169.254", "ven.example": "10.1.2.3"}

    async def getaddrinfo(self: Any, host: str, port: int, **_kw: Any) -> list[tuple[Any, ...]]:
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "unknown")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answers[host], port))]

    monkeypatch.setattr(asyncio.BaseEventLoop, "getaddrinfo", getaddrinfo)

    async def check(url: str) -> str | None:
        return await callback_refusal(url)

    rebound = asyncio.run(check("https://rebound.example/cb"))
    assert rebound is not None
    assert "rebound.example resolves to 127.0.0.1" in rebound
    metadata = asyncio.run(check("http://metadata.example/latest/meta-data/"))
    assert metadata is not None
    assert "link-local" in metadata
    assert asyncio.run(check("http://ven.example:8080/cb")) is None
    assert asyncio.run(check("http://unknown.example/cb")) is None  # unreachable: retried, as any down receiver
    assert asyncio.run(check("http://[::ffff:169.254.169.254]/")) is not None
