"""Every command in deploy/ run with the argv compose and the Dockerfile give it, until it is ready.

There is no container engine here, so this stands in for `docker compose up`: compose.yaml is parsed,
its ${VAR} references interpolated the way compose does (each required secret gets a random value, as an
operator's deploy/.env would give it), and each service's environment, command and health check are
run as processes, in compose's start-up order, against a real PostgreSQL and a real Mosquitto.

What a container provides and a process does not is mapped explicitly, and only that:
- network: the service names `timescaledb:5432` and `mosquitto:1883` in URLs become the private
  servers' 127.0.0.1 ports; ports a process listens on inside its own container (the API's 8000, the
  metrics ports) become free ports, because here the processes share one network namespace;
- volumes: each container path a service mounts becomes a directory of this test;
- images: `timescaledb` is an embedded PostgreSQL on which `vpp` is a database owner without superuser
  (as a managed service hands out; the TimescaleDB image would make it a superuser), `mosquitto` is
  Debian's Mosquitto running the eclipse-mosquitto image's default command on deploy's mosquitto.conf,
  with the image's dynamic-security plugin path replaced by Debian's, and the broker's group id 1883
  (eclipse-mosquitto) is the group Debian's Mosquitto runs as.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from psycopg import sql

from tests.integration.ingest_fixtures import register_depot
from tests.integration.security.conftest import Probe
from tests.support.waiting import wait_for
from vpp.broker_roles import dynamic_security_plugin
from vpp.embedded.broker import EmbeddedBroker, wait_for_port
from vpp.embedded.postgres import EmbeddedPostgres, free_port, postgres_bin_dir
from vpp.mqtt import make_client

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
# What the two third-party images run when compose gives them no command (their images' CMD).
IMAGE_DEFAULT_COMMAND = {"mosquitto": ["/usr/sbin/mosquitto", "-c", "/mosquitto/config/mosquitto.conf"]}
# The ports the platform's processes listen on inside their containers: settings defaults, or argv.
METRICS_PORT_SETTING = {"python -m services.ingest": "VPP_INGEST_METRICS_PORT", "python -m services.dr_scheduler": "VPP_SCHEDULER_METRICS_PORT"}  # fmt: skip
API_CONTAINER_PORT = "8000"
BROKER_GROUP_IN_IMAGE = "1883"
IMAGE_DYNSEC_PLUGIN = "/usr/lib/mosquitto_dynamic_security.so"  # in eclipse-mosquitto:2
NOT_AUTHORIZED = 0x87
BAD_CREDENTIALS = 0x86
READY_TIMEOUT_S = 60.0

VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def interpolate(value: Any, variables: dict[str, str]) -> Any:
    """Compose's interpolation: ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}, $$."""
    if isinstance(value, dict):
        return {k: interpolate(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, variables) for v in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(4)
        operator, argument = match.group(2), match.group(3) or ""
        current = variables.get(name)
        unset = current is None or (operator is not None and operator.startswith(":") and current == "")
        if operator in (":?", "?") and unset:
            raise AssertionError(f"compose would refuse to start: {name}: {argument}")
        if operator in (":-", "-") and unset:
            return argument
        return current or ""

    return VARIABLE.sub(one, value)


def required_variables(text: str) -> set[str]:
    return set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*):?\?", text))


def words(value: Any) -> list[str]:
    if value is None:
        return []
    return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]


def healthcheck_argv(service: dict[str, Any]) -> list[str]:
    test = service["healthcheck"]["test"]
    if isinstance(test, str):
        return ["/bin/sh", "-c", test]
    kind, *rest = test
    assert kind in ("CMD", "CMD-SHELL"), test
    return rest if kind == "CMD" else ["/bin/sh", "-c", " ".join(rest)]


