"""Which addresses a webhook may be sent to: the VTN must not become a way into its own host or network.

Any VEN can create a subscription, and the VTN then POSTs to its ``callbackUrl``. Without a check a VEN could
make the VTN call its own admin ports on loopback, or a cloud metadata service on a link-local address
(169.254.169.254 hands out the host's credentials). Private ranges (10/8, 172.16/12, 192.168/16, fc00::/7)
stay allowed: VENs do sit on a utility's private network or VPN. Outside development and test the API refuses
such callbacks when a subscription is written and again, after DNS resolution, before each delivery (a name
can be pointed at 127.0.0.1 after it was accepted).
"""

from __future__ import annotations

import ipaddress

__all__ = ["address_refusal", "host_refusal"]

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def address_refusal(address: IpAddress) -> str | None:
    """Why a webhook may not go to ``address``; None when it may."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    if address.is_loopback:
        return f"{address} is a loopback address (this host)"
    if address.is_link_local:
        return f"{address} is link-local (cloud metadata services live there)"
    if address.is_unspecified:
        return f"{address} is the unspecified address (this host)"
    if address.is_multicast:
        return f"{address} is a multicast address"
    if address.is_reserved:
        return f"{address} is a reserved address"
    return None


def host_refusal(host: str) -> str | None:
    """Why a webhook may not go to ``host`` as written (a name that must mean this host, or an address); None
    when the name has to be resolved to tell."""
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):  # RFC 6761: always loopback
        return f"{host} is this host"
    try:
        return address_refusal(ipaddress.ip_address(name))
    except ValueError:
        return None
