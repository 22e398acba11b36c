"""deploy/ checked without a container engine: compose.yaml and the Dockerfile parsed and cross-checked
against the code (commands, settings, files), and mosquitto.conf run by a real Mosquitto."""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import pwd
import re
import shlex
import shutil
import socket
import ssl
import subprocess
import tempfile
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from services.cli.broker_cmd import DYNSEC_FILE
from vpp.broker_roles import broker_security_lines, dynamic_security_config, dynamic_security_plugin
from vpp.broker_security import ServiceAccounts, hash_password
from vpp.embedded.broker import EmbeddedBroker, wait_for_port
from vpp.embedded.postgres import free_port
from vpp.mqtt import make_client
from vpp.settings import DEV_SECRETS, Settings

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
SECRET_NAME = re.compile(r"PASSWORD|SECRET|SIGNING_KEY|TOKEN|PRIVATE")
REQUIRED_VAR = re.compile(r"^\$\{[A-Z][A-Z0-9_]*:\?[^}]+\}$")
URL_PASSWORD = re.compile(r"://[^:/@\s]+:([^@\s]+)@")
VAR_REFERENCE = re.compile(r"\$\{([A-Z][A-Z0-9_]*)")
# Images the platform runs besides its own, and the variables each may be given.
THIRD_PARTY_ENV = {"timescaledb": {"POSTGRES_USER", "POSTGRES_DB", "POSTGRES_PASSWORD"}, "mosquitto": set()}
# Where the eclipse-mosquitto:2 image keeps the dynamic-security plugin.
IMAGE_DYNSEC_PLUGIN = "/usr/lib/mosquitto_dynamic_security.so"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(compose["services"])


