"""The 2.0b VTN: openleadr's server with handlers backed by the platform's database.

openleadr's "external" polling mode (an ``on_poll`` handler, see openleadr/server.py `add_handler`)
is its supported way of keeping events outside its in-memory queues: on each oadrPoll this VTN reads
the VEN's events from the database and sends an oadrDistributeEvent when any is new, modified or
cancelled since it last sent them. So nothing is lost on a restart, several VTN processes could
serve the same VENs, and event modification needs no access to openleadr's internals.

openleadr keeps its message signing and VEN lookup on the `VTNService` class, so one process runs
one VTN.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
import warnings
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import psycopg
from aiohttp.web_exceptions import NotAppKeyWarning
from openleadr import OpenADRServer

from services.oadr2b.events import build_event
from services.oadr2b.settings import Oadr2bSettings
from vpp.domain.oadr2b import event_status, kwh_per_unit, signal_from_event_body, usage_slots
from vpp.domain.openadr import SLOT
from vpp.log import kv
from vpp.postgres import oadr2b as store
from vpp.postgres.connect import libpq_url

__all__ = ["Oadr2bVtn"]

log = logging.getLogger(__name__)
_PATH_PREFIX = "/OpenADR2/Simple/2.0b"


class Oadr2bVtn:
    def __init__(
        self, settings: Oadr2bSettings, database_url: str, *, clock: Callable[[], datetime] | None = None
    ) -> None:
        self.settings = settings
        self._database_url = database_url
        self._now = clock or (lambda: datetime.now(UTC))
        self._conn: psycopg.AsyncConnection | None = None
        self._lock = asyncio.Lock()
        # VENs that registered with this process. openleadr keeps the report requests it made in memory,
        # so a VEN that registered before a restart is asked to re-register (and so re-offer its reports).
        self._registered_here: set[str] = set()
        secure = not settings.insecure_http
        sign_cert = settings.signing_cert or settings.tls_cert
        sign_key = settings.signing_key or settings.tls_key
        with warnings.catch_warnings():
            # openleadr 0.5.36 stores itself under a string key of its aiohttp app, which aiohttp >= 3.9
            # warns about: harmless, and not ours to change.
            warnings.filterwarnings("ignore", category=NotAppKeyWarning, module="openleadr")
            self.server = OpenADRServer(
                vtn_id=settings.vtn_id,
                cert=str(sign_cert) if secure and sign_cert else None,
                key=str(sign_key) if secure and sign_key else None,
                http_cert=str(settings.tls_cert) if secure else None,
                http_key=str(settings.tls_key) if secure else None,
                http_ca_file=str(settings.tls_ca) if secure else None,
                http_host=settings.host,
                http_port=settings.port,
                http_path_prefix=_PATH_PREFIX,
                requested_poll_freq=timedelta(seconds=settings.poll_interval_s),
                ven_lookup=self.ven_lookup,
                show_fingerprint=False,
                verify_message_signatures=secure,
            )
        self.server.add_handler("on_create_party_registration", self.on_create_party_registration)
        self.server.add_handler("on_poll", self.on_poll)  # switches openleadr to external polling
        self.server.add_handler("on_request_event", self.on_request_event)
        self.server.add_handler("on_created_event", self.on_created_event)
        self.server.add_handler("on_register_report", self.on_register_report)

    @property
    def url(self) -> str:
        scheme = "http" if self.settings.insecure_http else "https"
        return f"{scheme}://{self.settings.host}:{self.settings.port}{_PATH_PREFIX}"

    async def start(self) -> None:
        await self.server.run()
        log.info("OpenADR 2.0b VTN listening", extra=kv(url=self.url))

    async def stop(self) -> None:
        await self.server.stop()
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[psycopg.AsyncConnection]:
        """One transaction on the VTN's connection; serialised, as one connection serves all VENs."""
        async with self._lock:
            if self._conn is None or self._conn.closed or self._conn.broken:
                self._conn = await psycopg.AsyncConnection.connect(
                    libpq_url(self._database_url), autocommit=True, application_name="vpp-oadr2b"
                )
            try:
                async with self._conn.transaction():
                    yield self._conn
            except psycopg.OperationalError:
                await self._conn.close()  # reconnect on the next message
                self._conn = None
                raise

    # ---- registration and identity -------------------------------------------------------------

    async def ven_lookup(self, ven_id: str) -> dict[str, Any] | None:
        """openleadr asks before each message: unknown or unregistered VENs are told to re-register, and
        the fingerprint returned must match the TLS client certificate (and the XML signature's)."""
        async with self._transaction() as conn:
            ven = await store.find_ven(conn, ven_id=ven_id)
        if ven is None:
            return None
        return {"ven_id": ven.ven_id, "ven_name": ven.ven_name, "fingerprint": ven.fingerprint,
                "registration_id": ven.registration_id}  # fmt: skip

    async def on_create_party_registration(self, payload: dict[str, Any]) -> tuple[str, str] | bool:
        """Register an onboarded VEN whose certificate is the one it was onboarded with."""
        ven_name = payload.get("ven_name")
        async with self._transaction() as conn:
            ven = await store.find_ven(conn, ven_name=ven_name)
            if ven is None:
                log.warning("2.0b registration refused: VEN not onboarded", extra=kv(ven_name=ven_name))
                return False
            if not self.settings.insecure_http and payload.get("fingerprint") != ven.fingerprint:
                log.warning("2.0b registration refused: certificate fingerprint does not match",
                            extra=kv(ven_name=ven_name, fingerprint=payload.get("fingerprint")))  # fmt: skip
                return False
            registration_id = f"reg-{uuid.uuid4().hex}"
            await store.record_registration(conn, ven.pk, registration_id, self._now())
        self._registered_here.add(ven.ven_id)
        log.info("2.0b VEN registered", extra=kv(ven_id=ven.ven_id, ven_name=ven.ven_name))
        return ven.ven_id, registration_id

    # ---- events ---------------------------------------------------------------------------------

    async def on_poll(self, ven_id: str) -> tuple[str, dict[str, Any]] | None:
        """oadrPoll: the VEN's events when any changed since they were last sent; None otherwise."""
        if ven_id not in self._registered_here:
            return "oadrRequestReregistration", {"ven_id": ven_id}
        now = self._now()
        async with self._transaction() as conn:
            ven = await store.find_ven(conn, ven_id=ven_id)
            if ven is None:
                return None
            await store.touch_poll(conn, ven.pk, now)
            changed, events = await self._reconcile(conn, ven, now)
        return ("oadrDistributeEvent", {"events": events}) if changed else None

    async def on_request_event(self, ven_id: str) -> list[dict[str, Any]] | None:
        """oadrRequestEvent: all of the VEN's current events, changed or not."""
        now = self._now()
        async with self._transaction() as conn:
            ven = await store.find_ven(conn, ven_id=ven_id)
            if ven is None:
                return None
            _, events = await self._reconcile(conn, ven, now)
        return events or None

    async def _reconcile(
        self, conn: psycopg.AsyncConnection, ven: store.Oadr2bVen, now: datetime
    ) -> tuple[bool, list[dict[str, Any]]]:
        """Compare the VEN's events with what it was last sent; record what it is sent now.

        A new event goes out with modification number 0, a changed one with the next number, and one
        the scheduler removed before it ended (cancelled, or the site no longer called) as cancelled.
        """
        sent = await store.deliveries(conn, ven.pk)
        changed = False
        out: list[dict[str, Any]] = []

        def event(delivery: store.Delivery) -> dict[str, Any]:
            status = event_status(delivery.signal, now, cancelled=delivery.cancelled)
            return build_event(delivery.event_id, delivery.modification_number, delivery.signal, status=status,
                               ven_id=ven.ven_id, market_context=self.settings.market_context, modified_at=now)  # fmt: skip

        for current in await store.visible_events(conn, ven, now):
            try:
                signal = signal_from_event_body(current.body)
            except ValueError as exc:
                log.warning("event not carried over 2.0b", extra=kv(event_id=current.event_id, reason=str(exc)))
                continue
            previous = sent.pop(current.event_id, None)
            delivery = store.Delivery(current.event_id, current.dr_event_pk, 0, signal, False, None)
            if previous is not None:
                same = not previous.cancelled and previous.signal == signal
                number = previous.modification_number + (0 if same else 1)
                delivery = store.Delivery(current.event_id, current.dr_event_pk, number, signal, False, None)
            if previous is None or delivery.modification_number != previous.modification_number:
                changed = True
                await store.record_delivery(conn, ven.pk, delivery, now)
            out.append(event(delivery))
        for previous in sent.values():  # sent before, gone now
            if previous.signal.end_at <= now:
                continue  # it ended; the VEN retires it itself
            if not previous.cancelled:
                changed = True
                previous = store.Delivery(previous.event_id, previous.dr_event_pk, previous.modification_number + 1,
                                          previous.signal, True, previous.opt_type)  # fmt: skip
                await store.record_delivery(conn, ven.pk, previous, now)
            out.append(event(previous))
        return changed, out

    async def on_created_event(self, ven_id: str, event_id: str, opt_type: str) -> None:
        """oadrCreatedEvent: the VEN's optIn/optOut, recorded against the modification it was last sent.

        openleadr's external mode passes no modification number; in the pull model a VEN answers the
        oadrDistributeEvent it just received, so the one last sent is the one answered.
        """
        async with self._transaction() as conn:
            ven = await store.find_ven(conn, ven_id=ven_id)
            recorded = ven is not None and await store.record_opt(conn, ven.pk, event_id, opt_type, self._now())
        log.info("2.0b opt", extra=kv(ven_id=ven_id, event_id=event_id, opt_type=opt_type, recorded=recorded))

    # ---- reports --------------------------------------------------------------------------------

    async def on_register_report(
        self,
        ven_id: str,
        resource_id: str,
        measurement: str,
        unit: str | None,
        scale: str | None,
        min_sampling_interval: timedelta | None,
        max_sampling_interval: timedelta | None,
    ) -> tuple[Callable[[list[tuple[datetime, float]]], Any], timedelta] | None:
        """Request energy (TELEMETRY_USAGE) per 30-minute slot, which verification compares with its baseline."""
        try:
            kwh_factor = kwh_per_unit(unit, scale)
        except ValueError as exc:
            log.info("2.0b report not requested", extra=kv(ven_id=ven_id, measurement=measurement, reason=str(exc)))
            return None
        low, high = min_sampling_interval or SLOT, max_sampling_interval or SLOT
        if not low <= SLOT <= high:
            log.info("2.0b report not requested: cannot sample per 30 minutes",
                     extra=kv(ven_id=ven_id, resource_id=resource_id))  # fmt: skip
            return None
        return partial(self._usage_received, ven_id, resource_id, kwh_factor), SLOT

    async def _usage_received(
        self, ven_id: str, resource_id: str, kwh_factor: float, values: list[tuple[datetime, float]]
    ) -> None:
        now = self._now()
        slots, dropped = usage_slots(values, kwh_factor, now)
        if dropped:
            log.warning("2.0b usage values dropped", extra=kv(ven_id=ven_id, reasons="; ".join(dropped[:5])))
        async with self._transaction() as conn:
            ven = await store.find_ven(conn, ven_id=ven_id)
            stored = await store.store_usage(conn, ven, resource_id, slots, now) if ven is not None else []
        log.info("2.0b usage stored", extra=kv(ven_id=ven_id, slots=len(slots), reports=len(stored)))
