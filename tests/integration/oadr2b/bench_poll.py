"""Ad hoc measurement, not a test: oadrPoll round trips per second through the 2.0b VTN, one VEN polling
sequentially, over plain HTTP and over TLS with client certificates and XML signatures (P-256 and RSA-2048
keys), all measured in the same run so the ratios hold on any machine.

    .venv/bin/python -m tests.integration.oadr2b.bench_poll [polls]
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
from openleadr import OpenADRClient

from services.oadr2b.settings import Oadr2bSettings
from services.oadr2b.vtn import Oadr2bVtn
from tests.integration.oadr2b.pki import KeyPair, issue, make_ca
from tests.support.servers import fresh_database, prepare_template, start_postgres
from vpp.embedded.postgres import free_port
from vpp.postgres.oadr2b import add_ven
from vpp.postgres.registry import SiteRecord, register_site


async def _polls_per_s(settings: Oadr2bSettings, db_url: str, polls: int, ven_name: str, **client: Any) -> float:
    vtn = Oadr2bVtn(settings, db_url)
    await vtn.start()
    ven = OpenADRClient(ven_name=ven_name, vtn_url=vtn.url, show_fingerprint=False, **client)
    try:
        await ven.create_party_registration()
        assert ven.registration_id, "registration failed"
        started = time.perf_counter()
        for _ in range(polls):
            assert (await ven.poll())[0] == "oadrResponse"
        return polls / (time.perf_counter() - started)
    finally:
        if ven.client_session is not None:
            await ven.client_session.close()
        await vtn.stop()


def _tls(vtn: KeyPair, ca: KeyPair) -> Oadr2bSettings:
    return Oadr2bSettings(port=free_port(), tls_cert=vtn.cert, tls_key=vtn.key, tls_ca=ca.cert)


def _client(ven: KeyPair, vtn: KeyPair, ca: KeyPair) -> dict[str, Any]:
    return {"cert": str(ven.cert), "key": str(ven.key), "ca_file": str(ca.cert), "vtn_fingerprint": vtn.fingerprint}


def main(polls: int) -> None:
    base = Path(tempfile.mkdtemp(prefix="oadr2b-bench-"))
    server = start_postgres(base)
    try:
        prepare_template(server)
        ca = make_ca(base)
        vtn_ec, ven_ec = issue(ca, base, "vtn-ec", server=True), issue(ca, base, "ven-ec")
        vtn_rsa, ven_rsa = issue(ca, base, "vtn-rsa", server=True, rsa=True), issue(ca, base, "ven-rsa", rsa=True)
        with fresh_database(server) as url:
            with psycopg.connect(url) as conn:
                register_site(conn, SiteRecord("depot-a", "Depot A", 35.6, 139.6), ())
                add_ven(conn, "ven-ec", site_ids=["depot-a"], fingerprint=ven_ec.fingerprint)
                add_ven(conn, "ven-rsa", site_ids=["depot-a"], fingerprint=ven_rsa.fingerprint)
                conn.commit()
            plain = asyncio.run(
                _polls_per_s(Oadr2bSettings(port=free_port(), insecure_http=True), url, polls, "ven-ec")
            )
            ec = asyncio.run(_polls_per_s(_tls(vtn_ec, ca), url, polls, "ven-ec", **_client(ven_ec, vtn_ec, ca)))
            rsa = asyncio.run(_polls_per_s(_tls(vtn_rsa, ca), url, polls, "ven-rsa", **_client(ven_rsa, vtn_rsa, ca)))
        print(f"oadrPoll round trips/s, one VEN, {polls} sequential polls:")
        print(f"  plain HTTP (reference)          {plain:8.1f}")
        print(f"  TLS + signatures, P-256 keys    {ec:8.1f}  ({plain / ec:.1f}x slower than plain)")
        print(
            f"  TLS + signatures, RSA-2048 keys {rsa:8.1f}  ({plain / rsa:.1f}x slower than plain, {ec / rsa:.1f}x P-256)"
        )
    finally:
        server.destroy()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 50)
