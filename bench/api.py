"""`vpp bench api`: the fiscal-year sufficiency query at city scale, against a trivial endpoint.

One run: a private PostgreSQL gets a fiscal year of 30-minute energy for N sites (1,050 = the
leading area's ~50 private + ~1,000 public facilities: ~18M site-slots), generated server-side one
JST day per statement on two connections. The API runs in its own process (uvicorn); this process
measures

- latency of the fiscal-year query for the city region, computed afresh (``Cache-Control: no-cache``)
  and repeated (answered from the cache);
- requests/s of the repeated query and of /healthz under the same concurrent load, while a writer
  changes one slot of the region every second (each write invalidates the cached report);
- the API process's CPU time per request in each phase, which does not depend on how fast this
  client can send.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
from fastapi import FastAPI
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from services.api.main import create_app
from vpp.domain.slots import JST
from vpp.embedded.postgres import EmbeddedPostgres, free_port
from vpp.postgres.api_clients import add_client
from vpp.postgres.migrate import upgrade
from vpp.settings import load_settings

__all__ = ["run_bench_api"]

console = Console()
_URL_ENV = "VPP_BENCH_API_DATABASE_URL"
_PRIVATE_SHARE = 50 / 1050

# Synthetic but plausible slot energies: PV follows the sun between 06:00 and 18:00 JST.
_DAY_SQL = """
INSERT INTO site_energy_30min (site_pk, slot_start, import_kwh, export_kwh, pv_kwh, battery_charge_kwh,
                               battery_discharge_kwh, ev_kwh, load_kwh, coverage)
SELECT s.id, t.slot, g.import_kwh, g.export_kwh, g.pv_kwh, 0, 0, 0,
       g.import_kwh - g.export_kwh + g.pv_kwh, 1
FROM sites s
CROSS JOIN generate_series(%(start)s::timestamptz, %(start)s::timestamptz + interval '23 hours 30 minutes',
                           interval '30 minutes') AS t(slot)
CROSS JOIN LATERAL (
    SELECT greatest(sin(pi() * (extract(hour FROM t.slot AT TIME ZONE 'Asia/Tokyo') - 6) / 12), 0)
           * s.pv_kw * 0.5 * (0.6 + 0.4 * random()) AS pv_kwh) p
CROSS JOIN LATERAL (
    SELECT 5 + 20 * random() AS import_kwh, greatest(p.pv_kwh - 8, 0) AS export_kwh, p.pv_kwh) g
