"""The lock files in requirements/: made from pyproject.toml by `make lock`, checked by every
install.

Each lock pins every package (direct and transitive) with its sha256 hashes, so
`pip install --require-hashes` installs exactly what was tested. Its header records a
fingerprint of what pyproject.toml asks for; an install refuses a lock whose fingerprint
no longer matches, so a dependency changed in pyproject.toml without `make lock` fails
loudly instead of installing something else.

    python tools/lock.py compile [--upgrade]   # (re)write the locks (needs `uv` on PATH)
    python tools/lock.py check                 # exit 1, saying why, if a lock is stale
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"
LOCKS = ROOT / "requirements"
FINGERPRINT = "# pyproject.toml fingerprint: "
PYTHON = "3.11"  # the oldest Python the project supports (requires-python)


@dataclass(frozen=True)
class Lock:
    """One lock file: which extras of the project it holds, and how versions are picked."""

    name: str
    extras: tuple[str, ...]
    resolution: str  # uv's --resolution: "highest", or "lowest-direct" for the floors
    purpose: str

    @property
    def path(self) -> Path:
        return LOCKS / f"{self.name}.txt"


LOCK_FILES = (
    Lock("runtime", (), "highest", "the engine alone (deployments)"),
    Lock("dev", ("dev",), "highest", "the engine, its tests and tools (make demo/test/lint)"),
    Lock("oldest", ("dev",), "lowest-direct", "every direct dependency at its floor (test-oldest)"),
)


def fingerprint(pyproject: Path = PYPROJECT) -> str:
    """A hash of everything in pyproject.toml that decides what a lock must hold."""
    data = tomllib.loads(pyproject.read_text())
    project = data["project"]
    asked = {
        "requires-python": project.get("requires-python", ""),
        "dependencies": sorted(project.get("dependencies", [])),
        "optional-dependencies": {
            extra: sorted(reqs) for extra, reqs in project.get("optional-dependencies", {}).items()
        },
        "build-system": sorted(data.get("build-system", {}).get("requires", [])),
        "locks": [(lock.name, lock.extras, lock.resolution) for lock in LOCK_FILES],
    }
    return hashlib.sha256(json.dumps(asked, sort_keys=True).encode()).hexdigest()[:16]


def stale(pyproject: Path = PYPROJECT, locks: Path = LOCKS) -> list[str]:
    """Why each lock does not fit pyproject.toml (empty when all do)."""
    expected = fingerprint(pyproject)
    problems = []
    for lock in LOCK_FILES:
        path = locks / lock.path.name
        if not path.exists():
            problems.append(f"{path.name} is missing")
            continue
        recorded = next(
            (line[len(FINGERPRINT) :].strip() for line in path.read_text().splitlines()
             if line.startswith(FINGERPRINT)),
            None,
        )  # fmt: skip
        if recorded != expected:
            problems.append(f"{path.name} was made for pyproject.toml {recorded}, not {expected}")
    return problems


def compile_locks(upgrade: bool) -> None:
    uv = shutil.which("uv")
    if uv is None:
        sys.exit("tools/lock.py compile needs uv on PATH (`make lock` installs it)")
    build = tomllib.loads(PYPROJECT.read_text()).get("build-system", {}).get("requires", [])
    LOCKS.mkdir(exist_ok=True)
    for lock in LOCK_FILES:
        if lock.resolution != "highest":
            # uv prefers the pins already in its output file; the floors must not inherit them.
            lock.path.unlink(missing_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            # The build backend is locked too: installs build the project without isolation.
            build_in = Path(tmp) / "build.in"
            build_in.write_text("\n".join(build) + "\n")
            command = [
                uv, "pip", "compile", "--quiet", "--generate-hashes", "--universal",
                "--python-version", PYTHON, "--resolution", lock.resolution,
                "--no-header", "--no-annotate" if lock.name == "oldest" else "--annotate",
                "--output-file", str(lock.path), str(PYPROJECT), str(build_in),
            ]  # fmt: skip
            for extra in lock.extras:
                command += ["--extra", extra]
            if upgrade:
                command.append("--upgrade")
            subprocess.run(command, check=True, cwd=ROOT)
        body = lock.path.read_text().replace(str(build_in), "build-system.requires")
        header = (
            f"# {lock.path.name}: {lock.purpose}. Made by `make lock` from pyproject.toml;\n"
            "# do not edit by hand. Installed with `pip install --require-hashes`.\n"
            f"{FINGERPRINT}{fingerprint()}\n"
        )
        lock.path.write_text(header + body)
        print(f"wrote {lock.path.relative_to(ROOT)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tools/lock.py", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    upgrade = sub.add_parser("compile", help="(re)write requirements/*.txt from pyproject.toml")
    upgrade.add_argument("--upgrade", action="store_true", help="move every pin to the newest")
    sub.add_parser("check", help="exit 1 if a lock does not fit pyproject.toml")
    args = parser.parse_args(argv)
    if args.command == "compile":
        compile_locks(args.upgrade)
        return 0
    problems = stale()
    for problem in problems:
        print(f"lock out of date: {problem}", file=sys.stderr)
    if problems:
        print(
            "pyproject.toml's dependencies changed since requirements/ was locked: "
            "run `make lock` and commit requirements/",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
