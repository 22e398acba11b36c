"""openleadr's own VEN client against the 2.0b VTN over TLS with client certificates and signed XML.

The DR event is dispatched, re-dispatched and cancelled by the scheduler (`Scheduler.dispatch` and
`.cancel`, which publish the OpenADR events); the VENs talk only the 2.0b protocol.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest
from openleadr import OpenADRClient

from services.dr_scheduler.scheduler import Scheduler
from services.oadr2b.settings import Oadr2bSettings
from services.oadr2b.vtn import Oadr2bVtn
from tests.integration.oadr2b.pki import KeyPair, issue, make_ca
from vpp.domain.slots import JST
from vpp.embedded.postgres import free_port
from vpp.postgres.dr_events import create_event, set_event_sites
from vpp.postgres.oadr2b import add_ven, current_opt_states, event_opt_states, revoke_ven
from vpp.postgres.openadr_dr import reported_usage_day, reported_usage_kwh
from vpp.postgres.registry import SiteRecord, register_site

pytestmark = pytest.mark.integration
T = TypeVar("T")


class _Sink:
    def publish(self, site_id: str, payload: bytes, status: str) -> None:
        pass  # the MQTT side is tested elsewhere; here only the OpenADR events matter


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, KeyPair]:
    base = tmp_path_factory.mktemp("pki")
    ca = make_ca(base)
    return {"ca": ca, "vtn": issue(ca, base, "vtn", server=True),
            "ven_a": issue(ca, base, "ven-a"), "ven_b": issue(ca, base, "ven-b", rsa=True)}  # fmt: skip


@pytest.fixture
def site_pks(db_url: str, pki: dict[str, KeyPair]) -> dict[str, int]:
    with psycopg.connect(db_url) as conn:
        for site_id in ("depot-a", "office-b"):
            register_site(conn, SiteRecord(site_id, site_id.title(), 35.6, 139.6), ())
        add_ven(conn, "ven-depot-a", site_ids=["depot-a"], fingerprint=pki["ven_a"].fingerprint, ven_id="VEN-A")
        add_ven(conn, "ven-office-b", site_ids=["office-b"], fingerprint=pki["ven_b"].fingerprint, ven_id="VEN-B")
        conn.commit()
        return {row[0]: row[1] for row in conn.execute("SELECT site_id, id FROM sites")}


def _vtn_settings(pki: dict[str, KeyPair]) -> Oadr2bSettings:
    # A long poll interval: the test polls explicitly, so "within one poll" is exactly one oadrPoll.
    return Oadr2bSettings(port=free_port(), tls_cert=pki["vtn"].cert, tls_key=pki["vtn"].key, tls_ca=pki["ca"].cert,
                          poll_interval_s=3600)  # fmt: skip


def _ven(vtn: Oadr2bVtn, pki: dict[str, KeyPair], name: str, pair: str) -> OpenADRClient:
    return OpenADRClient(ven_name=name, vtn_url=vtn.url, cert=str(pki[pair].cert), key=str(pki[pair].key),
                         ca_file=str(pki["ca"].cert), vtn_fingerprint=pki["vtn"].fingerprint,
                         show_fingerprint=False)  # fmt: skip


async def _eventually(probe: Callable[[], T], ok: Callable[[T], bool], timeout_s: float = 10.0) -> T:
    deadline = asyncio.get_running_loop().time() + timeout_s
    value = probe()
    while not ok(value):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not reached in {timeout_s} s; last value {value!r}")
        await asyncio.sleep(0.05)
        value = probe()
    return value


def _signal(event: dict[str, Any]) -> tuple[str, str, list[float], list[timedelta]]:
    signal = event["event_signals"][0]
    intervals = signal["intervals"]
    return (
        signal["signal_name"],
        signal["signal_type"],
        [i["signal_payload"] for i in intervals],
        [i["duration"] for i in intervals],
    )


def test_ven_registers_gets_event_opts_reports_and_sees_revision_and_cancellation(
    db_url: str, site_pks: dict[str, int], pki: dict[str, KeyPair], tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    start = now.replace(minute=now.minute - now.minute % 30, second=0, microsecond=0)  # the current JST slot
    usage: list[tuple[datetime, float]] = [(start, 18.5)]

    def read_usage(
        date_from: datetime, date_to: datetime, sampling_interval: timedelta
    ) -> list[tuple[datetime, float]]:
        return usage

    async def scenario() -> None:
        vtn = Oadr2bVtn(_vtn_settings(pki), db_url)
        await vtn.start()
        ven_a = _ven(vtn, pki, "ven-depot-a", "ven_a")
        ven_a.add_report(read_usage, "meter-1", measurement="energy_real", data_collection_mode="full", unit="Wh",
                         scale="k", sampling_rate=timedelta(minutes=30), report_duration=timedelta(minutes=30))  # fmt: skip
        ven_b = _ven(vtn, pki, "ven-office-b", "ven_b")
        impostor = _ven(vtn, pki, "ven-depot-a", "ven_b")  # A's name, B's certificate
        try:
            await ven_a.run()
            await ven_b.run()
            assert (ven_a.ven_id, ven_b.ven_id) == ("VEN-A", "VEN-B")
            assert ven_a.registration_id
            assert ven_b.registration_id
            await impostor.create_party_registration()
            assert impostor.registration_id is None  # the fingerprint is not the onboarded one
            assert len(ven_a.report_requests) == 1  # the VTN asked for energy per 30 minutes
            assert ven_a.report_requests[0]["granularity"] == timedelta(minutes=30)

            # The scheduler dispatches a peak-cut calling the depot: 40 kW import limit, two slots.
            with psycopg.connect(db_url) as conn:
                event = create_event(
                    conn, event_id="pc-2b", kind="peak_cut", start_at=start, end_at=start + timedelta(hours=1),
                    requested_kw=20.0, incentive_jpy_per_kwh=20.0, region_id=None, source="operator", actor="test",
                    now=now,
                )  # fmt: skip
                set_event_sites(conn, event.pk, [(site_pks["depot-a"], 20.0, 40.0, None)], allocated_kw=20.0,
                                shortfall_kw=0.0)  # fmt: skip
                conn.commit()
                Scheduler(conn, _Sink()).dispatch("pc-2b", now=now, actor="scheduler")

            kind, payload = await ven_a.poll()
            assert kind == "oadrDistributeEvent"
            [sent] = payload["events"]
            descriptor = sent["event_descriptor"]
            assert (descriptor["modification_number"], descriptor["event_status"]) == (0, "active")
            assert _signal(sent) == ("LOAD_DISPATCH", "setpoint", [40.0, 40.0], [timedelta(minutes=30)] * 2)
            assert sent["event_signals"][0]["intervals"][0]["dtstart"] == start
            assert sent["event_signals"][0]["measurement"]["scale"] == "k"  # kW
            assert (await ven_a.poll())[0] == "oadrResponse"  # nothing new: not sent again
            await ven_a.created_event(payload["request_id"], descriptor["event_id"], "optIn", 0)
            with psycopg.connect(db_url) as conn:
                assert event_opt_states(conn, event.pk) == [("ven-depot-a", descriptor["event_id"], 0, "optIn")]
                assert current_opt_states(conn, now) == {"ven-depot-a": [(descriptor["event_id"], 0, "optIn")]}

            # The office's VEN is not called: it sees nothing, by poll or by asking for all its events.
            assert (await ven_b.poll())[0] == "oadrResponse"
            assert (await ven_b.request_event())[0] == "oadrResponse"
            # B's certificate cannot speak as A: openleadr checks the fingerprint of the venID's VEN.
            impostor.ven_id = "VEN-A"
            kind, refused = await impostor.poll()
            assert kind == "oadrResponse"
            assert refused["response"]["response_code"] == 463  # not registered or authorised
            # openleadr 0.5.36 answers a refused oadrRequestEvent with HTTP 500 instead of an error
            # oadrDistributeEvent (a KeyError in its preflight); the VEN still gets no events.
            assert (await impostor.request_event())[0] is None

            # Usage for the slot under way reaches verification like a 3.1 USAGE report.
            await ven_a.update_report(ven_a.report_requests[0]["report_request_id"])
            with psycopg.connect(db_url) as conn:
                reported = await _eventually(lambda: reported_usage_kwh(conn, event.pk, site_pks["depot-a"]), bool)
                # What verification reads for the event day (JST slots), filling slots the meter missed.
                day = reported_usage_day(conn, event.pk, site_pks["depot-a"], start.astimezone(JST).date())
            assert reported == {start: 18.5}
            assert [v for v in day if v is not None] == [18.5]

            # Re-plan: a tighter limit is a new revision, sent as modification 1.
            with psycopg.connect(db_url) as conn:
                set_event_sites(conn, event.pk, [(site_pks["depot-a"], 25.0, 35.0, None)], allocated_kw=25.0,
                                shortfall_kw=0.0)  # fmt: skip
                conn.commit()
                Scheduler(conn, _Sink()).dispatch("pc-2b", now=now, actor="scheduler")
            kind, payload = await ven_a.poll()
            assert kind == "oadrDistributeEvent"
            [sent] = payload["events"]
            assert sent["event_descriptor"]["modification_number"] == 1
            assert _signal(sent)[2] == [35.0, 35.0]
            await ven_a.created_event(payload["request_id"], descriptor["event_id"], "optOut", 1)
            with psycopg.connect(db_url) as conn:
                assert event_opt_states(conn, event.pk) == [("ven-depot-a", descriptor["event_id"], 1, "optOut")]

            with psycopg.connect(db_url) as conn:
                Scheduler(conn, _Sink()).cancel("pc-2b", now=now, actor="operator", reason="test")
            kind, payload = await ven_a.poll()
            assert kind == "oadrDistributeEvent"
            [sent] = payload["events"]
            assert (sent["event_descriptor"]["event_status"], sent["event_descriptor"]["modification_number"]) == (
                "cancelled", 2)  # fmt: skip
            assert (await ven_b.poll())[0] == "oadrResponse"
            with psycopg.connect(db_url) as conn:
                assert current_opt_states(conn, now) == {}  # a cancelled event is no longer current
                polled = conn.execute("SELECT ven_name FROM oadr2b_vens WHERE last_poll_at IS NOT NULL").fetchall()
            assert sorted(r[0] for r in polled) == ["ven-depot-a", "ven-office-b"]

            # A revoked VEN is no longer served: its polls ask it to re-register, which it cannot.
            with psycopg.connect(db_url) as conn:
                assert revoke_ven(conn, "ven-office-b")
                conn.commit()
            assert (await ven_b.poll())[0] == "oadrRequestReregistration"
            await ven_b.create_party_registration()  # refused (463): its venID no longer resolves
            with psycopg.connect(db_url) as conn:
                row = conn.execute("SELECT registration_id FROM oadr2b_vens WHERE ven_name = 'ven-office-b'").fetchone()
            assert row == (None,)
        finally:
            for client in (ven_a, ven_b, impostor):
                if client.client_session is not None:
                    await client.stop()
            await vtn.stop()

    asyncio.run(scenario())


def test_after_a_vtn_restart_the_ven_is_asked_to_reregister_and_offers_its_reports_again(
    db_url: str, site_pks: dict[str, int], pki: dict[str, KeyPair]
) -> None:
    def read_usage(
        date_from: datetime, date_to: datetime, sampling_interval: timedelta
    ) -> list[tuple[datetime, float]]:
        return []

    async def scenario() -> None:
        settings = _vtn_settings(pki)
        vtn = Oadr2bVtn(settings, db_url)
        await vtn.start()
        ven = _ven(vtn, pki, "ven-depot-a", "ven_a")
        ven.add_report(read_usage, "meter-1", measurement="energy_real", data_collection_mode="full", unit="Wh",
                       scale="k", sampling_rate=timedelta(minutes=30), report_duration=timedelta(minutes=30))  # fmt: skip
        try:
            await ven.run()
            first_request = ven.report_requests[0]["report_request_id"]
            await vtn.stop()
            vtn = Oadr2bVtn(settings, db_url)  # a new process: openleadr's report requests are gone
            await vtn.start()
            assert (await ven.poll())[0] == "oadrRequestReregistration"
            await ven.create_party_reregistration()
            assert ven.ven_id == "VEN-A"
            assert ven.report_requests[-1]["report_request_id"] != first_request  # reports requested anew
            assert (await ven.poll())[0] == "oadrResponse"
        finally:
            await ven.stop()
            await vtn.stop()

    asyncio.run(scenario())
