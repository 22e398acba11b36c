"""A fleet of emulated ECHONET Lite homes, each behind its own gateway: `vpp simulate --echonet-homes N`.

Each home gets its own pair of network namespaces (so N homes use port 3610 N times and no packet
reaches a real interface), four emulated devices and one `EchonetGateway` publishing as the site
``jp-home-NNN``. All gateways share one asyncio loop in one thread; each has its own MQTT connection,
as real sites would. Needs root, for the namespaces.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from pychonet.lib.udpserver import UDPServer

from services.gateway.backlog import Backlog
from services.gateway.echonet import EchonetGateway, GatewayConfig
from services.gateway.publisher import GatewayPublisher
from vpp.domain.devices import DeviceKind
from vpp.domain.dr_events import DrSignal
from vpp.echonet.codes import KIND_BY_CLASS
from vpp.mqtt import BrokerAddress
from vpp.postgres.registry import DeviceSpec, SiteRecord, register_site
from vpp.simulation.echonet_home import EmulatedHome, HomeState
from vpp.simulation.netns import EchonetLan, in_namespace

__all__ = ["EchonetFleet", "register_home"]

_KAWASAKI = (35.531, 139.703)


def _site_id(home: int) -> str:
    return f"jp-home-{home:03d}"


def register_home(conn: psycopg.Connection, site_id: str, home: EmulatedHome) -> int:
    """Register a home and the device ids its gateway will publish under. Caller commits."""
    state = home.state
    ratings = {"meter": None, "pv": state.pv_w / 1000 * 1.2 + 1.0, "battery": state.battery_discharge_range_w[1] / 1000,
               "ev_charger": state.ev_charge_range_w[1] / 1000}  # fmt: skip
    devices = [
        DeviceSpec(device_id, DeviceKind(KIND_BY_CLASS[code]), ratings[KIND_BY_CLASS[code]])
        for code, device_id in home.device_ids().items()
    ]
    record = SiteRecord(
        site_id=site_id,
        name=f"ECHONET Lite home {site_id[-3:]}",
        latitude=_KAWASAKI[0],
        longitude=_KAWASAKI[1],
        pv_kw=round(state.pv_w / 1000 * 1.2 + 1.0, 1),
        battery_kwh=state.battery_capacity_wh / 1000,
        battery_kw=state.battery_discharge_range_w[1] / 1000,
        regions=("kawasaki", "leading-area"),
    )
    return register_site(conn, record, devices)


@dataclass
class EchonetFleet:
    homes: int
    broker: BrokerAddress
    data_dir: Path
    poll_s: float = 10.0
    seed: int = 1
    lans: list[EchonetLan] = field(default_factory=list)
    emulated: list[EmulatedHome] = field(default_factory=list)
    gateways: list[EchonetGateway] = field(default_factory=list)
    _backlogs: list[Backlog] = field(default_factory=list)
    _thread: threading.Thread | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _stop: asyncio.Event | None = None

    def site_ids(self) -> list[str]:
        return [_site_id(n + 1) for n in range(self.homes)]

    def build(self) -> EchonetFleet:
        """Namespaces and emulated homes (started); gateways made but not running yet."""
        rng = random.Random(self.seed)
        for n in range(self.homes):
            lan = EchonetLan().create()
            self.lans.append(lan)
            state = HomeState(
                load_w=round(rng.uniform(600, 3500)),
                pv_w=round(rng.uniform(0, 3500)),
                soc_pct=round(rng.uniform(20, 90)),
                ev_connected=rng.random() < 0.5,
            )
            self.emulated.append(EmulatedHome(lan.device_ns, lan.device_ips, state, tick_s=1.0, home=n + 1).start())
            self.gateways.append(self._gateway(_site_id(n + 1), lan))
        return self

    def _gateway(self, site_id: str, lan: EchonetLan) -> EchonetGateway:
        backlog = Backlog(self.data_dir / site_id / "backlog.sqlite3")
        self._backlogs.append(backlog)
        config = GatewayConfig(site_id, lan.gateway_ip, poll_s=self.poll_s, discover_s=300.0, timeout_s=2.0)

        def publisher(on_signal: Callable[[DrSignal], None]) -> GatewayPublisher:
            return GatewayPublisher(site_id, self.broker, backlog, on_signal)

        return EchonetGateway(
            config,
            publisher,
            udp_factory=lambda: in_namespace(lan.gateway_ns, lambda: UDPServer(local_ip=lan.gateway_ip)),
        )

    def start(self) -> None:
        loop = asyncio.new_event_loop()
        stop = asyncio.Event()
        self._loop, self._stop = loop, stop

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(asyncio.gather(*(gateway.run(stop) for gateway in self.gateways)))
            loop.close()

        self._thread = threading.Thread(target=run, name="echonet-fleet", daemon=True)
        self._thread.start()

    def readings_published(self) -> int:
        return sum(g.publisher.enqueued for g in self.gateways if g.publisher is not None)

    def devices_online(self) -> int:
        return sum(1 for g in self.gateways for i in g.instances.values() if i.online)

    def readings_pending(self) -> int:
        return sum(backlog.size() for backlog in self._backlogs)

    def signals(self) -> list[DrSignal]:
        return [g.control.signal for g in self.gateways if g.control.signal is not None]

    def close(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(30)
        for home in self.emulated:
            home.stop()
        for backlog in self._backlogs:
            backlog.close()
        for lan in self.lans:
            lan.destroy()
