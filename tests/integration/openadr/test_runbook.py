"""The runbook's "Connect a VEN" section, run as written: its shell blocks in order, in bash, against a
served VTN with a scheduler peak-cut on record; the VEN it connects sees the event and is notified of
the event's revision."""

from __future__ import annotations

import importlib
import os
import re
import shlex
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import psycopg
import pytest

from services.api.main import create_app
from services.cli import clients_cmd
from services.cli.main import COMMANDS
from tests.integration.api.server import serving
from tests.integration.openadr.conftest import vtn_settings
from tests.integration.openadr.receiver import receiving
from tests.integration.openadr.spec_validation import BASE_PATH
from tests.integration.openadr.vtn_setup import scheduler_event
from vpp.domain.slots import JST
from vpp.postgres.registry import SiteRecord, register_site

pytestmark = pytest.mark.integration

RUNBOOK = Path(__file__).resolve().parents[3] / "docs" / "runbook.md"


def _section_script() -> str:
    text = RUNBOOK.read_text(encoding="utf-8")
    section = text.split("\n## Connect a VEN\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^```sh\n(.*?)^```", section, flags=re.S | re.M)
    assert len(blocks) >= 3, "the section's shell blocks are what this test runs"
    return "set -euo pipefail\n" + "\n".join(blocks)


def _vpp_shim(directory: Path) -> Path:
    # `vpp clients …` runs the very Typer app `vpp` mounts (checked below) without importing the whole
    # CLI per command, which costs seconds of CPU each on a loaded machine; anything else goes to `vpp`.
    real = Path(sys.executable).parent / "vpp"
    shim = directory / "vpp"
    clients = "import sys; from services.cli.clients_cmd import app; app(prog_name='vpp clients')"
    shim.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = clients ]; then shift; exec {shlex.quote(sys.executable)} -c {shlex.quote(clients)} "$@"; fi\n'
        f'exec {shlex.quote(str(real))} "$@"\n'
    )
    shim.chmod(0o755)
    return directory


def test_connect_a_ven_as_the_runbook_says(db_url: str, tmp_path: Path) -> None:
    module, attribute, _help = COMMANDS["clients"]
    assert getattr(importlib.import_module(module), attribute) is clients_cmd.app  # what `vpp clients` runs
    with psycopg.connect(db_url) as conn:
        register_site(conn, SiteRecord("depot-a", "Depot A", 35.6, 139.6), ())
        conn.commit()
    start = datetime(2030, 10, 1, 14, 0, tzinfo=JST)
    scheduler_event(db_url, "peak_cut", "dr-2030-10-01-pc", {"depot-a": 40.0}, start)
    with receiving() as receiver, serving(create_app(vtn_settings(), database_url=db_url)) as api_url:
        env = {
            **os.environ,
            "PATH": f"{_vpp_shim(tmp_path)}:{os.environ['PATH']}",
            "VTN": api_url + BASE_PATH,
            "CALLBACK_URL": receiver.url,
            "VPP_DATABASE_URL": db_url,
            "COLUMNS": "200",
        }
        done = subprocess.run(
            ["bash", "-c", _section_script()], env=env, capture_output=True, text=True, timeout=120, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert re.search(r"^subscription subscription-\w+$", done.stdout, flags=re.M), done.stdout
        assert "event dr-dr-2030-10-01-pc-depot-a dr-2030-10-01-pc peak-cut depot-a r1" in done.stdout
        assert re.search(r"ven-depot-a\s.*ven \(OpenADR\)\s.*depot-a", done.stdout), done.stdout

        scheduler_event(db_url, "peak_cut", "dr-2030-10-01-pc", {"depot-a": 30.0}, start, revision=2)
        receiver.wait(1, timeout_s=5)
    [(notification, auth)] = receiver.received
    assert auth == "Bearer token-the-ems-checks"
    assert (notification["operation"], notification["object"]["eventName"]) == (
        "UPDATE",
        "dr-2030-10-01-pc peak-cut depot-a r2",
    )
