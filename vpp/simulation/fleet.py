"""Simulated sites connected as real gateways are: one connection and one broker account per site.

Each site's gateway publishes under its own `vpp/v1/{site_id}/` with its own credentials, and its EMS
reads the site's DR signal over that same connection: a broker that binds the client id to the
username (`use_username_as_clientid`, vpp/broker_roles.py) lets one account hold one connection, so a
second connection for the EMS would keep replacing the gateway's. This is what `vpp up` runs, so the
simulated sites live under the same broker rules as a production fleet.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from vpp.mqtt import BrokerAddress, dr_signal_topic
from vpp.simulation.ems_link import SiteEmsLink
from vpp.simulation.model import SiteSimulator
from vpp.simulation.publisher import MessageHandler, SimulationPublisher

__all__ = ["SiteFleet"]


class SiteFleet:
    def __init__(
        self,
        simulators: Sequence[SiteSimulator],
        broker: BrokerAddress | Sequence[BrokerAddress],
        passwords: Mapping[str, str] | None = None,
        *,
        without_ems: frozenset[str] = frozenset(),
    ) -> None:
        """`passwords`: each site's broker secret (none for a broker without roles); the username is
        the site id, as for every site. Several brokers: each gateway fails over between them
        (`vpp.mqtt.BrokerFailover`), its EMS with it. Sites in `without_ems` get a gateway but no MQTT EMS (they take
        part in DR another way, e.g. as OpenADR 2.0b VENs)."""
        self.links: list[SiteEmsLink] = []
        self.publishers: list[SimulationPublisher] = []
        self._quiet: list[SimulationPublisher] = []  # connected, no longer publishing live readings
        try:
            for sim in simulators:
                site_id = sim.spec.site_id
                handlers: dict[str, MessageHandler] = {}
                if site_id not in without_ems:
                    link = SiteEmsLink(sim)  # no connection of its own: it rides on the gateway's
                    self.links.append(link)
                    handlers[dr_signal_topic(site_id)] = link.on_message
                publisher = SimulationPublisher(
                    [sim],
                    broker,
                    client_id=site_id,
                    username=site_id,
                    password=(passwords or {}).get(site_id),
                    handlers=handlers,
                )
                self.publishers.append(publisher)
        except BaseException:
            self.close()
            raise

    def stop_live_telemetry(self, site_id: str) -> SiteSimulator:
        """Stop publishing `site_id`'s live readings (its connection and `online` status stay); returns its
        simulator, for whatever takes the site over."""
        publisher = next(p for p in self.publishers if p.simulators[0].spec.site_id == site_id)
        self.publishers.remove(publisher)
        self._quiet.append(publisher)
        return publisher.simulators[0]

    def not_subscribed(self, timeout_s: float) -> list[str]:
        """The sites whose connection has not subscribed (to its DR signal and confirmations) in time."""
        deadline = time.monotonic() + timeout_s
        return [
            p.simulators[0].spec.site_id
            for p in self._all
            if not p.subscribed.wait(max(deadline - time.monotonic(), 0.0))
        ]

    @property
    def published(self) -> int:
        return sum(p.published for p in self._all)

    @property
    def acked(self) -> int:
        return sum(p.acked for p in self._all)

    @property
    def confirmed(self) -> int:
        """Readings the platform confirmed it stored (`vpp/v1/{site}/stored`)."""
        return sum(p.backlog.confirmed for p in self._all)

    @property
    def awaiting_confirmation(self) -> int:
        return sum(len(p.backlog) for p in self._all)

    def step(self, now: datetime) -> int:
        """Advance every site to `now` and publish its readings; returns messages published."""
        for quiet in self._quiet:
            quiet.resend_unconfirmed()  # its backlog still waits for the platform's confirmation
        return sum(p.step(now) for p in self.publishers)

    def backfill(
        self,
        start: datetime,
        end: datetime,
        step_s: int,
        per_message: int = 60,
        progress: Callable[[float], None] | None = None,
    ) -> int:
        """Every site's history from `start` to `end`, one site after the other; `progress` gets the
        simulated seconds covered, as for one site."""
        share = 1 / max(len(self.publishers), 1)

        def one_site(seconds: int) -> None:
            if progress is not None:
                progress(seconds * share)

        return sum(p.backfill(start, end, step_s, per_message, progress=one_site) for p in self.publishers)

    def wait_acked(self, timeout_s: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout_s
        return all(p.wait_acked(max(deadline - time.monotonic(), 0.0)) for p in self._all)

    @property
    def _all(self) -> list[SimulationPublisher]:
        return [*self.publishers, *self._quiet]

    def close(self, timeout_s: float = 10.0) -> None:
        # One deadline for the whole fleet: with the broker gone, each site's wait for its `offline`
        # PUBACK would otherwise add its own 10 s.
        deadline = time.monotonic() + timeout_s
        for publisher in self._all:
            publisher.close(max(deadline - time.monotonic(), 0.0))
        for link in self.links:
            link.close()
