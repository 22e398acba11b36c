"""A database filled through the real ingest path, API clients of every role, and app factories.

Four sites publish meter, PV and battery telemetry over MQTT for three hours of whole slots:
two private sites (so the city must not see an aggregate over them: k = 3) and two public ones.
Constant powers make every slot's energy known in advance (see `SITES`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from pydantic import SecretStr

from tests.integration.ingest_fixtures import running_ingest
from tests.support.mqtt_publisher import GatewayPublisher
from tests.support.waiting import wait_for
from vpp.domain.devices import DeviceKind
from vpp.embedded.broker import EmbeddedBroker
from vpp.postgres.api_clients import add_client
from vpp.postgres.registry import DeviceSpec, SiteRecord, register_site
from vpp.settings import Settings

HOURS = 3
STEP = timedelta(minutes=5)


@dataclass(frozen=True)
class SiteSpec:
    site_id: str
    public: bool
    renewable_share: float
    import_kw: float
    export_kw: float
    pv_kw: float
    regions: tuple[str, ...]

    @property
    def slot_import_kwh(self) -> float:
        return self.import_kw / 2

    @property
    def slot_pv_on_site_kwh(self) -> float:
        return max(self.pv_kw - self.export_kw, 0.0) / 2

    @property
    def slot_load_kwh(self) -> float:
        return (self.import_kw - self.export_kw + self.pv_kw) / 2


LEADING_PRIVATE = ("kawasaki", "leading-area", "leading-area-private")
LEADING_PUBLIC = ("kawasaki", "leading-area", "leading-area-public")
SITES = (
    SiteSpec("depot-a", False, 1.0, import_kw=30.0, export_kw=5.0, pv_kw=40.0, regions=LEADING_PRIVATE),
    SiteSpec("office-b", False, 0.0, import_kw=50.0, export_kw=0.0, pv_kw=10.0, regions=LEADING_PRIVATE),
    SiteSpec("school-c", True, 1.0, import_kw=20.0, export_kw=12.0, pv_kw=8.0, regions=LEADING_PUBLIC),
    SiteSpec("hall-d", True, 0.5, import_kw=40.0, export_kw=0.0, pv_kw=0.0, regions=LEADING_PUBLIC),
)
DEVICES = (
    DeviceSpec("meter-1", DeviceKind.METER),
    DeviceSpec("pv-1", DeviceKind.PV, rated_power_kw=100.0),
)


def anchor() -> datetime:
    """A whole hour far enough back that three hours of data are all in the past."""
    now = datetime.now(UTC)
    return now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=HOURS + 2)


def api_settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "environment": "test",
        "api_signing_key": SecretStr("test-signing-key-0123456789abcdef0123456789"),
        "mqtt_ingest_password": SecretStr("test-ingest"),
        "mqtt_scheduler_password": SecretStr("test-scheduler"),
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def register_sites(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        for spec in SITES:
            register_site(
                conn,
                SiteRecord(
                    spec.site_id,
                    spec.site_id.title(),
                    35.6,
                    139.6,
                    pv_kw=spec.pv_kw,
                    renewable_share=spec.renewable_share,
                    is_public=spec.public,
                    regions=spec.regions,
                ),
                DEVICES,
            )
        conn.commit()


def _messages(spec: SiteSpec, t0: datetime) -> list[tuple[str, dict[str, object]]]:
    steps = int(timedelta(hours=HOURS) / STEP) + 1
    meter, pv = [], []
    for i in range(steps):
        ts = t0 + i * STEP
        hours = i * STEP / timedelta(hours=1)
        meter.append(
            {
                "ts": ts.isoformat(),
                "power_kw": spec.import_kw - spec.export_kw,
                "import_kwh": 1000 + spec.import_kw * hours,
                "export_kwh": 500 + spec.export_kw * hours,
            }
        )
        pv.append({"ts": ts.isoformat(), "power_kw": spec.pv_kw, "energy_kwh": 200 + spec.pv_kw * hours})
    base = f"vpp/v1/{spec.site_id}"
    return [(f"{base}/meter-1/telemetry", {"readings": meter}), (f"{base}/pv-1/telemetry", {"readings": pv})]


def fill_through_ingest(db_url: str, work_dir: Path, t0: datetime) -> None:
    """Publish every site's telemetry over MQTT and wait until the 30-minute rollup has all slots."""
    register_sites(db_url)
    broker = EmbeddedBroker(work_dir / "broker")
    broker.start()
    try:
        with running_ingest(db_url, broker.port, client_id="ingest-api-tests"):
            gateway = GatewayPublisher("127.0.0.1", broker.port, client_id="api-test-gateway")
            try:
                for spec in SITES:
                    gateway.publish_many(_messages(spec, t0))
                gateway.wait_acked()
            finally:
                gateway.close()
            expected = len(SITES) * HOURS * 2

            def full_slots() -> int:
                with psycopg.connect(db_url) as conn:
                    row = conn.execute(
                        """SELECT count(*) FROM site_energy_30min
                           WHERE slot_start >= %s AND slot_start < %s AND coverage >= 0.999""",
                        (t0, t0 + timedelta(hours=HOURS)),
                    ).fetchone()
                    return int(row[0]) if row else 0

            wait_for(full_slots, lambda n: n == expected, timeout_s=30)
    finally:
        broker.stop()


@dataclass(frozen=True)
class Credentials:
    client_id: str
    secret: str


CLIENTS = {
    "operator": Credentials("ops-1", "operator-secret-1"),
    "city": Credentials("city-1", "city-secret-1"),
    "site": Credentials("depot-a-ems", "site-secret-1"),
}


def add_clients(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        add_client(conn, CLIENTS["operator"].client_id, CLIENTS["operator"].secret, "operator", None)
        add_client(conn, CLIENTS["city"].client_id, CLIENTS["city"].secret, "city", None)
        add_client(conn, CLIENTS["site"].client_id, CLIENTS["site"].secret, "site", "depot-a")
        conn.commit()
