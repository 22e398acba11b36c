"""deploy/ha/compose.brokers.yaml: the second broker as an override of deploy/compose.yaml.

Compose resolves an override's relative paths against the first file's folder and merges a service's
`environment` and `depends_on` by key (tests/support/compose_merge.py); this checks the result.
tests/integration/ha/test_deploy_brokers.py runs it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.support.compose_merge import merge_compose
from vpp.mqtt import parse_broker_urls
from vpp.settings import load_settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _merged() -> dict[str, Any]:
    base = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return merge_compose(base, yaml.safe_load((DEPLOY / "ha" / "compose.brokers.yaml").read_text()))


def test_every_mqtt_service_gets_both_brokers_and_the_second_mirrors_the_first(tmp_path: Path) -> None:
    compose = _merged()
    services = compose["services"]
    # The API speaks no MQTT; the ingest workers and the scheduler do.
    clients = ("python -m services.ingest", "python -m services.dr_scheduler")
    mqtt_services = [n for n, s in services.items() if " ".join(map(str, s.get("command") or [])) in clients]
    assert set(mqtt_services) == {"ingest-1", "ingest-2", "dr-scheduler"}
    for name in mqtt_services:
        env = services[name]["environment"]
        settings = load_settings(mqtt_url=env["VPP_MQTT_URL"], mqtt_urls=env["VPP_MQTT_URLS"], data_dir=tmp_path)
        hosts = [(b.host, b.port) for b in parse_broker_urls(settings.broker_urls)]
        assert hosts == [("mosquitto", 1883), ("mosquitto-2", 1883)], name
        assert {"mosquitto", "mosquitto-2"} <= set(services[name]["depends_on"]), name
    # The override adds to a service's environment, it does not replace it.
    assert services["ingest-2"]["environment"]["VPP_INGEST_PARTITION"] == "1"
    first, second = services["mosquitto"], services["mosquitto-2"]
    assert second["image"] == first["image"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in second["volumes"]}
    assert mounts == {
        "/mosquitto/config/mosquitto.conf": "./mosquitto/mosquitto.conf",  # the same file, from deploy/
        "/mosquitto/auth": "mosquitto-auth",  # the same generated credentials
        "/mosquitto/data": "mosquitto-2-data",  # its own sessions, queues and retained signals
    }
    assert (DEPLOY / mounts["/mosquitto/config/mosquitto.conf"]).is_file()
    assert "mosquitto-2-data" in compose["volumes"]
    assert second["depends_on"] == first["depends_on"]
    assert second["ports"] != first["ports"]
