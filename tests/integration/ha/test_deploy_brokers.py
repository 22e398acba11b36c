"""`docker compose -f deploy/compose.yaml -f deploy/ha/compose.brokers.yaml up`, run as processes.

The same stand-in for compose as tests/integration/test_deploy_commands.py (its module docstring says
what a container maps to here), on the merged files: both Mosquittos run Debian's binary on deploy's
mosquitto.conf with the same generated credentials, the ingest workers and the scheduler get
VPP_MQTT_URLS with both, and then the first broker is SIGKILLed and started again while they run.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import psycopg
import pytest
import yaml
from psycopg import sql

from tests.integration.test_deploy_commands import (
    DEPLOY,
    IMAGE_DYNSEC_PLUGIN,
    READY_TIMEOUT_S,
    Deployment,
    _contains,
    compose_variables,
    depends_first,
    interpolate,
    metrics,
    words,
)
from tests.support.compose_merge import merge_compose
from tests.support.waiting import wait_for
from vpp.broker_roles import dynamic_security_plugin
from vpp.embedded.broker import EmbeddedBroker, wait_for_port
from vpp.embedded.postgres import EmbeddedPostgres, free_port

pytestmark = pytest.mark.integration

OVERRIDE = DEPLOY / "ha" / "compose.brokers.yaml"
BROKERS = ("mosquitto", "mosquitto-2")
CLIENTS = {"python -m services.ingest": "vpp_ingest_broker_connected", "python -m services.dr_scheduler": "vpp_dr_broker_connected"}  # fmt: skip


@dataclass
class HaDeployment(Deployment):
    mqtt_port_2: int = 0

    def localise(self, name: str, text: str) -> str:
        text = re.sub(r"(?<=[@/])mosquitto-2:1883\b", f"127.0.0.1:{self.mqtt_port_2}", text)
        return super().localise(name, text)

    def start_broker(self, name: str) -> None:
        port = self.mqtt_port if name == "mosquitto" else self.mqtt_port_2
        conf = self.mounts(name)["/mosquitto/config/mosquitto.conf"]
        rewritten = self.work / f"{name}.conf"
        text = re.sub(r"^listener 1883$", f"listener {port} 127.0.0.1", conf.read_text(), flags=re.M)
        plugin = dynamic_security_plugin()
        assert plugin is not None, "Debian's mosquitto package ships mosquitto_dynamic_security.so"
        rewritten.write_text(self.localise(name, text).replace(IMAGE_DYNSEC_PLUGIN, plugin))
        if os.geteuid() == 0:  # the eclipse-mosquitto image hands its data volume to the broker's user
            user = pwd.getpwnam("mosquitto")
            os.chown(self.mounts(name)["/mosquitto/data"], user.pw_uid, user.pw_gid)
        # The image's default command (no `command` in either file), with Debian's binary.
        broker = self.start(name, [str(EmbeddedBroker.mosquitto_binary()), "-c", str(rewritten)])
        try:
            wait_for_port("127.0.0.1", port, timeout_s=10)
        except TimeoutError:
            raise AssertionError(f"{name} did not listen (exit {broker.poll()}):\n{self.log(name)}") from None


@pytest.fixture
def ha_deployment() -> Iterator[HaDeployment]:
    if EmbeddedBroker.mosquitto_binary() is None:
        pytest.fail("mosquitto is not installed: run `make deps` (it installs Debian's mosquitto)")
    texts = [(DEPLOY / "compose.yaml").read_text(), OVERRIDE.read_text()]
    variables = compose_variables("\n".join(texts))
    compose = merge_compose(*(interpolate(yaml.safe_load(t), variables) for t in texts))
    work = Path(tempfile.mkdtemp(prefix="vpp-deploy-ha-"))
    work.chmod(0o755)
    postgres = EmbeddedPostgres(work / "pg", user="postgres").start()
    environment = compose["services"]["timescaledb"]["environment"]
    with psycopg.connect(postgres.url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER PASSWORD {}").format(
                sql.Identifier(environment["POSTGRES_USER"]), sql.Literal(environment["POSTGRES_PASSWORD"])
            )
        )
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(environment["POSTGRES_DB"]), sql.Identifier(environment["POSTGRES_USER"])
            )
        )
    deployment = HaDeployment(work, compose, variables, postgres, mqtt_port=free_port(), mqtt_port_2=free_port())
    try:
        yield deployment
    finally:
        deployment.stop()
        postgres.destroy()
        shutil.rmtree(work, ignore_errors=True)


def test_the_services_serve_both_brokers_and_ride_over_the_loss_of_one(ha_deployment: HaDeployment) -> None:
    d = ha_deployment
    order = depends_first(d.services)
    assert order.index("mosquitto-2") < min(order.index(n) for n in ("ingest-1", "ingest-2", "dr-scheduler"))
    for one_shot in ("migrate", "broker-config"):
        result = d.run(one_shot, d.service_argv(one_shot))
        assert result.returncode == 0, result.stdout + result.stderr
    for broker in BROKERS:
        d.start_broker(broker)
    clients = {n: CLIENTS[" ".join(words(s.get("command")))] for n, s in d.services.items() if " ".join(words(s.get("command"))) in CLIENTS}  # fmt: skip
    assert set(clients) == {"ingest-1", "ingest-2", "dr-scheduler"}
    for name in clients:
        d.start(name, d.service_argv(name))

    def connected(count: int) -> None:
        for name, gauge in clients.items():
            try:
                wait_for(partial(metrics, d.ports[name]), partial(_contains, f"{gauge} {count}.0"), READY_TIMEOUT_S, 0.25)  # fmt: skip
            except AssertionError as error:
                raise AssertionError(f"{error}\n{name}:\n{d.log(name)}") from None

    connected(2)  # each on both brokers, with the ingest and scheduler accounts of broker-config
    d.processes["mosquitto"].kill()  # SIGKILL the first broker
    d.processes.pop("mosquitto").wait(10)
    connected(1)
    for name in clients:
        assert d.processes[name].poll() is None, d.log(name)
    d.start_broker("mosquitto")  # back on its data volume
    connected(2)
    codes = d.stop(list(clients))
    assert codes == dict.fromkeys(clients, 0), {n: d.log(n) for n in clients}
