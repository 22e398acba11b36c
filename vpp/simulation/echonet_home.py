"""Emulated ECHONET Lite homes, for the gateway's tests and `vpp simulate --echonet-homes`.

uecho on the device side, pychonet on the gateway's.
A different implementation than the gateway's on purpose, so a shared misreading of the specification
cannot hide. uecho supplies the frame codec and the device objects' request handling
(`uecho.Object.message_received`); this module supplies what uecho gets wrong or does not allow:

- transport: uecho's `LocalNode.start()` binds every IPv4 interface and ignores the addresses it is
  given, so each node here opens its own sockets, inside the test's network namespace, on one address;
- the node profile (instance list, identification) and the property maps, which uecho encodes wrongly
  from 16 properties on (the bitmap format);
- physics: a home's load, PV, battery and EV charger, so the meter reads what the devices do.

uecho answers a refused SETC with 0x50 (SetI_SNA) instead of 0x51 (SetC_SNA); it is left that way, since
it is exactly what the gateway's read-back has to catch.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

from uecho.message import Message
from uecho.object import Object, ObjectRequestHandler
from uecho.property import Property

from vpp.echonet.mapping import device_id
from vpp.simulation.netns import in_namespace

__all__ = ["EmulatedHome", "EmulatedNode", "HomeState", "encode_property_map"]

GROUP = "224.0.23.0"
PORT = 3610
NODE_PROFILE = 0x0EF001
_GET_RES, _GET_SNA = 0x72, 0x52


def encode_property_map(codes: list[int]) -> bytes:
    """ECHONET Lite property map: a count then the codes, or a 16-byte bitmap from 16 codes on."""
    codes = sorted(set(codes))
    if len(codes) < 16:
        return bytes([len(codes), *codes])
    bitmap = bytearray(16)
    for code in codes:
        bitmap[code & 0x0F] |= 1 << ((code >> 4) - 8)
    return bytes([len(codes)]) + bytes(bitmap)


def _u(value: float, size: int) -> bytes:
    return int(value).to_bytes(size, "big")


def _s32(value: float) -> bytes:
    return round(value).to_bytes(4, "big", signed=True)


@dataclass
class HomeState:
    """A household in W and Wh. The battery and EV follow their ECHONET settings every tick."""

    load_w: float = 3000.0
    pv_w: float = 500.0
    soc_pct: float = 60.0
    battery_capacity_wh: float = 10_000.0
    battery_w: float = 0.0  # ECHONET sign: + charging
    battery_charge_range_w: tuple[int, int] = (100, 3000)
    battery_discharge_range_w: tuple[int, int] = (100, 3000)
    battery_charged_wh: float = 1234.0
    battery_discharged_wh: float = 2345.0
    ev_connected: bool = True
    ev_w: float = 0.0
    ev_charge_range_w: tuple[int, int] = (1400, 6000)
    ev_charged_wh: float = 5000.0
    pv_generated_wh: float = 7777.0
    imported_wh: float = 123_456.0
    exported_wh: float = 2_345.0
    refuse_epcs: set[int] = field(default_factory=set)  # the battery refuses writes of these

    @property
    def grid_w(self) -> float:
        return self.load_w + self.ev_w - self.pv_w + self.battery_w


class _Handler(ObjectRequestHandler):  # type: ignore[misc]
    def __init__(self, home: EmulatedHome, obj: Object) -> None:
        self.home, self.obj = home, obj

    def property_read_requested(self, prop: Property) -> bool:
        return prop is not None and len(prop.data) > 0  # uecho would answer an empty value as valid

    def property_write_requested(self, prop: Property, data: bytes) -> bool:
        return self.home.write_allowed(self.obj.code >> 8, prop.code, bytes(data))


class EmulatedNode:
    """One ECHONET Lite node (one IP address) holding uecho device objects, in a network namespace."""

    def __init__(self, namespace: str, ip: str, objects: list[Object], node_id: bytes) -> None:
        self.namespace, self.ip, self.objects = namespace, ip, {o.code: o for o in objects}
        self.node_id = node_id
        self.requests = 0
        self.ignore_esv: set[int] = set()  # requests of these services go unanswered (a hung device)
        self._socks: list[socket.socket] = []
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def _open(self) -> list[socket.socket]:
        unicast = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        unicast.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        unicast.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(self.ip))
        unicast.bind((self.ip, PORT))
        group = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        group.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        group.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                         struct.pack("=4s4s", socket.inet_aton(GROUP), socket.inet_aton(self.ip)))  # fmt: skip
        group.bind((GROUP, PORT))
        return [unicast, group]

    def start(self) -> None:
        self._socks = in_namespace(self.namespace, self._open)
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name=f"el-node-{self.ip}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """The node disappears: its sockets close, requests to it go unanswered."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        for sock in self._socks:
            sock.close()
        self._socks = []

    def _serve(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select(self._socks, [], [], 0.1)
            for sock in ready:
                with contextlib.suppress(OSError):
                    data, addr = sock.recvfrom(2048)
                    if addr[0] != self.ip:
                        self._handle(data, addr)

    def _handle(self, data: bytes, addr: tuple[str, int]) -> None:
        request = Message()
        try:
            request.parse_bytes(data)
        except Exception:
            return
        request.from_addr = addr
        self.requests += 1
        if request.ESV in self.ignore_esv:
            return
        if request.DEOJ >> 8 == NODE_PROFILE >> 8:
            response = self._node_profile(request)
        else:
            obj = self.objects.get(request.DEOJ) or next(
                (o for o in self.objects.values() if request.DEOJ & 0xFF == 0 and o.code >> 8 == request.DEOJ >> 8),
                None,
            )
            response = obj.message_received(request) if obj is not None else None
        if response is not None:
            self._socks[0].sendto(response.to_bytes(), addr)

    def _node_profile(self, request: Message) -> Message | None:
        if request.ESV != 0x62:
            return None
        devices = [code for code in self.objects]
        values = {
            0x83: b"\xfe" + self.node_id,
            0x8A: b"\x00\x00\x77",
            0xD3: _u(len(devices), 3),
            0xD6: bytes([len(devices)]) + b"".join(_u(code, 3) for code in devices),
            0x82: b"\x01\x0d\x01\x00",
        }
        values[0x9F] = encode_property_map([*values, 0x9D, 0x9E, 0x9F])
        values[0x9E] = encode_property_map([])
        values[0x9D] = encode_property_map([0xD5])
        response = Message()
        response.TID, response.SEOJ, response.DEOJ = request.TID, NODE_PROFILE, request.SEOJ
        ok = True
        for prop in request.properties:
            data = values.get(prop.code, b"")
            ok = ok and bool(data)
            response.add_property(Property(prop.code, data))
        response.ESV = _GET_RES if ok else _GET_SNA
        return response


class EmulatedHome:
    """A home: smart meter, PV, battery and EV charger, one node each, stepped by a thread."""

    CLASSES = (0x0288, 0x0279, 0x027D, 0x027E)

    def __init__(
        self, namespace: str, ips: list[str], state: HomeState | None = None, *, tick_s: float = 0.1, home: int = 0
    ) -> None:
        """``home`` numbers the home in a fleet; it is part of each node's ECHONET id, so device ids differ."""
        self.state = state or HomeState()
        self.home = home
        self.tick_s = tick_s
        self.meter = self._object(0x028801, {0x80: b"\x30", 0xE1: b"\x01", 0xD3: _u(1, 4), 0xD7: b"\x06"})
        self.pv = self._object(0x027901, {0x80: b"\x30"})
        self.battery = self._object(0x027D01, {
            0x80: b"\x30", 0xDA: b"\x46", 0xEB: _u(0, 4), 0xEC: _u(0, 4),
            0xDC: _u(self.state.battery_charge_range_w[0], 4) + _u(self.state.battery_charge_range_w[1], 4),
            0xDD: _u(self.state.battery_discharge_range_w[0], 4) + _u(self.state.battery_discharge_range_w[1], 4),
        }, settable=(0xDA, 0xEB, 0xEC))  # fmt: skip
        self.ev = self._object(0x027E01, {
            0x80: b"\x30", 0xDA: b"\x42", 0xEB: _u(self.state.ev_charge_range_w[1], 4),
            0xC8: _u(self.state.ev_charge_range_w[0], 4) + _u(self.state.ev_charge_range_w[1], 4),
        }, settable=(0xDA, 0xEB))  # fmt: skip
        self.nodes = [
            EmulatedNode(namespace, ip, [obj], self._node_id(n))
            for n, (ip, obj) in enumerate(zip(ips, (self.meter, self.pv, self.battery, self.ev), strict=True))
        ]
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._step(0.0)

    def _node_id(self, n: int) -> bytes:
        # Manufacturer code 0x000077 (unregistered, for experiments), then a serial: home and node.
        return bytes([0x00, 0x00, 0x77]) + bytes(9) + self.home.to_bytes(2, "big") + bytes([0, n + 1])

    def device_ids(self) -> dict[int, str]:
        """Class code → the device id a gateway gives each of this home's devices."""
        return {code: device_id(code, self._node_id(n).hex(), 1) for n, code in enumerate(self.CLASSES)}

    def _object(self, code: int, fixed: dict[int, bytes], settable: tuple[int, ...] = ()) -> Object:
        obj = Object(code)
        measured = {
            0x0288: (0xE7, 0xE0, 0xE3),
            0x0279: (0xE0, 0xE1),
            0x027D: (0xD3, 0xD6, 0xD8, 0xE4),
            0x027E: (0xD3, 0xD8, 0xC7),
        }[code >> 8]
        for epc in (*fixed, *measured):
            obj.add_property(Property(epc, fixed.get(epc, b"")))
        gets = [*fixed, *measured, 0x9D, 0x9E, 0x9F]
        obj.add_property(Property(0x9F, encode_property_map(gets)))
        obj.add_property(Property(0x9E, encode_property_map(list(settable))))
        obj.add_property(Property(0x9D, encode_property_map([0x80])))
        obj.set_request_handler(_Handler(self, obj))
        return obj

    def write_allowed(self, class_code: int, epc: int, data: bytes) -> bool:
        s = self.state
        if class_code == 0x027D and epc in s.refuse_epcs:
            return False
        value = int.from_bytes(data, "big")
        if epc == 0xDA:
            return len(data) == 1 and value in {0x42, 0x43, 0x44, 0x46}
        if class_code == 0x027D and epc == 0xEB:
            return len(data) == 4 and s.battery_charge_range_w[0] <= value <= s.battery_charge_range_w[1]
        if class_code == 0x027D and epc == 0xEC:
            return len(data) == 4 and s.battery_discharge_range_w[0] <= value <= s.battery_discharge_range_w[1]
        if class_code == 0x027E and epc == 0xEB:
            return len(data) == 4 and s.ev_charge_range_w[0] <= value <= s.ev_charge_range_w[1]
        return False

    def _setting(self, obj: Object, epc: int) -> int:
        return int.from_bytes(obj.get_property_data(epc), "big")

    def _step(self, dt_s: float) -> None:
        s, hours = self.state, dt_s / 3600.0
        with self._lock:
            mode = self._setting(self.battery, 0xDA)
            if mode == 0x43 and s.soc_pct > 0:
                s.battery_w = -float(self._setting(self.battery, 0xEC))
            elif mode == 0x42 and s.soc_pct < 100:
                s.battery_w = float(self._setting(self.battery, 0xEB))
            else:
                s.battery_w = 0.0  # standby, and "automatic" is idle in this emulation
            ev_mode = self._setting(self.ev, 0xDA)
            s.ev_w = float(self._setting(self.ev, 0xEB)) if ev_mode == 0x42 and s.ev_connected else 0.0
            s.soc_pct = min(100.0, max(0.0, s.soc_pct + s.battery_w * hours / s.battery_capacity_wh * 100))
            s.battery_charged_wh += max(s.battery_w, 0.0) * hours
            s.battery_discharged_wh += max(-s.battery_w, 0.0) * hours
            s.ev_charged_wh += s.ev_w * hours
            s.pv_generated_wh += s.pv_w * hours
            s.imported_wh += max(s.grid_w, 0.0) * hours
            s.exported_wh += max(-s.grid_w, 0.0) * hours
            self.meter.set_property_data(0xE7, _s32(s.grid_w))
            self.meter.set_property_data(0xE0, _u(s.imported_wh / 100, 4))  # unit 0xE1 = 0x01: 0.1 kWh
            self.meter.set_property_data(0xE3, _u(s.exported_wh / 100, 4))
            self.pv.set_property_data(0xE0, _u(s.pv_w, 2))
            self.pv.set_property_data(0xE1, _u(s.pv_generated_wh, 4))  # 0.001 kWh = 1 Wh
            self.battery.set_property_data(0xD3, _s32(s.battery_w))
            self.battery.set_property_data(0xD6, _u(s.battery_discharged_wh, 4))
            self.battery.set_property_data(0xD8, _u(s.battery_charged_wh, 4))
            self.battery.set_property_data(0xE4, _u(round(s.soc_pct), 1))
            self.ev.set_property_data(0xD3, _s32(s.ev_w))
            self.ev.set_property_data(0xD8, _u(s.ev_charged_wh, 4))
            self.ev.set_property_data(0xC7, b"\x41" if s.ev_connected else b"\x30")

    def _run(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(self.tick_s):
            now = time.monotonic()
            self._step(now - last)
            last = now

    def start(self) -> EmulatedHome:
        for node in self.nodes:
            node.start()
        self._thread = threading.Thread(target=self._run, name="el-home", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        for node in self.nodes:
            node.stop()
