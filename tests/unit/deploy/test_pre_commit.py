"""The pre-commit hooks (`make hooks`) install and refuse a commit that `make lint` would refuse.

Run in a throwaway git repository holding the project's hook file and a link to this venv, so the test
never touches the checkout's own .git/hooks.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
VENV_BIN = Path(sys.executable).parent


def _git(repo: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy(ROOT / ".pre-commit-config.yaml", repo)
    (repo / ".venv").symlink_to(VENV_BIN.parent)
    env = {
        **os.environ,
        "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"),
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    assert _git(repo, "init", "-q", env=env).returncode == 0
    # What `make hooks` runs.
    installed = subprocess.run(
        [str(VENV_BIN / "pre-commit"), "install"], cwd=repo, env=env, capture_output=True, text=True, timeout=120
    )
    assert installed.returncode == 0, installed.stderr
    return repo, env


def test_hook_file_is_valid() -> None:
    checked = subprocess.run(
        [str(VENV_BIN / "pre-commit"), "validate-config", ".pre-commit-config.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_commit_with_a_lint_error_is_refused(repo: tuple[Path, dict[str, str]]) -> None:
    path, env = repo
    (path / ".gitignore").write_text(".venv\n")
    (path / "bad.py").write_text("import os\n")  # unused import: ruff F401
    _git(path, "add", "bad.py", ".gitignore", ".pre-commit-config.yaml", env=env)
    refused = _git(path, "commit", "-q", "-m", "bad", env=env)
    assert refused.returncode != 0
    assert "F401" in refused.stdout + refused.stderr
    assert _git(path, "rev-parse", "--verify", "HEAD", env=env).returncode != 0  # nothing was committed
