"""`vpp gateway echonet`: ECHONET Lite devices on a site's LAN ↔ the platform's v1 MQTT contract.

pychonet (the library Home Assistant's ECHONET Lite integration uses) speaks the protocol; this module
schedules it: multicast discovery on 224.0.23.0:3610, one GET per device per poll, decoding through
`vpp.echonet.mapping`, publishing through `GatewayPublisher` (on-disk backlog), and DR signals turned
into SETC writes by `vpp.echonet.control`, each read back before it counts as done.

Why read back: a SETC "response" is not proof. Devices (and some libraries, uecho among them) answer a
refused write with the wrong service code, which pychonet then counts as success; only a GET after the
write shows what the device actually holds.

Socket: one UDP socket bound to ``bind_ip`` (0.0.0.0 by default: Linux delivers multicast only to
sockets bound to the wildcard or the group), joined to the group and sending multicast only through
``interface_ip``, the gateway's LAN address, so nothing goes out of any other interface.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pychonet.echonetapiclient import ECHONETAPIClient
from pychonet.lib.const import GET, SETC
from pychonet.lib.udpserver import UDPServer

from services.gateway.frame_errors import FrameErrorLog
from services.gateway.publisher import GatewayPublisher
from vpp.domain.dr_events import DrAck, DrSignal
from vpp.echonet.codes import CONTROL_EPCS, KIND_BY_CLASS, READ_EPCS, ElClass, Epc
from vpp.echonet.control import DEADBAND_W, DeviceView, Write, interval_at, plan_writes, release_writes
from vpp.echonet.mapping import Decoded, decode, reading_body
from vpp.echonet.mapping import device_id as make_device_id
from vpp.log import kv
from vpp.mqtt import telemetry_topic

__all__ = ["EchonetGateway", "GatewayConfig", "Instance", "WriteOutcome"]

log = logging.getLogger("vpp.gateway.echonet")
ENL_PORT = 3610
_STARTUP_POLLS = 3


@dataclass(frozen=True)
class GatewayConfig:
    site_id: str
    interface_ip: str  # the gateway's address on the site LAN
    bind_ip: str = "0.0.0.0"  # multicast needs the wildcard; egress is pinned to interface_ip
    poll_s: float = 10.0
    discover_s: float = 300.0
    timeout_s: float = 5.0  # per request; ECHONET Lite allows devices a few seconds


@dataclass
class Instance:
    host: str
    class_code: int
    instance: int
    device_id: str
    online: bool = True
    last: Decoded | None = None

    @property
    def eoj(self) -> tuple[int, int, int]:
        return self.class_code >> 8, self.class_code & 0xFF, self.instance


@dataclass(frozen=True)
class WriteOutcome:
    write: Write
    status: str  # confirmed | refused | timeout
    detail: str = ""


@dataclass
class _Control:
    signal: DrSignal | None = None
    acked: tuple[str, int] | None = None  # (event_id, revision) already acknowledged
    controlling: bool = False
    setpoints: dict[tuple[str, int], bytes] = field(default_factory=dict)  # last confirmed
    reported: set[str] = field(default_factory=set)  # failures already acked for this revision


class EchonetGateway:
    def __init__(
        self,
        config: GatewayConfig,
        publisher_factory: Callable[[Callable[[DrSignal], None]], GatewayPublisher],
        *,
        udp_factory: Callable[[], UDPServer] | None = None,
    ) -> None:
        """``udp_factory`` makes the pychonet UDP server; tests pass one that opens it inside a network
        namespace. The default opens it here, pinned to ``config.interface_ip``."""
        self.config = config
        self._publisher_factory = publisher_factory
        self._udp_factory = udp_factory or (lambda: UDPServer(local_ip=config.interface_ip))
        self.instances: dict[tuple[str, int, int], Instance] = {}
        self.control = _Control()
        self.polls = 0
        self.outcomes: list[WriteOutcome] = []  # every write's outcome, for logs and tests
        self._new_hosts: set[str] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self.publisher: GatewayPublisher | None = None
        self.api: ECHONETAPIClient | None = None

    # -- lifecycle -----------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop.set_exception_handler(FrameErrorLog(self.config.site_id, log))
        self._wake = asyncio.Event()
        server = self._udp_factory()
        # Our own multicast must not come back to us as a "new node" (pychonet would try to discover it).
        server._sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
        server.run(self.config.bind_ip, ENL_PORT, loop=self._loop)
        self.api = ECHONETAPIClient(server)
        self.api.configure(
            message_timeout=max(1, round(self.config.timeout_s * 10)),  # pychonet counts 0.1 s ticks
            logger=lambda *args: log.debug(" ".join(str(a) for a in args)),
            discover_callback=self._unknown_host,
        )
        self.publisher = self._publisher_factory(self._signal_threadsafe)
        next_discovery = 0.0
        try:
            while not stop.is_set():
                started = time.monotonic()
                if started >= next_discovery:
                    await self.api.discover()  # multicast; answers reach _unknown_host
                    next_discovery = started + self.config.discover_s
                    await asyncio.sleep(min(0.5, self.config.timeout_s))
                try:
                    await self._admit_new_hosts()
                    await self.poll_once()
                    await self.control_once()
                except Exception:  # one bad answer or bug must not take the site offline: log, go on
                    log.exception("gateway round failed", extra=kv(site=self.config.site_id))
                await _until_first(
                    (stop.wait(), self._wake.wait()), max(0.0, self.config.poll_s - (time.monotonic() - started))
                )
                self._wake.clear()
        finally:
            self.publisher.close()
            server.close()

    async def _unknown_host(self, host: str) -> None:
        # Called from pychonet's receive task: queue the host, discover it from the main loop.
        if host != self.config.interface_ip:
            self._new_hosts.add(host)
            if self._wake is not None:
                self._wake.set()

    async def _admit_new_hosts(self) -> None:
        assert self.api is not None
        while self._new_hosts:
            host = self._new_hosts.pop()
            if not await self.api.discover(host):
                log.warning("ECHONET node did not describe itself", extra=kv(host=host))
                self.api.unregister_host(host)  # so its next packet brings it back here
                continue
            try:
                await self._admit_instances(host)
            except Exception as error:  # pychonet raises its own errors for short answers
                # pychonet knows the host now and would never report it again: forget it, so its next packet
                # brings it back here and the setup is tried again.
                log.warning("ECHONET device setup failed", extra=kv(host=host, error=repr(error)))
                self.api.unregister_host(host)

    async def _admit_instances(self, host: str) -> None:
        assert self.api is not None
        node = self.api.state.get(host, {})
        uid = str(node.get("uid") or host.replace(".", ""))
        for gc, classes in node.get("instances", {}).items():
            for cc, instances in classes.items():
                class_code = gc << 8 | cc
                if class_code not in KIND_BY_CLASS:
                    continue
                for ci in instances:
                    key = (host, class_code, ci)
                    if key in self.instances:
                        continue
                    await self.api.getAllPropertyMaps(host, gc, cc, ci)
                    device_id = make_device_id(class_code, uid, ci)
                    self.instances[key] = Instance(host, class_code, ci, device_id)
                    log.info(
                        "ECHONET device found",
                        extra=kv(site=self.config.site_id, device_id=device_id, host=host,
                                 eoj=f"0x{class_code:04X}{ci:02X}"),
                    )  # fmt: skip

    # -- telemetry -----------------------------------------------------------------------------------
    def _props(self, inst: Instance) -> dict[int, Any]:
        """pychonet's state for the instance; an empty dict if pychonet has forgotten the host."""
        assert self.api is not None
        gc, cc, ci = inst.eoj
        node = self.api.state.get(inst.host) or {}
        props: dict[int, Any] = node.get("instances", {}).get(gc, {}).get(cc, {}).get(ci, {})
        return props

    async def _get(self, inst: Instance, epcs: tuple[int, ...]) -> dict[int, bytes] | None:
        """GET fresh values; None on timeout. Values not answered this time are absent, never stale."""
        assert self.api is not None
        props = self._props(inst)
        for epc in epcs:
            # pychonet keeps the last value of every property; drop them so a partial answer cannot
            # republish an old measurement as a new one.
            props.pop(epc, None)
        try:
            ok = await self.api.echonetMessage(inst.host, *inst.eoj, GET, [{"EPC": epc} for epc in epcs])
        except Exception as error:  # pychonet raises its own errors for short answers
            log.warning("ECHONET read failed", extra=kv(device_id=inst.device_id, error=repr(error)))
            ok = False
        if not ok:
            return None
        return {epc: bytes(props[epc]) for epc in epcs if isinstance(props.get(epc), bytes | bytearray)}

    async def poll_once(self) -> None:
        assert self.publisher is not None
        self.polls += 1
        for inst in list(self.instances.values()):
            values = await self._get(inst, READ_EPCS[inst.class_code])
            if values is None:
                if inst.online:
                    log.warning("ECHONET device stopped answering", extra=kv(device_id=inst.device_id))
                inst.online = False
                continue
            if not inst.online:
                log.info("ECHONET device answers again", extra=kv(device_id=inst.device_id))
            inst.online = True
            inst.last = decode(inst.class_code, values)
            body = reading_body(inst.last, datetime.now(UTC).isoformat(timespec="milliseconds"))
            if inst.last.notes:
                log.warning("ECHONET values left out", extra=kv(device_id=inst.device_id, notes=inst.last.notes))
            if body is not None:
                self.publisher.enqueue(telemetry_topic(self.config.site_id, inst.device_id), body)

    # -- DR ------------------------------------------------------------------------------------------
    def _signal_threadsafe(self, signal: DrSignal) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._accept_signal, signal)

    def _accept_signal(self, signal: DrSignal) -> None:
        self.control.signal = signal
        self.control.reported.clear()
        if self._wake is not None:
            self._wake.set()

    def _online(self, class_code: int) -> Instance | None:
        return next(
            (i for i in self.instances.values() if i.class_code == class_code and i.online and i.last is not None),
            None,
        )

    @staticmethod
    def _view(inst: Instance | None) -> DeviceView | None:
        if inst is None or inst.last is None or "power_kw" not in inst.last.fields:
            return None
        return DeviceView(
            inst.device_id,
            float(inst.last.fields["power_kw"]),
            inst.last.mode,
            inst.last.charge_range_w,
            inst.last.discharge_range_w,
        )

    def _needed(self, write: Write, inst: Instance) -> bool:
        if write.epc == Epc.OPERATION_MODE:
            return inst.last is None or inst.last.mode != write.edt[0]
        before = self.control.setpoints.get((write.device_id, write.epc))
        if before is None:
            return True
        return abs(int.from_bytes(before, "big") - int.from_bytes(write.edt, "big")) >= DEADBAND_W

    async def control_once(self) -> None:
        ctl = self.control
        signal = ctl.signal
        now = datetime.now(UTC)
        interval = interval_at(signal, now)
        battery, ev = self._online(ElClass.BATTERY), self._online(ElClass.EV_CHARGER)
        meter = self._online(ElClass.SMART_METER)
        if interval is None:
            if ctl.controlling:
                await self._apply(release_writes(self._view(battery), self._view(ev)))
                ctl.controlling = False
                ctl.setpoints.clear()
            if signal is not None and ctl.acked != (signal.event_id, signal.revision):
                controllable = [i.device_id for i in (battery, ev) if i is not None]
                if signal.status == "cancelled":
                    self._ack(signal, True, "cancelled: devices back to automatic")
                elif controllable:
                    self._ack(signal, True, f"scheduled on {', '.join(controllable)}")
                else:
                    self._ack(signal, False, "no controllable ECHONET Lite device (battery, EV charger) answers")
            return
        assert signal is not None
        if meter is None or meter.last is None or "power_kw" not in meter.last.fields:
            if self.polls > _STARTUP_POLLS:  # a retained signal may arrive before discovery is done
                self._report(signal, "no smart meter reading: cannot follow an import limit")
            return
        if battery is None and ev is None:
            self._report(signal, "no controllable ECHONET Lite device (battery, EV charger) answers")
            return
        writes, short_kw = plan_writes(
            interval, float(meter.last.fields["power_kw"]), self._view(battery), self._view(ev)
        )
        by_id = {i.device_id: i for i in self.instances.values()}
        writes = [w for w in writes if self._needed(w, by_id[w.device_id])]
        ctl.controlling = True
        outcomes = await self._apply(writes)
        failures = [o for o in outcomes if o.status != "confirmed"]
        if failures:
            self._report(signal, "; ".join(f"{o.write.what}: {o.status} ({o.detail})" for o in failures))
        elif ctl.acked != (signal.event_id, signal.revision):
            done = ", ".join(o.write.what for o in outcomes) or "devices already at their setpoints"
            extra = f"; {short_kw:.2f} kW beyond the devices' ranges" if short_kw > 0 else ""
            self._ack(signal, True, f"{done} (read back){extra}")

    def _report(self, signal: DrSignal, detail: str) -> None:
        """A refusal or timeout: acknowledge it as rejected once per signal revision and reason."""
        if detail in self.control.reported:
            return
        self.control.reported.add(detail)
        log.warning("DR signal not carried out", extra=kv(event_id=signal.event_id, detail=detail))
        self._ack(signal, False, detail)

    def _ack(self, signal: DrSignal, accepted: bool, detail: str) -> None:
        assert self.publisher is not None
        self.control.acked = (signal.event_id, signal.revision)
        self.publisher.ack(DrAck(signal.event_id, signal.revision, accepted, datetime.now(UTC), detail[:480]))

    async def _apply(self, writes: list[Write]) -> list[WriteOutcome]:
        """SETC per device (setpoints before modes, as planned), then GET to confirm each value."""
        assert self.api is not None
        by_id = {i.device_id: i for i in self.instances.values()}
        outcomes: list[WriteOutcome] = []
        grouped: dict[str, list[Write]] = {}
        for write in writes:
            grouped.setdefault(write.device_id, []).append(write)
        for device_id, group in grouped.items():
            inst = by_id[device_id]
            allowed = set(CONTROL_EPCS.get(inst.class_code, ()))
            setmap = set(self._props(inst).get(Epc.SET_MAP) or ())
            sendable = []
            for write in group:
                if write.epc not in allowed or (setmap and write.epc not in setmap):
                    outcomes.append(WriteOutcome(write, "refused", f"0x{write.epc:02X} is not in the device's Set map"))
                else:
                    sendable.append(write)
            if not sendable:
                continue
            opc = [{"EPC": w.epc, "PDC": len(w.edt), "EDT": int.from_bytes(w.edt, "big")} for w in sendable]
            try:
                answered = await self.api.echonetMessage(inst.host, *inst.eoj, SETC, opc)
            except Exception as error:
                answered, reason = False, repr(error)
            else:
                reason = f"no answer within {self.config.timeout_s:g} s"
            if not answered:
                outcomes += [WriteOutcome(w, "timeout", reason) for w in sendable]
                continue
            back = await self._get(inst, tuple(w.epc for w in sendable))
            for write in sendable:
                if back is None:
                    outcomes.append(WriteOutcome(write, "timeout", "no answer to the read-back"))
                elif back.get(write.epc) == write.edt:
                    outcomes.append(WriteOutcome(write, "confirmed"))
                    self.control.setpoints[(device_id, write.epc)] = write.edt
                    if write.epc == Epc.OPERATION_MODE and inst.last is not None:
                        inst.last.mode = write.edt[0]
                else:
                    held = back.get(write.epc)
                    outcomes.append(WriteOutcome(
                        write, "refused",
                        f"wrote 0x{write.edt.hex().upper()}, device holds "
                        f"{'0x' + held.hex().upper() if held is not None else 'nothing'}",
                    ))  # fmt: skip
        for outcome in outcomes:
            log.info("ECHONET write", extra=kv(what=outcome.write.what, status=outcome.status, detail=outcome.detail))
        self.outcomes += outcomes
        return outcomes


async def _until_first(waits: tuple[Any, ...], timeout_s: float) -> None:
    """Wait until any of ``waits`` completes or ``timeout_s`` passes; cancel the rest."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
