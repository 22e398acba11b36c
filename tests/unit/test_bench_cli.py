"""`vpp bench` runs the harness from a source checkout and says so in one line anywhere else."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.cli import bench as bench_cli


def test_without_the_source_tree_vpp_bench_says_where_benchmarks_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A wheel install: services/ sits in site-packages, with no bench/ beside it.
    monkeypatch.setattr(bench_cli, "_SOURCE_ROOT", tmp_path)
    result = CliRunner().invoke(bench_cli.app, ["fuzz", "--examples", "1"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "vpp bench: benchmarks run from a source checkout (git clone, then `make bench`)."
    ]


def test_in_the_source_tree_the_harness_is_found() -> None:
    assert (bench_cli._SOURCE_ROOT / "bench" / "__init__.py").is_file()


def _vpp_bench(cwd: Path, *args: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
    """The installed console script, as `make bench` runs it: no PYTHONPATH, started outside the checkout."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [str(Path(sys.executable).with_name("vpp")), "bench", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout_s, check=False,
    )  # fmt: skip


def test_the_console_script_finds_the_harness_from_any_folder(tmp_path: Path) -> None:
    result = _vpp_bench(tmp_path, "fuzz", "--examples", "200", timeout_s=180)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "no input ended as processing_error" in result.stdout


@pytest.mark.benchmark
@pytest.mark.timeout(1_200)
def test_full_size_decoder_fuzz(tmp_path: Path) -> None:
    """`vpp bench fuzz` at its default 100,000 examples (minutes): `pytest -m benchmark` runs it."""
    result = _vpp_bench(tmp_path, "fuzz", timeout_s=1_100)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "no input ended as processing_error" in result.stdout


def test_vpp_bench_dr_with_a_lookahead_a_perfect_weather_forecast_and_the_ceiling_runs_and_says_so() -> None:
    # The README's `vpp bench dr --lookahead-slots N`, `--pv-day-index-known` and `--stochastic-ceiling`, on a
    # small fleet.
    args = ["dr", "--sites", "15", "--days", "1", "--regional-sites", "4", "--lookahead-slots", "12"]
    result = CliRunner().invoke(bench_cli.app, [*args, "--pv-day-index-known", "--stochastic-ceiling"])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "Re-plans look 12 slots past midnight." in said
    assert "PV forecast: each day's actual clear-sky index" in said
    assert "The stochastic programme also runs on the simulator's own load model." in said
    # Battery-only sites: re-planned, none, forecast ceiling, the stochastic programme and its ceiling.
    assert sum(line.startswith("│ battery ") for line in result.output.splitlines()) == 5
