"""A simulated site's EMS as an OpenADR 2.0b VEN: `vpp up --depot-protocol oadr2b` and the tests.

The same EMS as :class:`vpp.simulation.ems_link.SiteEmsLink`, reached the way installed Japanese
equipment is: openleadr's VEN client registers with the 2.0b VTN over TLS with its client certificate,
polls, opts in to the events it can obey and reports its metered usage per 30-minute slot with
``oadrUpdateReport``. A received event becomes the same :class:`~vpp.domain.dr_events.DrSignal` an MQTT
signal is (all events in effect, merged), applied by :meth:`SiteOadr2bVen.apply_pending` between steps.

openleadr is asyncio; it runs on an event loop in a thread of its own, while the simulator is stepped
by the caller's thread. Events and usage cross between them through a queue and a locked dict.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from openleadr import OpenADRClient

from vpp.domain.dr_events import DrSignal, SignalInterval
from vpp.domain.oadr2b import event_intervals
from vpp.domain.site_signal import merge_intervals
from vpp.domain.slots import SLOT
from vpp.log import kv
from vpp.simulation.model import SiteSimulator

__all__ = ["SiteOadr2bVen"]

log = logging.getLogger("vpp.simulation.oadr2b_ven")

# Each report repeats the last four hours of slots: a report lost on the way, or a slot that closed
# just after the report was taken, is sent again (the VTN keeps the latest value of a slot).
REPORTED_SLOTS = 8


class SiteOadr2bVen:
    def __init__(
        self,
        sim: SiteSimulator,
        *,
        ven_name: str,
        vtn_url: str,
        cert: Path,
        key: Path,
        ca_file: Path,
        vtn_fingerprint: str,
    ) -> None:
        self.sim = sim
        self.site_id = sim.spec.site_id
        self.ven_name = ven_name
        self.pending: queue.Queue[tuple[SignalInterval, ...]] = queue.Queue()
        # (event_id, modification_number, event_status, opt) in the order the VEN answered them.
        self.answered: list[tuple[str, int, str, str]] = []
        self._events: dict[str, tuple[SignalInterval, ...]] = {}  # event_id -> intervals; loop thread only
        self._usage: dict[datetime, float] = {}
        self._usage_lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"oadr2b-ven-{self.site_id}", daemon=True)
        self._thread.start()
        self.client = self._call(self._make_client(vtn_url, cert, key, ca_file, vtn_fingerprint), 10)

    async def _make_client(
        self, vtn_url: str, cert: Path, key: Path, ca_file: Path, vtn_fingerprint: str
    ) -> OpenADRClient:
        # Built on its loop: openleadr makes an asyncio.Queue and a scheduler bound to the running loop.
        client = OpenADRClient(
            ven_name=self.ven_name, vtn_url=vtn_url, cert=str(cert), key=str(key), ca_file=str(ca_file),
            vtn_fingerprint=vtn_fingerprint, show_fingerprint=False,
        )  # fmt: skip
        client.on_event = self._on_event
        client.on_update_event = self._on_event
        # energyReal in Wh with scale k: one value per slot is that slot's kWh, as verification wants.
        client.add_report(
            self._read_usage, "meter-1", measurement="energy_real", data_collection_mode="full", unit="Wh",
            scale="k", sampling_rate=SLOT, report_duration=SLOT,
        )  # fmt: skip
        return client

    def _call(self, coroutine: Any, timeout_s: float) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout_s)

    # ---- lifecycle ------------------------------------------------------------------------------

    def start(self, timeout_s: float = 60.0) -> None:
        """Register (query, create party registration, register reports), sync events, start polling."""
        self._call(self.client.run(), timeout_s)
        if not self.client.registration_id:
            raise RuntimeError(f"{self.ven_name} could not register with the 2.0b VTN (see the VTN's log)")
        log.info("2.0b VEN registered", extra=kv(site=self.site_id, ven_id=self.client.ven_id))

    @property
    def registered(self) -> bool:
        return bool(self.client.registration_id)

    def close(self) -> None:
        if self._loop.is_running():
            if self.client.client_session is not None:
                try:
                    self._call(self.client.stop(), 10)
                except Exception as error:  # closing: say why, but finish
                    log.warning("2.0b VEN did not stop cleanly", extra=kv(site=self.site_id, error=str(error)))
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        if not self._loop.is_running():
            self._loop.close()

    # ---- events ---------------------------------------------------------------------------------

    def _on_event(self, event: dict[str, Any]) -> str:
        """openleadr's on_event and on_update_event: obey what can be read (optIn), refuse the rest (optOut)."""
        descriptor = event.get("event_descriptor") or {}
        event_id = str(descriptor.get("event_id"))
        status = str(descriptor.get("event_status"))
        try:
            intervals = event_intervals(event)
        except ValueError as error:
            # A real EMS does not act on a guess: it opts out, and the VTN records why it was not obeyed.
            log.warning("2.0b event not obeyed", extra=kv(site=self.site_id, event_id=event_id, error=str(error)))
            opt = "optOut"
        else:
            opt = "optIn"
            if intervals:
                self._events[event_id] = intervals
            else:
                self._events.pop(event_id, None)
            now = datetime.now(UTC)
            for ended in [e for e, parts in self._events.items() if max(p.end for p in parts) <= now]:
                del self._events[ended]
            self.pending.put(merge_intervals(list(self._events.values())))
        self.answered.append((event_id, int(descriptor.get("modification_number") or 0), status, opt))
        return opt

    def apply_pending(self) -> int:
        """Apply what the VEN received to the simulator's EMS, as an MQTT signal is applied.

        Each item is every event in effect, merged (as an MQTT signal), so the newest replaces the rest."""
        applied = 0
        while True:
            try:
                intervals = self.pending.get_nowait()
            except queue.Empty:
                return applied
            status = "active" if intervals else "cancelled"
            signal = DrSignal("oadr2b", 0, "peak_cut", status, datetime.now(UTC), intervals)
            self.sim.apply_signal(signal)
            applied += 1

    # ---- usage ----------------------------------------------------------------------------------

    def step(self, now: datetime) -> None:
        """Advance the site to `now` and keep its completed slots' import for the next usage report."""
        self.sim.step(now)
        recent = self.sim.slot_imports_kwh(now - REPORTED_SLOTS * SLOT - SLOT)
        with self._usage_lock:
            self._usage = recent

    def _read_usage(
        self, date_from: datetime, date_to: datetime, sampling_interval: timedelta
    ) -> list[tuple[datetime, float]]:
        # openleadr asks for the report period on the wall clock; the site's meter knows the slots it has
        # completed on the simulator's clock (the same in `vpp up`, ahead of it in the tests).
        with self._usage_lock:
            slots = sorted(self._usage.items())
        return slots[-REPORTED_SLOTS:]

    def report_now(self, timeout_s: float = 30.0) -> int:
        """Queue a usage report for every report the VTN requested now (openleadr otherwise sends them on
        its 30-minute schedule); returns how many. The VEN's report queue sends them right after."""
        requests = [r["report_request_id"] for r in self.client.report_requests if r.get("r_ids")]
        for request_id in requests:
            self._call(self.client.update_report(request_id), timeout_s)
        return len(requests)