def app_services(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The services that run the platform's own image (they have a build section)."""
    return {name: s for name, s in services.items() if "build" in s}


def argv(service: dict[str, Any]) -> list[str]:
    def words(value: Any) -> list[str]:
        if value is None:
            return []
        return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]

    return words(service.get("entrypoint")) + words(service.get("command"))


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with comments dropped and continuation lines joined."""
    logical: list[str] = []
    pending = ""
    for raw in (DEPLOY / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in logical]


def cli_command_paths() -> set[tuple[str, ...]]:
    from services.cli.main import app

    paths: set[tuple[str, ...]] = set()

    def walk(command: Any, prefix: tuple[str, ...]) -> None:
        paths.add(prefix)
        if hasattr(command, "list_commands"):
            ctx = typer.Context(command)
            for name in command.list_commands(ctx):  # the root loads its subcommands lazily
                walk(command.get_command(ctx, name), (*prefix, name))

    walk(typer.main.get_command(app), ())
    return paths


def assert_runnable(words: list[str]) -> None:
    """The process a container would start exists in this repository."""
    assert words, "no command"
    program, *args = words
    if program == "python":
        assert args[:1] == ["-m"], words
        module = args[1]
        spec = importlib.util.find_spec(module)
        assert spec is not None, f"no module {module}"
        if spec.submodule_search_locations is not None:
            assert importlib.util.find_spec(f"{module}.__main__") is not None, f"{module} has no __main__"
    elif program == "uvicorn":
        module, _, attr = args[0].partition(":")
        spec = importlib.util.find_spec(module)
        assert spec is not None, f"no module {module}"
        assert spec.origin is not None
        tree = ast.parse(Path(spec.origin).read_text())
        names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
        assert attr in names, f"{module} defines no {attr}()"
        assert "--factory" in args, "create_app is a factory: uvicorn needs --factory"
    elif program == "vpp":
        scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
        assert scripts.get("vpp") == "services.cli.main:_entry"
        words_before_options = tuple(w for w in args if not w.startswith("-"))
        paths = cli_command_paths()
        known = max((p for p in paths if p == words_before_options[: len(p)]), key=len)
        assert known, f"`vpp {words_before_options[0]}` is not a registered command"
        assert not any(len(p) > len(known) and p[: len(known)] == known for p in paths), (
            f"`vpp {' '.join(words_before_options)}` names a command group, not a command"
        )
    else:
        raise AssertionError(f"unexpected program {program!r}")


# -- compose.yaml -----------------------------------------------------------------------------------


def test_compose_has_the_database_broker_and_three_services(services: dict[str, dict[str, Any]]) -> None:
    assert re.search(r"timescale/timescaledb:[\w.-]*pg16", services["timescaledb"]["image"])
    assert re.search(r"eclipse-mosquitto:2", services["mosquitto"]["image"])
    commands = {" ".join(argv(s)) for s in app_services(services).values()}
    assert "python -m services.ingest" in commands
    assert "python -m services.dr_scheduler" in commands
    assert any(c.startswith("uvicorn services.api.main:create_app --factory") for c in commands)
    assert "vpp db upgrade" in commands


def test_ingest_runs_at_least_two_workers_with_distinct_client_ids(services: dict[str, dict[str, Any]]) -> None:
    workers = {n: s for n, s in app_services(services).items() if argv(s) == ["python", "-m", "services.ingest"]}
    replicas = {n: int(s.get("deploy", {}).get("replicas", 1)) for n, s in workers.items()}
    assert sum(replicas.values()) >= 2
    client_ids = [s["environment"].get("VPP_INGEST_CLIENT_ID") for s in workers.values()]
    assert None not in client_ids, "every worker needs its own persistent-session client id"
    assert len(set(client_ids)) == len(client_ids)
    # A fixed id on a replicated service would give several workers one session.
    assert all(r == 1 for r in replicas.values()), replicas
    # Plain subscriptions (no $share: Mosquitto 2.0 does not restore it), one partition per worker.
    assert all(not s["environment"].get("VPP_INGEST_SHARE_GROUP") for s in workers.values())
    partitions = {int(s["environment"]["VPP_INGEST_PARTITIONS"]) for s in workers.values()}
    assert partitions == {len(workers)}
    assert sorted(int(s["environment"]["VPP_INGEST_PARTITION"]) for s in workers.values()) == list(range(len(workers)))


def test_every_ingest_worker_and_the_scheduler_have_their_own_broker_account(
    services: dict[str, dict[str, Any]],
) -> None:
    """The broker binds a session to its username, so a shared account would make workers replace each
    other; and broker-config (run with the common environment) must create every account they use."""
    apps = app_services(services)
    workers = [s["environment"] for s in apps.values() if argv(s) == ["python", "-m", "services.ingest"]]
    usernames = [env["VPP_MQTT_INGEST_USERNAME"] for env in workers]
    assert len(set(usernames)) == len(usernames) == len(workers), usernames
    scheduler = apps["dr-scheduler"]["environment"]["VPP_MQTT_SCHEDULER_USERNAME"]
    assert scheduler not in usernames
    broker_config_env = apps["broker-config"]["environment"]
    settings = Settings(
        environment="development",
        mqtt_ingest_username=broker_config_env["VPP_MQTT_INGEST_USERNAME"],
        mqtt_ingest_accounts=broker_config_env["VPP_MQTT_INGEST_ACCOUNTS"],
        mqtt_scheduler_username=broker_config_env["VPP_MQTT_SCHEDULER_USERNAME"],
    )
    assert sorted(settings.ingest_accounts) == sorted(usernames), "broker-config must create exactly these"
    assert settings.mqtt_scheduler_username == scheduler


@pytest.mark.parametrize("name", ["migrate", "broker-config", "ingest-1", "dr-scheduler", "api"])
def test_every_app_command_exists_in_the_repository(services: dict[str, dict[str, Any]], name: str) -> None:
    assert_runnable(argv(services[name]))


def test_app_environment_names_are_settings_fields(services: dict[str, dict[str, Any]]) -> None:
    fields = set(Settings.model_fields)
    for name, service in services.items():
        env = service.get("environment") or {}
        assert isinstance(env, dict), f"{name}: use the mapping form for environment"
        if "build" in service:
            unknown = {k for k in env if not (k.startswith("VPP_") and k[4:].lower() in fields)}
            assert not unknown, f"{name}: not settings of vpp.settings.Settings: {sorted(unknown)}"
        else:
            assert set(env) <= THIRD_PARTY_ENV.get(name, set()), f"{name}: unexpected variables {sorted(env)}"


def test_no_literal_secrets(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for key, value in (service.get("environment") or {}).items():
            text = str(value)
            if SECRET_NAME.search(key):
                assert REQUIRED_VAR.match(text), f"{name}.{key} must be a required ${{VAR:?message}}"
            for password in URL_PASSWORD.findall(text):
                assert REQUIRED_VAR.match(password), f"{name}.{key} embeds a literal password"
    for path in (DEPLOY / "compose.yaml", DEPLOY / "Dockerfile", DEPLOY / ".env.example"):
        text = path.read_text()
        assert not any(secret in text for secret in DEV_SECRETS), path
    for line in (DEPLOY / ".env.example").read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith("#") and SECRET_NAME.search(key):
            assert value == "", f".env.example must leave {key} empty"


def test_every_variable_compose_reads_is_in_env_example() -> None:
    lines = (DEPLOY / "compose.yaml").read_text().splitlines()
    without_comments = [line.split(" #", 1)[0] for line in lines if not line.lstrip().startswith("#")]
    used = set(VAR_REFERENCE.findall("\n".join(without_comments)))
    example = (DEPLOY / ".env.example").read_text()
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", example, flags=re.MULTILINE))
    assert used <= documented, f"document in deploy/.env.example: {sorted(used - documented)}"


def test_references_between_services_files_and_volumes_resolve(compose: dict[str, Any]) -> None:
    services = compose["services"]
    named_volumes = set(compose.get("volumes") or {})
    for name, service in services.items():
        for dependency in service.get("depends_on") or {}:
            assert dependency in services, f"{name} depends on unknown {dependency}"
        for volume in service.get("volumes") or []:
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in named_volumes, f"{name} uses undeclared volume {source}"
        if "build" in service:
            assert (DEPLOY / service["build"]["context"] / service["build"]["dockerfile"]).resolve() == (
                DEPLOY / "Dockerfile"
            )


def test_broker_and_broker_config_agree_on_the_credentials_directory(services: dict[str, dict[str, Any]]) -> None:
    conf = mosquitto_directives((DEPLOY / "mosquitto" / "mosquitto.conf").read_text())
    words = argv(services["broker-config"])
    out_dir = words[words.index("--out-dir") + 1]
    assert conf["plugin_opt_config_file"] == [f"{out_dir}/{DYNSEC_FILE}"]
    assert "password_file" not in conf, "the plugin replaces it"
    assert "acl_file" not in conf, "the plugin replaces it"
    shared = {v.split(":")[0] for v in services["broker-config"]["volumes"]} & {
        v.split(":")[0] for v in services["mosquitto"]["volumes"]
    }
    assert shared, "broker-config must write where the broker reads"
    assert "--no-issue" in words, "an automatic run must not print new secrets into container logs"


# -- Dockerfile -------------------------------------------------------------------------------------


def test_dockerfile_builds_one_python_image_running_as_a_user() -> None:
    instructions = dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    users = [args for op, args in instructions if op == "USER"]
    assert users, "the image must not run as root"
    assert users[-1].split(":")[0] not in {"0", "root"}
    cmd = [args for op, args in instructions if op == "CMD"]
    assert len(cmd) == 1
    assert_runnable(json.loads(cmd[0]))  # exec form, so signals reach the process


def test_dockerfile_copies_only_what_exists_and_the_ignore_file_lets_in() -> None:
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    allowed = {line[1:].removesuffix("/**") for line in ignore if line.startswith("!")}
    for op, args in dockerfile_instructions():
        if op != "COPY":
            continue
        *sources, _dest = args.split()
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
            assert source in allowed, f"COPY {source}: excluded by Dockerfile.dockerignore"


# -- mosquitto.conf ---------------------------------------------------------------------------------


def mosquitto_directives(text: str) -> dict[str, list[str]]:
    directives: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.strip().partition(" ")
            directives.setdefault(key, []).append(value.strip())
    return directives


def test_mosquitto_conf_runs_the_platform_broker_rules() -> None:
    """The lines `vpp broker-config` writes and `vpp up` runs, with the image's plugin path."""
    text = (DEPLOY / "mosquitto" / "mosquitto.conf").read_text()
    lines = {line.strip() for line in text.splitlines()}
    conf = mosquitto_directives(text)
    missing = set(broker_security_lines(IMAGE_DYNSEC_PLUGIN, conf["plugin_opt_config_file"][0])) - lines
    assert not missing, f"mosquitto.conf lacks {sorted(missing)}"
    # A listener setting: every listener, the commented TLS one included, binds client ids to usernames.
    blocks = re.split(r"^#?listener ", text, flags=re.MULTILINE)[1:]
    assert len(blocks) == 2
    for block in blocks:
        settings = block.split("\n\n", 1)[0]
        assert re.search(r"^#?use_username_as_clientid true$", settings, flags=re.MULTILINE), settings


