"""The README's "First calls as a city developer", run as written against `vpp up` with the demo's sites.

The bash blocks of that section are taken from README.md itself and run in one shell at the
repository's root, with `API` pointing at the platform and the database named for `vpp clients add`.
Every call that should succeed uses `curl -f`, so any 4xx/5xx stops the script; the answers are then
checked for what the README promises (the city sees today's aggregate, FY2023 is 46.26 %, CSV, the
403s of the role limits).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from services.cli.seed import DEMO_SITES
from tests.e2e.platform import running_platform

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SECTION = "## First calls as a city developer"


def readme_commands() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    section = text[start : end if end > 0 else len(text)]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.DOTALL)
    assert len(blocks) == 4, "the section has a setup block and one block per role"
    return "\n".join(blocks)


def _json_lines(output: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith(("{", "["))]


def test_readme_first_calls_work_on_the_demo(tmp_path: Path) -> None:
    script = "set -euo pipefail\n" + readme_commands().replace("curl -sf", "curl -sf -w '\\n'")
    # The demo's sites (the depot and five generated ones), with a short backlog: only today matters.
    with running_platform(tmp_path, sites=DEMO_SITES, backfill_hours=3.0) as platform:
        env = {k: v for k, v in os.environ.items() if not k.startswith("VPP_")}
        env.update(API=platform.base_url, VPP_DATABASE_URL=platform.db_url, VPP_ENVIRONMENT="development")
        done = subprocess.run(
            ["bash", "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=180, check=False
        )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    out = done.stdout
    bodies = _json_lines(out)
    reports = [b for b in bodies if isinstance(b, dict) and "ratio_provenance" in b]
    # Operator today, city today, city FY2023, city slot, site today.
    assert len(reports) == 5, out
    city_today = reports[1]
    assert city_today["region_id"] == "kawasaki"
    private_sites = city_today["private_sites"]
    assert isinstance(private_sites, int)
    assert private_sites >= 3
    fy2023 = reports[2]
    assert fy2023["ratio_pct"] == 46.26
    assert fy2023["ratio_provenance"] == "declared"
    assert str(city_today["period"]["start"]).endswith("+09:00")  # type: ignore[index]
    # The CSVs: the region's sufficiency (one row) and the site's 30-minute energy, in Japan time.
    sufficiency_csv = next(line for line in out.splitlines() if line.startswith("region_id,site_id,period_kind"))
    assert "ratio" in sufficiency_csv.split(",")
    energy_header = out.index("\nslot_start,") + 1
    energy = list(csv.DictReader(io.StringIO(out[energy_header:].split("\n\n")[0])))
    assert energy
    assert all(row["slot_start"].endswith("+09:00") for row in energy)
    assert "a private site, as the city: 403" in out
    assert "the region, as a site: 403" in out
