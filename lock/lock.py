"""The dependency lock: which file fits this interpreter, is it current, and how to remake it.

`make setup` installs from `lock/<target>.txt` (exact versions with hashes, for every extra the
Makefile installs) when one fits the running interpreter, so that a commit installs the same
packages on every machine and on every day. Each lock file records the SHA-256 of the inputs it
was made from (the dependency tables of `pyproject.toml`) in a header line; `check` compares that
with today's `pyproject.toml` without asking any registry, so CI goes red when someone edits the
dependencies and forgets `make lock`, and never because a package was released upstream.

    python lock/lock.py target         # path of the lock for this interpreter, exit 1 if none
    python lock/lock.py check          # exit 1 when a lock is missing or stale
    python lock/lock.py update --uv X  # remake every lock with the uv binary X (needs the network)

Standard library only: it runs before anything is installed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"
LOCK_DIR = ROOT / "lock"
# The extras `make setup` installs; the bundled servers (embedded) always come along so that the
# fallback to them is installed, and tested, wherever a lock applies.
EXTRAS = ("dev", "embedded")
HEADER = "# inputs-sha256: "


@dataclass(frozen=True)
class Target:
    """One interpreter and platform a lock is made for."""

    python: str  # "3.11"
    uv_platform: str  # uv's --python-platform

    @property
    def path(self) -> Path:
        return LOCK_DIR / f"py{self.python}-linux-x86_64.txt"


# CPython on glibc Linux x86_64 (manylinux_2_28: Debian 10+, Ubuntu 18.10+, RHEL 8+).
TARGETS = (
    Target("3.11", "x86_64-manylinux_2_28"),
    Target("3.12", "x86_64-manylinux_2_28"),
)


def inputs(pyproject: dict[str, object]) -> dict[str, object]:
    """The parts of pyproject.toml a lock depends on, plus the lock's own parameters."""
    project = pyproject["project"]
    assert isinstance(project, dict)
    build = pyproject.get("build-system", {})
    assert isinstance(build, dict)
    return {
        "requires-python": project.get("requires-python"),
        "dependencies": project.get("dependencies", []),
        "optional-dependencies": project.get("optional-dependencies", {}),
        "build-requires": build.get("requires", []),
        "extras": list(EXTRAS),
        "targets": [[t.python, t.uv_platform] for t in TARGETS],
    }


def inputs_digest(pyproject_text: str) -> str:
    canonical = json.dumps(inputs(tomllib.loads(pyproject_text)), sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def recorded_digest(lock_text: str) -> str | None:
    for line in lock_text.splitlines():
        if line.startswith(HEADER):
            return line[len(HEADER) :].strip()
    return None


def current_target() -> Target | None:
    """The target matching this interpreter, or None (then setup uses pyproject's ranges)."""
    if (
        sys.implementation.name != "cpython"
        or sys.platform != "linux"
        or platform.machine() != "x86_64"
        or platform.libc_ver()[0] != "glibc"
    ):
        return None
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    return next((t for t in TARGETS if t.python == python), None)


def stale_locks() -> list[str]:
    """Why each lock does not match pyproject.toml; empty when all are current."""
    digest = inputs_digest(PYPROJECT.read_text())
    problems = []
    for target in TARGETS:
        if not target.path.exists():
            problems.append(f"{target.path.relative_to(ROOT)} is missing")
        elif recorded_digest(target.path.read_text()) != digest:
            problems.append(
                f"{target.path.relative_to(ROOT)} was made from other dependencies "
                "than pyproject.toml lists now"
            )
    return problems


def update(uv: str) -> None:
    text = PYPROJECT.read_text()
    digest = inputs_digest(text)
    build_requires = inputs(tomllib.loads(text))["build-requires"]
    assert isinstance(build_requires, list)
    LOCK_DIR.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        # pip and the build backend are locked too: setup upgrades pip and builds the project
        # without build isolation, so neither is fetched unpinned.
        build_in = Path(tmp) / "build.in"
        build_in.write_text("\n".join(["pip", *build_requires]) + "\n")
        for target in TARGETS:
            out = Path(tmp) / target.path.name
            extras = [arg for extra in EXTRAS for arg in ("--extra", extra)]
            subprocess.run(
                [
                    uv,
                    "pip",
                    "compile",
                    "--quiet",
                    "--no-header",
                    "--generate-hashes",
                    "--python-version",
                    target.python,
                    "--python-platform",
                    target.uv_platform,
                    *extras,
                    "-o",
                    str(out),
                    str(PYPROJECT),
                    str(build_in),
                ],
                check=True,
                cwd=ROOT,
            )
            target.path.write_text(
                f"# Made by `make lock` for CPython {target.python} on {target.uv_platform};"
                " do not edit.\n"
                f"{HEADER}{digest}\n"
                # The temporary file's path would change every lock's text on every run.
                + out.read_text().replace(str(build_in), "pip and build-system.requires")
            )
            print(f"wrote {target.path.relative_to(ROOT)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lock/lock.py", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("target", help="print the lock file for this interpreter (exit 1 if none)")
    sub.add_parser("check", help="exit 1 when a lock is missing or older than pyproject.toml")
    u = sub.add_parser("update", help="remake every lock (needs uv and the network)")
    u.add_argument("--uv", default="uv", help="the uv binary")
    args = parser.parse_args(argv)
    if args.command == "target":
        target = current_target()
        if target is None:
            print(
                f"no lock for {platform.python_implementation()} "
                f"{platform.python_version()} on {sys.platform} {platform.machine()} "
                f"({' '.join(platform.libc_ver()) or 'no glibc'})",
                file=sys.stderr,
            )
            return 1
        print(target.path.relative_to(ROOT))
        return 0
    if args.command == "check":
        problems = stale_locks()
        for problem in problems:
            print(f"lock: {problem}: run `make lock`", file=sys.stderr)
        return 1 if problems else 0
    update(args.uv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