def dockerfile() -> tuple[dict[str, str], list[str]]:
    """The image's ENV and CMD (continuation lines joined, comments dropped)."""
    lines = [line for line in (DEPLOY / "Dockerfile").read_text().splitlines() if not line.lstrip().startswith("#")]
    text = re.sub(r"\\\n", " ", "\n".join(lines))
    env: dict[str, str] = {}
    cmd: list[str] = []
    entrypoint: list[str] = []
    for line in text.splitlines():
        instruction, _, rest = line.strip().partition(" ")
        if instruction.upper() == "ENV":
            env.update(dict(pair.split("=", 1) for pair in shlex.split(rest)))
        elif instruction.upper() in ("CMD", "ENTRYPOINT"):
            parsed = yaml.safe_load(rest) if rest.strip().startswith("[") else ["/bin/sh", "-c", rest]
            (cmd if instruction.upper() == "CMD" else entrypoint)[:] = [str(w) for w in parsed]
    return env, entrypoint + cmd


@dataclass
class Deployment:
    """compose.yaml's services as processes on this machine, with the mapping the module docstring lists."""

    work: Path
    compose: dict[str, Any]
    variables: dict[str, str]
    postgres: EmbeddedPostgres
    mqtt_port: int = 0
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)

    @property
    def services(self) -> dict[str, dict[str, Any]]:
        return dict(self.compose["services"])

    def volume_dir(self, source: str) -> Path:
        if source.startswith("."):
            return (DEPLOY / source).resolve()
        path = self.work / "volumes" / source
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o755)
        return path

    def mounts(self, name: str) -> dict[str, Path]:
        mounts = {"/tmp/vpp-data": self.work / "vpp-data"}  # the Dockerfile's VPP_DATA_DIR
        for volume in self.services[name].get("volumes", []):
            source, target = str(volume).split(":")[:2]
            mounts[target] = self.volume_dir(source)
        return mounts

    def localise(self, name: str, text: str) -> str:
        """A string as the service's container sees it, rewritten for this machine (network, volumes)."""
        text = re.sub(r"(?<=[@/])timescaledb:5432\b", f"127.0.0.1:{self.postgres.port}", text)
        text = re.sub(r"(?<=[@/])mosquitto:1883\b", f"127.0.0.1:{self.mqtt_port}", text)
        if name in self.ports:
            text = re.sub(rf"(?<=127\.0\.0\.1:){API_CONTAINER_PORT}\b", str(self.ports[name]), text)
        for target, source in sorted(self.mounts(name).items(), key=lambda m: -len(m[0])):
            text = text.replace(target, str(source))
        return text

    def argv(self, name: str, args: list[str]) -> list[str]:
        localised = [self.localise(name, a) for a in args]
        for at in [i + 1 for i, word in enumerate(localised) if word == "--group"]:
            assert localised[at] == BROKER_GROUP_IN_IMAGE, localised
            localised[at] = str(grp.getgrnam("mosquitto").gr_gid if os.geteuid() == 0 else os.getgid())
        if name in self.ports and "--port" in localised:
            at = localised.index("--port") + 1
            assert localised[at] == API_CONTAINER_PORT, localised
            localised[at] = str(self.ports[name])
        return localised

    def environment(self, name: str, image_env: dict[str, str] | None = None) -> dict[str, str]:
        """The container's environment: the image's ENV, then compose's `environment`, localised."""
        service = self.services[name]
        env = {
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), str(postgres_bin_dir()), "/usr/sbin:/usr/bin:/bin"]),
            "HOME": str(self.work),
            "LANG": "C.UTF-8",
        }  # fmt: skip
        if image_env is None and "build" in service:  # the platform's own image, built from deploy/Dockerfile
            image_env = dockerfile()[0]
        env.update(image_env or {})
        env.update({k: self.localise(name, str(v)) for k, v in (service.get("environment") or {}).items()})
        env = {k: self.localise(name, v) for k, v in env.items()}
        command = " ".join(words(service.get("command")))
        if command in METRICS_PORT_SETTING:
            env[METRICS_PORT_SETTING[command]] = str(self.ports.setdefault(name, free_port()))
        return env

    def service_argv(self, name: str) -> list[str]:
        service = self.services[name]
        raw = words(service.get("entrypoint")) + words(service.get("command"))
        return self.argv(name, raw or IMAGE_DEFAULT_COMMAND[name])

    def run(self, name: str, argv: list[str], timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv, env=self.environment(name), cwd=self.app_dir, capture_output=True, text=True, timeout=timeout_s, check=False
        )  # fmt: skip

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        with (self.work / f"{name}.log").open("wb") as log:  # the child keeps its own descriptor
            process = subprocess.Popen(
                argv, env=env or self.environment(name), cwd=self.app_dir, stdout=log, stderr=subprocess.STDOUT
            )
        self.processes[name] = process
        return process

    def log(self, name: str) -> str:
        path = self.work / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    @property
    def app_dir(self) -> Path:
        # The container's WORKDIR holds the code, which here is installed (editable) in the venv; an
        # empty directory keeps a developer's .env in the repository out of the processes' settings.
        path = self.work / "app"
        path.mkdir(exist_ok=True)
        return path

    def stop(self, names: list[str] | None = None) -> dict[str, int | None]:
        """SIGTERM, as `docker compose stop` sends (all when `names` is None); each exit status, None
        for a process that outlived compose's grace period (stop_grace_period, 45 s at most here)."""
        chosen = {n: p for n, p in self.processes.items() if names is None or n in names}
        for process in chosen.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        codes: dict[str, int | None] = {}
        for name, process in chosen.items():
            try:
                codes[name] = process.wait(timeout=45)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                codes[name] = None
            del self.processes[name]
        return codes


