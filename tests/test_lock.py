"""requirements.lock is the tested environment: it satisfies pyproject's ranges, and `make` installed it."""

from __future__ import annotations

import tomllib
from importlib import metadata

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import ROOT

# torch is installed by the Makefile before the lock (its CPU and CUDA builds differ), so it is not pinned there.
NOT_LOCKED = {"torch"}


def lock_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"requirements.lock: {line!r} is not pinned with =="
            pins[canonicalize_name(name)] = version
    return pins


def project_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]]


def test_lock_satisfies_pyproject():
    """Editing a range in pyproject.toml without `make lock` fails here, not on a fresh machine."""
    pins = lock_pins()
    for req in project_requirements():
        name = canonicalize_name(req.name)
        if name in NOT_LOCKED:
            continue
        assert name in pins, f"{req.name} (pyproject.toml) is missing from requirements.lock: run `make lock`"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"requirements.lock pins {req.name}=={pins[name]}, outside pyproject's {req}: run `make lock`")
    assert "torch" not in pins and canonicalize_name("sqlalchemy") in pins
    assert pins["sqlalchemy"].startswith("2.0."), "Prefect 3.8's scheduler needs SQLAlchemy 2.0"


def test_installed_environment_is_the_lock():
    """The environment the tests run in is exactly the lock (what `make venv` installs)."""
    wrong = {}
    for name, version in lock_pins().items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = None
        if installed != version:
            wrong[name] = (version, installed)
    assert not wrong, f"locked vs installed: {wrong} -- run `make venv`"
