"""Network namespaces for ECHONET Lite tests: no multicast or UDP 3610 packet reaches a real interface.

`EchonetLan` makes two namespaces joined by a veth pair, the gateway's side and the homes' side, each
with only that veth and its own loopback. Sockets are opened *inside* a namespace by switching the
calling thread into it (setns(2) is per thread on Linux) and back: a socket keeps the namespace it
was created in, so the gateway process can hold its ECHONET socket in the LAN namespace while its MQTT
connection stays on the host's loopback, like a real gateway with a LAN and a WAN side.

Needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN) and `ip` (iproute2); tests fail, not skip, without them.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import subprocess
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
_counter = itertools.count()
_setns_lock = threading.Lock()


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], check=False, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"`ip {' '.join(args)}` failed (network namespaces need root): {done.stderr.strip()}")


def in_namespace(name: str, make: Callable[[], T]) -> T:
    """Run ``make`` with this thread inside network namespace ``name``; sockets it opens stay there."""
    with _setns_lock:
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(f"/run/netns/{name}", os.O_RDONLY)
        try:
            if _libc.setns(target, _CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns into {name} failed (root needed)")
            try:
                return make()
            finally:
                if _libc.setns(own, _CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns back to the host namespace failed")
        finally:
            os.close(target)
            os.close(own)


class EchonetLan:
    def __init__(self, device_ips: int = 4) -> None:
        tag = f"{os.getpid() % 100000}x{next(_counter)}"
        self.gateway_ns, self.device_ns = f"velg{tag}", f"veld{tag}"
        self._gw_if, self._dev_if = f"vg{tag}"[:15], f"vd{tag}"[:15]
        self.gateway_ip = "10.213.0.1"
        self.device_ips = [f"10.213.0.{n}" for n in range(2, 2 + device_ips)]

    def create(self) -> EchonetLan:
        for ns in (self.gateway_ns, self.device_ns):
            _ip("netns", "add", ns)
            _ip("-n", ns, "link", "set", "lo", "up")
        _ip("link", "add", self._gw_if, "netns", self.gateway_ns, "type", "veth",
            "peer", "name", self._dev_if, "netns", self.device_ns)  # fmt: skip
        _ip("-n", self.gateway_ns, "addr", "add", f"{self.gateway_ip}/24", "dev", self._gw_if)
        _ip("-n", self.gateway_ns, "link", "set", self._gw_if, "up")
        for address in self.device_ips:
            _ip("-n", self.device_ns, "addr", "add", f"{address}/24", "dev", self._dev_if)
        _ip("-n", self.device_ns, "link", "set", self._dev_if, "up")
        return self

    def destroy(self) -> None:
        for ns in (self.gateway_ns, self.device_ns):
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)
