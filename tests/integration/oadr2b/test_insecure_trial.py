"""`serve` in its plain-HTTP trial mode: a VEN without certificates registers by name and polls."""

from __future__ import annotations

import asyncio
import contextlib

import psycopg
import pytest
from openleadr import OpenADRClient

from services.oadr2b.__main__ import serve
from services.oadr2b.settings import Oadr2bSettings
from vpp.embedded.postgres import free_port
from vpp.postgres.oadr2b import add_ven
from vpp.postgres.registry import SiteRecord, register_site

pytestmark = pytest.mark.integration


def test_plain_http_trial_serves_until_cancelled(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        register_site(conn, SiteRecord("depot-a", "Depot A", 35.6, 139.6), ())
        add_ven(conn, "trial-ven", site_ids=["depot-a"], fingerprint="AA:BB:CC:DD:EE:FF:00:11:22:33")
        conn.commit()
    settings = Oadr2bSettings(port=free_port(), insecure_http=True, poll_interval_s=3600)

    async def scenario() -> None:
        server = asyncio.create_task(serve(settings, db_url))
        url = f"http://127.0.0.1:{settings.port}/OpenADR2/Simple/2.0b"
        ven = OpenADRClient(ven_name="trial-ven", vtn_url=url)
        stranger = OpenADRClient(ven_name="not-onboarded", vtn_url=url)
        try:
            for _ in range(100):  # until the server listens
                if (await ven.query_registration())[0] is not None:
                    break
                await asyncio.sleep(0.05)
            await ven.create_party_registration()
            assert ven.registration_id is not None
            assert (await ven.poll())[0] == "oadrResponse"
            await stranger.create_party_registration()
            assert stranger.registration_id is None
        finally:
            for client in (ven, stranger):
                if client.client_session is not None:
                    await client.client_session.close()
            server.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await server
        assert server.cancelled()

    asyncio.run(scenario())
