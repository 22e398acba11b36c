"""The runbook's "Connect a VEN" section with its MQTT step, run as written: every shell block in order,
in bash, against a served VTN publishing to a real Mosquitto with dynamic security. The VEN it
connects subscribes with `mosquitto_sub` and receives the revision of a scheduler peak-cut."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import threading
from datetime import datetime
from pathlib import Path

import psycopg
import pytest

from services.api.main import create_app
from services.cli.broker_cmd import DYNSEC_FILE
from tests.integration.api.server import serving
from tests.integration.openadr.conftest import vtn_settings
from tests.integration.openadr.spec_validation import BASE_PATH
from tests.integration.openadr.test_runbook import RUNBOOK, _vpp_shim
from tests.integration.openadr.vtn_setup import scheduler_event
from tests.integration.security.conftest import run_broker_config
from vpp.domain.slots import JST
from vpp.embedded.broker import EmbeddedBroker
from vpp.postgres.migrate import upgrade
from vpp.postgres.registry import SiteRecord, register_site

pytestmark = pytest.mark.integration

VTN_BROKER_PASSWORD = "openadr-vtn-broker-secret-for-runbook"
RESTART_MARK = "runbook-test: restart the broker now"


def _section_script() -> str:
    text = RUNBOOK.read_text(encoding="utf-8")
    section = text.split("\n## Connect a VEN\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^```sh(?: mqtt)?\n(.*?)^```", section, flags=re.S | re.M)
    mqtt_blocks = re.findall(r"^```sh mqtt\n", section, flags=re.M)
    assert len(mqtt_blocks) >= 2, "the MQTT step's shell blocks are what this test runs"
    return "set -euo pipefail\n" + "\n".join(blocks)


def _restart_hook(directory: Path) -> tuple[Path, Path]:
    # What `systemctl restart mosquitto` is in the runbook: ask this test to restart its broker, and wait.
    ack = directory / "broker-restarted"
    hook = directory / "restart-broker"
    hook.write_text(f"#!/bin/sh\necho '{RESTART_MARK}'\nwhile [ ! -f '{ack}' ]; do sleep 0.1; done\nrm -f '{ack}'\n")
    hook.chmod(0o755)
    return hook, ack


def test_connect_a_ven_over_mqtt_as_the_runbook_says(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if shutil.which("mosquitto_sub") is None:
        pytest.fail("mosquitto_sub is not installed: run `make deps` (it installs Debian's mosquitto-clients)")
    upgrade(db_url)
    with psycopg.connect(db_url) as conn:
        register_site(conn, SiteRecord("depot-a", "Depot A", 35.6, 139.6), ())
        conn.commit()
    start = datetime(2030, 11, 4, 14, 0, tzinfo=JST)
    scheduler_event(db_url, "peak_cut", "dr-2030-11-04-pc", {"depot-a": 40.0}, start)
    for name, value in {
        "VPP_ENVIRONMENT": "test",
        "VPP_DATABASE_URL": db_url,
        "VPP_MQTT_INGEST_PASSWORD": "ingest-secret-for-tests",
        "VPP_MQTT_SCHEDULER_PASSWORD": "scheduler-secret-for-tests",
        "VPP_MQTT_OPENADR_PASSWORD": VTN_BROKER_PASSWORD,
        "VPP_API_SIGNING_KEY": "api-signing-key-for-tests",
    }.items():
        monkeypatch.setenv(name, value)
    work = Path(tempfile.mkdtemp(prefix="vpp-oadr-runbook-"))
    work.chmod(0o755)  # Mosquitto, started as root, reads its files as its own user
    broker = EmbeddedBroker(work / "broker", dynamic_security_file=work / "auth" / DYNSEC_FILE)
    try:
        # The broker as deployed before the VEN exists: sites, services and the API's publisher account.
        run_broker_config("--out-dir", str(work / "auth"))
        broker.start()
        settings = vtn_settings(
            openadr_mqtt_url=f"mqtt://127.0.0.1:{broker.port}",
            mqtt_openadr_password=VTN_BROKER_PASSWORD,
            openadr_mqtt_first_delay_s=0.1,
            openadr_mqtt_max_delay_s=0.5,
        )
        hook, ack = _restart_hook(tmp_path)
        with serving(create_app(settings, database_url=db_url)) as api_url:
            env = {
                **os.environ,
                "PATH": f"{_vpp_shim(tmp_path)}:{os.environ['PATH']}",
                "VTN": api_url + BASE_PATH,
                "BROKER_AUTH": str(work / "auth"),
                "RESTART_BROKER": str(hook),
                "COLUMNS": "200",
            }
            output = _run_section(env, tmp_path, broker, ack, db_url, start)
    finally:
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)
    topic = next(line.split(" ", 1)[1] for line in output if line.startswith("subscribe "))
    assert re.fullmatch(r"openadr3/clients/ven-depot-a/vens/[\w-]+/events/\+", topic), topic
    [received] = [line for line in output if line.startswith(topic[:-1] + "update ")]
    assert '"operation": "UPDATE"' in received
    assert re.search(r'"eventName": "dr-2030-11-04-pc peak-cut depot-a r\d+"', received), received
    assert '"targets": ["site:depot-a"]' in received


def _run_section(
    env: dict[str, str], cwd: Path, broker: EmbeddedBroker, ack: Path, db_url: str, start: datetime
) -> list[str]:
    """Run the section; restart the broker when it asks, and once the VEN subscribes re-plan the event
    every second (a re-plan is an UPDATE) until `mosquitto_sub` has received one and the script ends."""
    replanning = threading.Event()
    finished = threading.Event()

    def replan() -> None:
        revision = 2
        while not finished.wait(1.0):
            scheduler_event(
                db_url, "peak_cut", "dr-2030-11-04-pc", {"depot-a": 40.0 - revision}, start, revision=revision
            )
            revision += 1

    process = subprocess.Popen(
        ["bash", "-c", _section_script()],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    worker = threading.Thread(target=replan, name="runbook-replan", daemon=True)
    try:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line.rstrip("\n"))
            if line.strip() == RESTART_MARK:
                broker.restart()
                ack.touch()
            elif line.startswith("subscribe ") and not replanning.is_set():
                replanning.set()
                worker.start()
        assert process.wait(timeout=180) == 0, "\n".join(output)
    finally:
        finished.set()
        if process.poll() is None:
            process.kill()
            process.wait()
        assert process.stdout is not None
        process.stdout.close()
        if worker.is_alive():
            worker.join(10)
    return output
