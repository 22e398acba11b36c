"""A 2.0b VEN's opt is its site's DR acknowledgement: optOut rejects, optIn accepts, and only on the latest revision."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from openleadr import OpenADRClient

from services.dr_scheduler.scheduler import Scheduler
from services.oadr2b.settings import Oadr2bSettings
from services.oadr2b.vtn import Oadr2bVtn
from tests.integration.oadr2b.pki import KeyPair, issue, make_ca
from vpp.embedded.postgres import free_port
from vpp.postgres import dr_events as store
from vpp.postgres.dr_events import create_event, set_event_sites
from vpp.postgres.oadr2b import add_ven, unacknowledged_opts
from vpp.postgres.registry import SiteRecord, register_site

pytestmark = pytest.mark.integration


class _Sink:
    def publish(self, site_id: str, payload: bytes, status: str) -> None:
        pass


def test_opts_acknowledge_the_latest_revision_only(db_url: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    base = tmp_path_factory.mktemp("pki-ack")
    ca = make_ca(base)
    vtn_pair, ven_pair = issue(ca, base, "vtn", server=True), issue(ca, base, "ven")
    with psycopg.connect(db_url) as conn:
        register_site(conn, SiteRecord("depot-a", "Depot A", 35.6, 139.6), ())
        add_ven(conn, "ven-depot-a", site_ids=["depot-a"], fingerprint=ven_pair.fingerprint, ven_id="VEN-A")
        conn.commit()
        site_pk = conn.execute("SELECT id FROM sites").fetchone()[0]  # type: ignore[index]
    now = datetime.now(UTC).replace(microsecond=0)
    start = now.replace(minute=0, second=0) + timedelta(hours=3)

    def acked(conn: psycopg.Connection) -> list[tuple[int, bool]]:
        return [(r[0], r[1]) for r in conn.execute("SELECT revision, accepted FROM dr_acks ORDER BY id")]

    async def scenario(pairs: dict[str, KeyPair]) -> None:
        settings = Oadr2bSettings(port=free_port(), tls_cert=pairs["vtn"].cert, tls_key=pairs["vtn"].key,
                                  tls_ca=pairs["ca"].cert, poll_interval_s=3600)  # fmt: skip
        vtn = Oadr2bVtn(settings, db_url)
        await vtn.start()
        ven = OpenADRClient(ven_name="ven-depot-a", vtn_url=vtn.url, cert=str(pairs["ven"].cert),
                            key=str(pairs["ven"].key), ca_file=str(pairs["ca"].cert),
                            vtn_fingerprint=pairs["vtn"].fingerprint, show_fingerprint=False)  # fmt: skip
        try:
            await ven.run()
            with psycopg.connect(db_url) as conn:
                event = create_event(
                    conn, event_id="pc-ack", kind="peak_cut", start_at=start, end_at=start + timedelta(hours=1),
                    requested_kw=10.0, incentive_jpy_per_kwh=20.0, region_id=None, source="operator", actor="test",
                    now=now,
                )  # fmt: skip
                set_event_sites(conn, event.pk, [(site_pk, 10.0, 40.0, None)], allocated_kw=10.0, shortfall_kw=0.0)
                conn.commit()
                scheduler = Scheduler(conn, _Sink())
                scheduler.dispatch("pc-ack", now=now, actor="scheduler")  # revision 1

                kind, payload = await ven.poll()
                assert kind == "oadrDistributeEvent"
                event_id = payload["events"][0]["event_descriptor"]["event_id"]
                await ven.created_event(payload["request_id"], event_id, "optOut", 0)
                scheduler.tick(now)
                assert acked(conn) == [(1, False)]  # the site refused revision 1
                assert store.get_event(conn, "pc-ack").status == "dispatched"  # type: ignore[union-attr]
                scheduler.tick(now)
                assert acked(conn) == [(1, False)]  # taken once

                scheduler.dispatch("pc-ack", now=now, actor="scheduler")  # re-planned: revision 2
                assert unacknowledged_opts(conn) == []  # the optOut answered revision 1
                kind, payload = await ven.poll()
                assert payload["events"][0]["event_descriptor"]["modification_number"] == 1
                await ven.created_event(payload["request_id"], event_id, "optIn", 1)
                scheduler.tick(now)
                assert acked(conn) == [(1, False), (2, True)]
                assert store.get_event(conn, "pc-ack").status == "acknowledged"  # type: ignore[union-attr]
        finally:
            await ven.stop()
            await vtn.stop()

    asyncio.run(scenario({"ca": ca, "vtn": vtn_pair, "ven": ven_pair}))