def test_mosquitto_conf_keeps_the_at_least_once_settings() -> None:
    conf = mosquitto_directives((DEPLOY / "mosquitto" / "mosquitto.conf").read_text())
    assert conf["max_inflight_messages"] == ["0"]
    assert int(conf["max_queued_messages"][0]) >= 100_000
    assert conf["persistence"] == ["true"]
    assert conf["allow_anonymous"] == ["false"]
    assert conf["listener"] == ["1883"]


@pytest.fixture
def broker_dir() -> Iterator[Path]:
    # Started as root, Mosquitto drops to its own user before it reads its files. pytest's tmp_path
    # sits below a mode-0700 directory out of that user's reach, so use a directory of our own.
    work = Path(tempfile.mkdtemp(prefix="vpp-deploy-test-"))
    work.chmod(0o755)
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _hand_to_broker_user(*paths: Path) -> None:
    if os.geteuid() == 0:
        user = pwd.getpwnam("mosquitto")
        for path in paths:
            os.chown(path, user.pw_uid, user.pw_gid)


@contextmanager
def running_mosquitto(conf_text: str, work: Path) -> Iterator[int]:
    """Mosquitto on the given configuration, with its paths moved under `work` and a free port."""
    binary = EmbeddedBroker.mosquitto_binary()
    if binary is None:
        pytest.fail("mosquitto is not installed: run `make deps` (it installs Debian's mosquitto)")
    port = free_port()
    conf = work / "mosquitto.conf"
    rewritten = re.sub(r"^listener 1883$", f"listener {port} 127.0.0.1", conf_text, flags=re.MULTILINE)
    plugin = dynamic_security_plugin()
    if plugin is None:
        pytest.fail("this Mosquitto has no dynamic-security plugin (Debian's mosquitto package ships it)")
    conf.write_text(rewritten.replace("/mosquitto/", f"{work}/").replace(IMAGE_DYNSEC_PLUGIN, plugin))
    process = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        try:
            wait_for_port("127.0.0.1", port, timeout_s=5)
        except TimeoutError:
            process.kill()
            output = process.communicate(timeout=5)[0].decode()
            raise AssertionError(f"mosquitto refused the configuration:\n{output}") from None
        yield port
    finally:
        if process.poll() is None:
            process.terminate()
            process.communicate(timeout=10)
        elif process.stdout:
            process.stdout.close()


