"""The webhook address check at the edge: the URL's host, resolved (:mod:`vpp.domain.callback_address`)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import httpx

from vpp.domain.callback_address import address_refusal, host_refusal

__all__ = ["callback_refusal"]


async def callback_refusal(url: str) -> str | None:
    """Why the VTN may not POST to ``url``; None when it may. A name that does not resolve is not refused here:
    the delivery fails and is retried as any unreachable receiver's."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as error:
        return f"not a URL: {error}"
    host = parsed.host
    if not host:
        return "the URL has no host"
    refused = host_refusal(host)
    if refused is not None:
        return refused
    if _is_address(host):
        return None  # an address the check above allowed: nothing to resolve
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return None
    for _family, _type, _proto, _name, sockaddr in infos:
        refused = address_refusal(ipaddress.ip_address(str(sockaddr[0]).split("%")[0]))
        if refused is not None:
            return f"{host} resolves to {refused}"
    return None


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