"""


def _bench_app() -> FastAPI:
    """uvicorn factory for the API process (`--factory`)."""
    return create_app(load_settings(), database_url=os.environ[_URL_ENV])


def _prepare(url: str, sites: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            """INSERT INTO sites (site_id, name, pv_kw, renewable_share, is_public)
               SELECT format('site-%%s', lpad(i::text, 5, '0')), format('Facility %%s', i), 10 + (i %% 40),
                      CASE WHEN i %% 3 = 0 THEN 1.0 ELSE 0.0 END, i > %(private)s
               FROM generate_series(1, %(sites)s) AS i""",
            {"sites": sites, "private": max(1, round(sites * _PRIVATE_SHARE))},
        )
        conn.execute(
            """INSERT INTO region_sites (region_pk, site_pk)
               SELECT r.id, s.id FROM regions r CROSS JOIN sites s WHERE r.region_id = 'kawasaki'"""
        )
        add_client(conn, "bench-operator", "bench-operator-secret", "operator", None)


def _load_year(url: str, fiscal_year: int) -> float:
    """Generate the fiscal year day by day on two connections; returns seconds taken."""
    first = date(fiscal_year, 4, 1)
    days = [first + timedelta(days=i) for i in range((date(fiscal_year + 1, 4, 1) - first).days)]
    started = time.perf_counter()
    local = threading.local()

    def load(day: date) -> None:
        if not hasattr(local, "conn"):
            local.conn = psycopg.connect(url, autocommit=True)
        local.conn.execute(_DAY_SQL, {"start": datetime(day.year, day.month, day.day, tzinfo=JST)})

    with Progress(console=console) as progress, ThreadPoolExecutor(2) as pool:
        task = progress.add_task(f"loading FY{fiscal_year}", total=len(days))
        for _ in pool.map(load, days):
            progress.advance(task)
    return time.perf_counter() - started


def _cpu_s(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


async def _throughput(port: int, path: str, headers: dict[str, str], concurrency: int, duration_s: float) -> int:
    """Requests completed in `duration_s` over `concurrency` keep-alive connections.

    A minimal HTTP/1.1 client on raw asyncio streams: general-purpose Python clients cost more CPU
    per request than the API itself, and would measure themselves instead of the server.
    """
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    deadline = time.perf_counter() + duration_s

    async def connection() -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        done = 0
        try:
            while time.perf_counter() < deadline:
                writer.write(request)
                status = await reader.readline()
                if b" 200 " not in status:
                    raise RuntimeError(f"{path} answered {status!r}")
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                await reader.readexactly(length)
                done += 1
        finally:
            writer.close()
        return done

    return sum(await asyncio.gather(*(connection() for _ in range(concurrency))))


def _writer(url: str, stop: threading.Event, slot: datetime) -> int:
    """Change one slot of one member site every second, as ingest would; returns writes made."""
    writes = 0
    with psycopg.connect(url, autocommit=True) as conn:
        while not stop.wait(1.0):
            conn.execute(
                "UPDATE site_energy_30min SET import_kwh = import_kwh + 0.001 WHERE site_pk = 1 AND slot_start = %s",
                (slot,),
            )
            writes += 1
    return writes


@dataclass(frozen=True)
class _Measured:
    body: dict[str, Any]
    fresh_ms: list[float]
    cached_ms: list[float]
    rates: dict[str, tuple[float, float | None]]  # name -> (requests/s, API CPU ms per request)


def _measure(
    url: str, port: int, api_pid: int, fiscal_year: int, samples: int, concurrency: int, duration_s: float
) -> _Measured:
    base = f"http://127.0.0.1:{port}"
    token = httpx.post(
        f"{base}/api/v1/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "bench-operator",
            "client_secret": "bench-operator-secret",
        },
    ).json()["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    path = f"/api/v1/regions/kawasaki/sufficiency?period=fiscal_year&value={fiscal_year}"
    fresh, cached = [], []
    with httpx.Client(base_url=base, headers=auth, timeout=30) as client:
        body = client.get(path).json()
        for _ in range(samples):
            t = time.perf_counter()
            client.get(path, headers={"Cache-Control": "no-cache"}).raise_for_status()
            fresh.append((time.perf_counter() - t) * 1000)
        for _ in range(samples):
            t = time.perf_counter()
            client.get(path).raise_for_status()
            cached.append((time.perf_counter() - t) * 1000)
    rates: dict[str, tuple[float, float | None]] = {}
    for name, target, headers in (("/healthz", "/healthz", {}), ("fiscal-year sufficiency", path, auth)):
        stop = threading.Event()
        writer = threading.Thread(target=_writer, args=(url, stop, datetime(fiscal_year, 4, 1, tzinfo=JST)))
        if target == path:
            writer.start()
        cpu0 = _cpu_s(api_pid)
        done = asyncio.run(_throughput(port, target, headers, concurrency, duration_s))
        cpu1 = _cpu_s(api_pid)
        stop.set()
        if writer.is_alive():
            writer.join()
        cpu_ms = (cpu1 - cpu0) * 1000 / done if cpu0 is not None and cpu1 is not None and done else None
        rates[name] = (done / duration_s, cpu_ms)
    return _Measured(body, fresh, cached, rates)


def run_bench_api(
    sites: int = 1050,
    fiscal_year: int = 2025,
    samples: int = 200,
    concurrency: int = 32,
    duration_s: float = 10.0,
) -> None:
    """Load a fiscal year for `sites` sites, then measure the sufficiency query; prints a rich table."""
    with tempfile.TemporaryDirectory(prefix="vpp-bench-api-") as tmp:
        server = EmbeddedPostgres(Path(tmp) / "pg").start()
        api: subprocess.Popen[bytes] | None = None
        try:
            url = server.url
            upgrade(url, "heads")
            _prepare(url, sites)
            load_s = _load_year(url, fiscal_year)
            with psycopg.connect(url, autocommit=True) as conn:
                rows = conn.execute("SELECT count(*) FROM site_energy_30min").fetchone()
                conn.execute("VACUUM ANALYZE")  # what autovacuum would do after a bulk load
            slots = int(rows[0]) if rows else 0
            console.print(
                f"loaded {slots:,} site-slots for {sites:,} sites in {load_s:.0f} s ({slots / load_s:,.0f}/s)"
            )
            port = free_port()
            # A private, throw-away server: the development signing key is fine here.
            env = {**os.environ, _URL_ENV: url, "VPP_LOG_LEVEL": "WARNING", "VPP_ENVIRONMENT": "development"}
            api = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "bench.api:_bench_app",
                    "--factory",
                    # bench/ is not installed (the wheel leaves it out): import it from this source tree.
                    "--app-dir",
                    str(Path(__file__).resolve().parents[1]),
                    "--port",
                    str(port),
                    "--log-level",
                    "warning",
                    "--no-access-log",
                ],
                env=env,
            )
            base = f"http://127.0.0.1:{port}"
            _wait_ready(base)
            measured = _measure(url, port, api.pid, fiscal_year, samples, concurrency, duration_s)
        finally:
            if api is not None:
                api.terminate()
                api.wait(10)
            server.stop()
    _report(sites, slots, measured, concurrency)


def _wait_ready(base: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the API process did not become ready")


def _report(sites: int, slots: int, measured: _Measured, concurrency: int) -> None:
    body, fresh, cached, rates = measured.body, measured.fresh_ms, measured.cached_ms, measured.rates
    table = Table(title=f"vpp bench api: {sites:,} sites, {slots:,} site-slots, concurrency {concurrency}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    p95_fresh = _percentile(fresh, 95)
    table.add_row("FY query, computed: p50 / p95 ms", f"{_percentile(fresh, 50):.1f} / {p95_fresh:.1f}", "p95 < 50")
    table.add_row(
        "FY query, cached: p50 / p95 ms", f"{_percentile(cached, 50):.1f} / {_percentile(cached, 95):.1f}", ""
    )
    trivial, trivial_cpu = rates["/healthz"]
    query, query_cpu = rates["fiscal-year sufficiency"]
    table.add_row("/healthz requests/s", f"{trivial:,.0f}", "")
    table.add_row("FY query requests/s (1 write/s invalidating)", f"{query:,.0f}", "")
    table.add_row("throughput ratio FY query / healthz", f"{query / trivial:.2f}", ">= 0.5")
    if trivial_cpu and query_cpu:
        table.add_row("API CPU ms per request: healthz / FY query", f"{trivial_cpu:.2f} / {query_cpu:.2f}", "")
        table.add_row("CPU-bound ratio (healthz CPU / FY CPU)", f"{trivial_cpu / query_cpu:.2f}", ">= 0.5")
    table.add_row("city ratio (metered, synthetic)", f"{body['ratio_pct']:.1f} %", "")
    table.add_row("completeness", f"{body['completeness']:.3f}", "")
    console.print(table)
