"""The wheel is the product: the bench harness (bench/, outside the packages) is not in it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _build_wheel(tmp_path: Path) -> list[str]:
    # A copy of the tree, so the build's own files (build/, *.egg-info) never land in the checkout.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for package in ("vpp", "services", "bench"):
        shutil.copytree(ROOT / package, src / package, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path / "wheel"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "-q", "-w", str(out)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    (wheel,) = out.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def test_the_wheel_holds_the_product_and_no_bench_code(tmp_path: Path) -> None:
    names = _build_wheel(tmp_path)
    assert "services/cli/bench.py" in names  # the `vpp bench` group stays; it finds bench/ in a checkout
    assert "vpp/domain/planning/__init__.py" in names
    assert [n for n in names if n.startswith("bench/")] == []
    assert [n for n in names if n.startswith("services/cli/bench_") or "/soak_" in n] == []
    assert [n for n in names if n.startswith("tests/")] == []
