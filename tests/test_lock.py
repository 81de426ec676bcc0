"""tools/lock.py: the lock files in requirements/ match pyproject.toml, and an install
refuses them, saying why, once pyproject.toml's dependencies change without `make lock`.
And package-lock.json (the JavaScript lint tools) matches package.json."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from tools import lock

ROOT = Path(__file__).resolve().parents[1]


def pins(path: Path) -> dict[str, str]:
    """name -> pinned version, from a lock file (one `name==version` line per package)."""
    found = re.findall(r"^([A-Za-z0-9_.\-]+)==([^ ;\\]+)", path.read_text(), flags=re.M)
    return {name.lower().replace("_", "-"): version for name, version in found}


def direct(extra: bool) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    asked = list(project["dependencies"]) + (
        project["optional-dependencies"]["dev"] if extra else []
    )
    return [Requirement(text) for text in asked]


def test_the_committed_locks_fit_pyproject() -> None:
    assert lock.stale() == []
    assert lock.main(["check"]) == 0


@pytest.mark.parametrize(("name", "extra"), [("runtime", False), ("dev", True), ("oldest", True)])
def test_every_direct_dependency_is_pinned_within_its_range(name: str, extra: bool) -> None:
    pinned = pins(ROOT / "requirements" / f"{name}.txt")
    for requirement in direct(extra):
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        key = requirement.name.lower().replace("_", "-")
        assert key in pinned, f"{key} is not in {name}.txt"
        assert requirement.specifier.contains(pinned[key], prereleases=True), (key, pinned[key])
    text = (ROOT / "requirements" / f"{name}.txt").read_text()
    assert "--hash=sha256:" in text
    assert "://" not in text  # pins and hashes only: installs use the ordinary index


def test_the_oldest_lock_holds_each_floor() -> None:
    pinned = pins(ROOT / "requirements" / "oldest.txt")
    for requirement in direct(extra=True):
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        floors = [Version(s.version) for s in requirement.specifier if s.operator == ">="]
        if floors:
            assert Version(pinned[requirement.name.lower()]) == floors[0], requirement


def test_a_changed_dependency_makes_every_lock_stale(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    text = (ROOT / "pyproject.toml").read_text()
    pyproject.write_text(text.replace('"msgpack>=1.0,<2"', '"msgpack>=1.1,<2"'))
    assert pyproject.read_text() != text
    problems = lock.stale(pyproject, ROOT / "requirements")
    assert [p.split(" ")[0] for p in problems] == ["runtime.txt", "dev.txt", "oldest.txt"]
    assert all("was made for pyproject.toml" in p for p in problems)
    # Formatting and comments are not dependencies: they leave the locks fresh.
    pyproject.write_text(text.replace("[project]", "# a comment\n[project]"))
    assert lock.stale(pyproject, ROOT / "requirements") == []


def test_the_check_fails_with_the_remedy(tmp_path: Path) -> None:
    """`python tools/lock.py check` (what every install and CI run first) on a checkout whose
    pyproject.toml gained a dependency: exit 1 and the command that fixes it."""
    checkout = tmp_path / "checkout"
    (checkout / "tools").mkdir(parents=True)
    shutil.copy(ROOT / "tools" / "lock.py", checkout / "tools" / "lock.py")
    shutil.copytree(ROOT / "requirements", checkout / "requirements")
    text = (ROOT / "pyproject.toml").read_text()
    (checkout / "pyproject.toml").write_text(
        text.replace('"orjson>=3.9,<4",', '"orjson>=3.9,<4",\n    "attrs>=23",')
    )
    result = subprocess.run(
        [sys.executable, "tools/lock.py", "check"], cwd=checkout, capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "lock out of date: dev.txt was made for pyproject.toml" in result.stderr
    assert "run `make lock` and commit requirements/" in result.stderr


def test_the_npm_lock_fits_package_json() -> None:
    """`make lint` installs eslint and tsc with `npm ci` from package-lock.json (which refuses
    a lock that no longer fits package.json): dev tools only, each pinned exactly, and every
    locked package carries its integrity hash."""
    manifest = json.loads((ROOT / "package.json").read_text())
    locked = json.loads((ROOT / "package-lock.json").read_text())
    assert manifest["private"] is True
    assert "dependencies" not in manifest  # no runtime dependencies: the SDK has its own manifest
    asked = manifest["devDependencies"]
    for name, version in asked.items():
        assert re.fullmatch(r"\d+\.\d+\.\d+", version), f"{name} is not pinned exactly: {version}"
        assert locked["packages"][f"node_modules/{name}"]["version"] == version, name
    assert locked["lockfileVersion"] >= 3
    assert locked["packages"][""]["devDependencies"] == asked
    for path, package in locked["packages"].items():
        if path:
            assert package.get("integrity", "").startswith("sha512-"), path
