"""The lock files pin what pyproject.toml asks for, the Dockerfile and `make` install from them, and the
environment running this suite is the locked one (so what CI tested is what a deploy installs)."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import distributions
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[3]
PROJECT = "kawasaki-vpp"


def pins(lock: Path) -> dict[str, str]:
    """name -> version for the pins that apply here (markers evaluated for this interpreter)."""
    found: dict[str, str] = {}
    for line in lock.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        requirement = Requirement(line)
        assert len(requirement.specifier) == 1, f"{lock.name}: not an exact pin: {line}"
        (spec,) = requirement.specifier
        assert spec.operator == "==", f"{lock.name}: not an exact pin: {line}"
        if requirement.marker is None or requirement.marker.evaluate(default_environment()):  # type: ignore[arg-type]
            found[canonicalize_name(requirement.name)] = spec.version
    return found


def declared(extra: str | None = None) -> list[Requirement]:
    """The requirements of the project or of one extra, with the project's own extras (`kawasaki-vpp[x]`) expanded."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    raw = project["dependencies"] if extra is None else project["optional-dependencies"][extra]
    found: list[Requirement] = []
    for requirement in map(Requirement, raw):
        if canonicalize_name(requirement.name) == PROJECT:
            for inner in sorted(requirement.extras):
                found.extend(declared(inner))
        else:
            found.append(requirement)
    return found


def test_every_declared_dependency_is_pinned_within_its_range() -> None:
    runtime = pins(ROOT / "requirements.lock")
    dev = pins(ROOT / "requirements-dev.lock")
    for lock, requirements in ((runtime, declared()), (dev, declared() + declared("dev"))):
        for requirement in requirements:
            name = canonicalize_name(requirement.name)
            assert name in lock, f"{requirement.name} is not in the lock: run `make lock`"
            assert requirement.specifier.contains(lock[name], prereleases=True), (
                f"{requirement.name}=={lock[name]} is outside {requirement.specifier}: run `make lock`"
            )


def test_a_production_install_has_no_embedded_servers() -> None:
    """pgserver and amqtt are the `embedded` extra: `make` installs them, the Dockerfile does not."""
    runtime = pins(ROOT / "requirements.lock")
    dev = pins(ROOT / "requirements-dev.lock")
    embedded = {canonicalize_name(r.name) for r in declared("embedded")}
    assert embedded == {"pgserver", "amqtt"}
    assert embedded.isdisjoint(runtime)
    assert embedded <= set(dev)


def test_the_runtime_lock_is_the_runtime_part_of_the_dev_lock() -> None:
    runtime = pins(ROOT / "requirements.lock")
    dev = pins(ROOT / "requirements-dev.lock")
    assert {name: dev.get(name) for name in runtime} == runtime


def test_the_dockerfile_and_make_install_from_the_locks() -> None:
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert re.search(r"^RUN pip install -r requirements\.lock$", dockerfile, re.M)
    assert re.search(r"^RUN pip install --no-deps -e \.", dockerfile, re.M), "the project itself must not resolve again"
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^LOCK := requirements-dev\.lock$", makefile, re.M)
    assert "pip install -q -r $(LOCK)" in makefile
    assert "pip install -q --no-deps -e ." in makefile


def test_this_environment_is_the_locked_one() -> None:
    installed: dict[str, str] = {
        canonicalize_name(d.metadata["Name"]): d.version
        for d in distributions()
        if canonicalize_name(d.metadata["Name"]) != PROJECT
    }
    locked = pins(ROOT / "requirements-dev.lock")
    differing = {
        name: (installed.get(name), version) for name, version in locked.items() if installed.get(name) != version
    }
    assert not differing, f"installed vs locked: {differing}; run `make deps`"
    unlocked = sorted(set(installed) - set(locked) - {"pip", "setuptools", "wheel"})
    assert not unlocked, f"installed but not locked (add them to pyproject.toml, then `make lock`): {unlocked}"