def compose_variables(text: str) -> dict[str, str]:
    """What deploy/.env gives compose: every required variable, with a random URL-safe secret."""
    return {name: secrets.token_hex(24) for name in required_variables(text)}


def depends_first(services: dict[str, dict[str, Any]]) -> list[str]:
    order: list[str] = []

    def visit(name: str) -> None:
        if name in order:
            return
        for dependency in services[name].get("depends_on") or {}:
            visit(dependency)
        order.append(name)

    for name in services:
        visit(name)
    return order


@pytest.fixture(scope="module")
def deployment() -> Iterator[Deployment]:
    if EmbeddedBroker.mosquitto_binary() is None:
        pytest.fail("mosquitto is not installed: run `make deps` (it installs Debian's mosquitto)")
    text = (DEPLOY / "compose.yaml").read_text()
    variables = compose_variables(text)
    compose = interpolate(yaml.safe_load(text), variables)
    # Mosquitto drops to its own user before reading its files: keep the work tree reachable for it.
    work = Path(tempfile.mkdtemp(prefix="vpp-deploy-run-"))
    work.chmod(0o755)
    postgres = EmbeddedPostgres(work / "pg", user="postgres").start()
    environment = compose["services"]["timescaledb"]["environment"]
    with psycopg.connect(postgres.url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {}").format(
                sql.Identifier(environment["POSTGRES_USER"]), sql.Literal(environment["POSTGRES_PASSWORD"])
            )
        )
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(environment["POSTGRES_DB"]), sql.Identifier(environment["POSTGRES_USER"])
            )
        )
    deployment = Deployment(work, compose, variables, postgres, mqtt_port=free_port())
    deployment.ports["api"] = free_port()
    try:
        yield deployment
    finally:
        deployment.stop()
        postgres.destroy()
        shutil.rmtree(work, ignore_errors=True)


def test_every_compose_service_is_run_here(deployment: Deployment) -> None:
    # A service added to compose.yaml without a way to run it here fails this test, not silently passes.
    order = depends_first(deployment.services)
    assert order[:4] == ["timescaledb", "migrate", "broker-config", "mosquitto"], order
    assert set(order[4:]) == {"ingest-1", "ingest-2", "dr-scheduler", "api"}, order


def database_url(deployment: Deployment, name: str) -> str:
    return deployment.environment(name)["VPP_DATABASE_URL"]


def _contains(needle: str, text: str) -> bool:
    return needle in text


def metrics(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3) as response:
            return str(response.read().decode())
    except OSError as error:
        return f"unreachable: {error}"


