"""Finding promtool for the tests: on PATH, or unpacked into the virtualenv by `make tools`."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SKIP_REASON = (
    "promtool not found on PATH nor in the virtualenv: `make test` (`make tools`) "
    "unpacks it from Debian's prometheus package where apt-get is available"
)


def promtool() -> str:
    """The promtool binary, or skip the calling test saying how to get it."""
    found = shutil.which("promtool")
    if found:
        return found
    local = Path(sys.executable).parent / "promtool"
    if local.is_file():
        return str(local)
    pytest.skip(SKIP_REASON)


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args],
        input=stdin.decode() if stdin else None,
        capture_output=True,
        text=True,
        timeout=60,
    )