def _write_auth(work: Path) -> None:
    auth = work / "auth"
    data = work / "data"
    for d in (auth, data):
        d.mkdir()
    services = {"ingest": hash_password("ingest-pw"), "scheduler": hash_password("scheduler-pw")}
    dynsec = dynamic_security_config({"site-a": hash_password("a")}, ServiceAccounts("ingest", "scheduler"), services)
    (auth / DYNSEC_FILE).write_text(dynsec)
    _hand_to_broker_user(work, auth, data, auth / DYNSEC_FILE)


def _connack(port: int, username: str, password: str) -> int:
    client = make_client(f"check-{username}-{password}", username=username, password=password)
    codes: list[int] = []
    client.on_connect = lambda _c, _u, _f, rc, _p: codes.append(rc.value)
    client.connect("127.0.0.1", port)
    while not codes:
        client.loop(timeout=0.2)
    client.disconnect()
    return codes[0]


def test_mosquitto_accepts_the_production_config_and_enforces_its_accounts(broker_dir: Path) -> None:
    _write_auth(broker_dir)
    with running_mosquitto((DEPLOY / "mosquitto" / "mosquitto.conf").read_text(), broker_dir) as port:
        assert _connack(port, "ingest", "ingest-pw") == 0
        assert _connack(port, "ingest", "wrong") in (0x86, 0x87)


def test_the_commented_tls_listener_is_valid_once_enabled(broker_dir: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("openssl is needed to make a throw-away certificate: run `make deps` (it installs it)")
    _write_auth(broker_dir)
    certs = broker_dir / "certs"
    certs.mkdir()
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-keyout", str(certs / "privkey.pem"), "-out", str(certs / "fullchain.pem")],
        check=True, capture_output=True,
    )  # fmt: skip
    shutil.copy(certs / "fullchain.pem", certs / "site-ca.pem")
    _hand_to_broker_user(certs, *certs.iterdir())
    text = (DEPLOY / "mosquitto" / "mosquitto.conf").read_text()
    tls_block = text[text.index("#listener 8883") :].split("\n\n", 1)[0]
    tls_port = free_port()
    enabled = "\n".join(line.removeprefix("#") for line in tls_block.splitlines())
    enabled = enabled.replace("listener 8883", f"listener {tls_port} 127.0.0.1")
    with running_mosquitto(text.replace(tls_block, enabled), broker_dir) as port:
        assert _connack(port, "ingest", "ingest-pw") == 0
        wait_for_port("127.0.0.1", tls_port, timeout_s=5)
        context = ssl.create_default_context(cafile=str(certs / "fullchain.pem"))
        context.check_hostname = False
        with (
            socket.create_connection(("127.0.0.1", tls_port), timeout=5) as raw,
            context.wrap_socket(raw) as tls,
        ):
            assert tls.version() in {"TLSv1.2", "TLSv1.3"}