def test_database_healthcheck_then_the_one_shots_then_the_broker(deployment: Deployment) -> None:
    env = deployment.environment("timescaledb")
    # pg_isready inside the image reaches the server through its socket; here through the mapped port.
    health = subprocess.run(
        deployment.argv("timescaledb", healthcheck_argv(deployment.services["timescaledb"])),
        env={**env, "PGHOST": "127.0.0.1", "PGPORT": str(deployment.postgres.port)},
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert health.returncode == 0, health.stdout + health.stderr

    migrate = deployment.run("migrate", deployment.service_argv("migrate"))
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    url = database_url(deployment, "migrate")
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone() == (False,)
        assert conn.execute("SELECT count(*) FROM alembic_version").fetchone() == (1,)

    broker_config = deployment.run("broker-config", deployment.service_argv("broker-config"))
    assert broker_config.returncode == 0, broker_config.stdout + broker_config.stderr
    assert broker_config.stdout == ""  # --no-issue: no secret printed at start-up
    auth = deployment.mounts("broker-config")["/mosquitto/auth"]
    assert {p.name for p in auth.iterdir()} >= {"dynamic-security.json"}
    start_broker(deployment)


def start_broker(deployment: Deployment) -> None:
    """The mosquitto service as compose starts (and `dc restart mosquitto` restarts) it."""
    conf = deployment.mounts("mosquitto")["/mosquitto/config/mosquitto.conf"]
    # Mosquitto reads its listener port from the file: the container's 1883 becomes the mapped port.
    rewritten = deployment.work / "mosquitto.conf"
    text = re.sub(r"^listener 1883$", f"listener {deployment.mqtt_port} 127.0.0.1", conf.read_text(), flags=re.M)
    assert IMAGE_DYNSEC_PLUGIN in text, "deploy's broker must load the dynamic-security plugin"
    plugin = dynamic_security_plugin()
    assert plugin is not None, "Debian's mosquitto package ships mosquitto_dynamic_security.so"
    rewritten.write_text(deployment.localise("mosquitto", text).replace(IMAGE_DYNSEC_PLUGIN, plugin))
    argv = deployment.service_argv("mosquitto")
    argv[0] = str(EmbeddedBroker.mosquitto_binary())  # /usr/sbin/mosquitto in the image
    argv[argv.index(str(conf))] = str(rewritten)
    if os.geteuid() == 0:  # the eclipse-mosquitto image hands its data volume to the broker's user too
        data = deployment.mounts("mosquitto")["/mosquitto/data"]
        user = pwd.getpwnam("mosquitto")
        os.chown(data, user.pw_uid, user.pw_gid)
    broker = deployment.start("mosquitto", argv)
    try:
        wait_for_port("127.0.0.1", deployment.mqtt_port, timeout_s=10)
    except TimeoutError:
        raise AssertionError(
            f"mosquitto did not listen (exit {broker.poll()}):\n{deployment.log('mosquitto')}"
        ) from None


def connack(port: int, username: str, password: str, client_id: str | None = None) -> int:
    client = make_client(client_id or f"deploy-check-{secrets.token_hex(4)}", username=username, password=password)
    codes: list[int] = []
    client.on_connect = lambda _c, _u, _f, rc, _p: codes.append(rc.value)
    client.connect("127.0.0.1", port)
    deadline = time.monotonic() + 10
    while not codes and time.monotonic() < deadline:
        client.loop(timeout=0.2)
    client.disconnect()
    assert codes, "no CONNACK"
    return codes[0]


def test_the_broker_takes_the_service_accounts_and_refuses_anyone_else(deployment: Deployment) -> None:
    port = deployment.mqtt_port
    accounts = [
        (deployment.environment(n)["VPP_MQTT_INGEST_USERNAME"], deployment.environment(n)["VPP_MQTT_INGEST_PASSWORD"])
        for n in ("ingest-1", "ingest-2")
    ]
    scheduler = deployment.environment("dr-scheduler")
    accounts.append((scheduler["VPP_MQTT_SCHEDULER_USERNAME"], scheduler["VPP_MQTT_SCHEDULER_PASSWORD"]))
    assert [name for name, _ in accounts] == ["ingest-1", "ingest-2", "scheduler"]
    for username, password in accounts:
        assert connack(port, username, password) == 0, username
        assert connack(port, username, "not-the-password") in (BAD_CREDENTIALS, NOT_AUTHORIZED)
    assert connack(port, "ingest", accounts[0][1]) in (BAD_CREDENTIALS, NOT_AUTHORIZED), "no shared `ingest` account"


def test_one_ingest_worker_cannot_take_over_the_other_s_session(deployment: Deployment) -> None:
    """ingest-2's credentials with ingest-1's client id land in ingest-2's own session: the broker
    replaces the client id by the username, so the connected ingest-1 is not kicked off."""
    one, two = (deployment.environment(n) for n in ("ingest-1", "ingest-2"))
    holder = Probe(deployment.mqtt_port, "ingest-1", one["VPP_MQTT_INGEST_USERNAME"], one["VPP_MQTT_INGEST_PASSWORD"])
    try:
        assert not holder.connect_result.is_failure
        assert (
            connack(deployment.mqtt_port, two["VPP_MQTT_INGEST_USERNAME"], two["VPP_MQTT_INGEST_PASSWORD"], "ingest-1")
            == 0
        )
        assert holder.subscribe("vpp/v1/+/+/telemetry")[0].value == 1  # still connected, still ingest's role
        assert not holder.disconnected.is_set()
    finally:
        holder.close()


def test_long_running_services_reach_ready_and_stop_cleanly_on_sigterm(deployment: Deployment) -> None:
    runners = [n for n in depends_first(deployment.services) if n not in ("timescaledb", "migrate", "broker-config", "mosquitto")]  # fmt: skip
    for name in runners:
        deployment.start(name, deployment.service_argv(name))

    def failed(name: str) -> str:
        return f"{name} (exit {deployment.processes[name].poll()}):\n{deployment.log(name)}"

    for name in runners:
        command = " ".join(words(deployment.services[name].get("command")))
        if command == "python -m services.ingest":
            gauge = "vpp_ingest_broker_connected 1.0"
        elif command == "python -m services.dr_scheduler":
            gauge = "vpp_dr_broker_connected 1.0"
        else:
            continue
        try:
            wait_for(partial(metrics, deployment.ports[name]), partial(_contains, gauge), READY_TIMEOUT_S, 0.25)
        except AssertionError as error:
            raise AssertionError(f"{error}\n{failed(name)}") from None

    # The API: compose's health check, run with its own argv, as often as compose would retry it.
    api = deployment.services["api"]
    probe = deployment.argv("api", healthcheck_argv(api))
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        result = subprocess.run(probe, env=deployment.environment("api"), capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
        if result.returncode == 0:
            break
        assert deployment.processes["api"].poll() is None, failed("api")
        assert time.monotonic() < deadline, f"health check never passed: {result.stderr}\n{failed('api')}"
        time.sleep(0.5)
    with urllib.request.urlopen(f"http://127.0.0.1:{deployment.ports['api']}/readyz", timeout=5) as response:
        assert response.status == 200  # the database is reachable and migrated, as the non-superuser

    for name in runners:
        assert deployment.processes[name].poll() is None, failed(name)
    codes = deployment.stop(runners)
    unclean = {n: f"exit {c}: {deployment.log(n)}" for n, c in codes.items() if not stopped_cleanly(deployment, n, c)}
    assert not unclean, unclean


def test_a_commissioned_site_s_telemetry_lands_in_the_database(deployment: Deployment) -> None:
    """The runbook's commissioning run: register, `broker-config` issuing a secret, restart the broker,
    publish; the site may not join ingest's stream or read the broker's own topics."""
    url = database_url(deployment, "migrate")
    register_depot(url, "deploy-site")
    # `dc run --rm -T broker-config --group 1883`: arguments after the service replace its command.
    service = deployment.services["broker-config"]
    issued = deployment.run("broker-config", deployment.argv("broker-config", [*words(service["entrypoint"]), "--group", BROKER_GROUP_IN_IMAGE]))  # fmt: skip
    assert issued.returncode == 0, issued.stderr
    site_id, secret = issued.stdout.strip().split("\t")
    assert site_id == "deploy-site"
    # `dc restart mosquitto`: the dynamic-security plugin reads its file at start only.
    assert deployment.stop(["mosquitto"]) == {"mosquitto": 0}
    start_broker(deployment)
    # Every ingest worker: each keeps a persistent session in the shared subscription, and Mosquitto
    # routes a share of new messages into it whether or not its worker is connected (runbook).
    workers = [
        n for n, s in deployment.services.items() if " ".join(words(s.get("command"))) == "python -m services.ingest"
    ]
    for name in workers:
        deployment.start(name, deployment.service_argv(name))
    for name in workers:
        try:
            wait_for(partial(metrics, deployment.ports[name]), partial(_contains, "vpp_ingest_broker_connected 1.0"), READY_TIMEOUT_S, 0.25)  # fmt: skip
        except AssertionError:
            raise AssertionError(
                f"{name} did not reconnect:\n{deployment.log(name)}\n{deployment.log('mosquitto')}"
            ) from None

    client = make_client(f"gw-{site_id}", username=site_id, password=secret)
    acks: list[int] = []
    client.on_publish = lambda _c, _u, _mid, rc, _p: acks.append(rc.value)
    assert connack(deployment.mqtt_port, site_id, secret) == 0
    attacker = Probe(deployment.mqtt_port, "ingest-1", site_id, secret)
    try:
        filters = ["$share/ingest/vpp/v1/+/+/telemetry", "$SYS/#", "vpp/v1/+/dr/signal", "vpp/v1/+/+/telemetry"]
        assert [rc.value for rc in attacker.subscribe(*filters)] == [NOT_AUTHORIZED] * len(filters)
    finally:
        attacker.close()
    client.connect("127.0.0.1", deployment.mqtt_port)
    client.loop_start()
    try:
        payload = f'{{"ts": "{time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}", "power_kw": 12.5}}'
        client.publish(f"vpp/v1/{site_id}/meter-1/telemetry", payload, qos=1).wait_for_publish(10)
        assert acks == [0]
        count = wait_for(lambda: _count(url, "SELECT count(*) FROM readings"), lambda n: n >= 1, 30)
        assert count == 1
        assert _count(url, "SELECT count(*) FROM dead_letters") == 0
    finally:
        client.loop_stop()
        client.disconnect()
    assert deployment.stop(workers) == dict.fromkeys(workers, 0)


def stopped_cleanly(deployment: Deployment, name: str, code: int | None) -> bool:
    # Uvicorn finishes its shutdown and then re-raises SIGTERM on itself (exit 143 in a container).
    uvicorn_done = code == -signal.SIGTERM and "Application shutdown complete" in deployment.log(name)
    return code == 0 or uvicorn_done


def _count(url: str, query: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(query).fetchone()
        return int(row[0]) if row else 0


def test_the_dockerfile_default_command_serves_the_api(deployment: Deployment) -> None:
    # `docker run` of the image with the app's environment: the Dockerfile's CMD, not compose's command.
    image_env, cmd = dockerfile()
    assert cmd, "the Dockerfile has no CMD"
    deployment.ports["image"] = free_port()
    deployment.compose["services"]["image"] = {"environment": deployment.services["api"]["environment"]}
    argv = [
        a.replace(API_CONTAINER_PORT, str(deployment.ports["image"])) if a == API_CONTAINER_PORT else a for a in cmd
    ]
    process = deployment.start("image", argv, env=deployment.environment("image", image_env))
    port = deployment.ports["image"]

    def ready() -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=3) as response:
                return int(response.status)
        except OSError:
            assert process.poll() is None, deployment.log("image")
            return 0

    wait_for(ready, lambda status: status == 200, READY_TIMEOUT_S, 0.25)
    assert stopped_cleanly(deployment, "image", deployment.stop(["image"])["image"])
