"""The Locust scenarios, run headless for a few seconds against the test stack."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

from devtools.stack import Stack, free_port

BIN = os.path.dirname(sys.executable)
# One of each behaviour, a few PvP players so that matches happen quickly.
USERS = [
    {"user_class_name": "PvPPlayer", "fixed_count": 4},
    {"user_class_name": "RankedPopulation", "fixed_count": 2},
    {"user_class_name": "Churner", "fixed_count": 1},
    {"user_class_name": "BadActor", "fixed_count": 1},
]


def test_locust_scenarios_run_without_failures(stack: Stack, tmp_path: Path) -> None:
    prefix = tmp_path / "run"
    done = subprocess.run(
        [
            f"{BIN}/locust",
            "-f",
            "loadtest",
            "--headless",
            "-u",
            "8",
            "-r",
            "8",
            "-t",
            "6s",
            "--stop-timeout",
            "5",
            "--host",
            stack.auth_url,
            "--game-urls",
            ",".join(stack.game_urls),
            "--think-time",
            "0.1",
            "--config-users",
            json.dumps(USERS),
            "--csv",
            str(prefix),
            "--only-summary",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "LOCUST_WS_TIMEOUT": "10"},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    with open(f"{prefix}_stats.csv") as f:
        stats = {(row["Type"], row["Name"]): row for row in csv.DictReader(f)}
    with open(f"{prefix}_failures.csv") as f:
        failures = list(csv.DictReader(f))
    assert failures == [], failures
    count = {key: int(row["Request Count"]) for key, row in stats.items()}
    assert count[("POST", "login")] == 8
    assert count[("WS", "connect")] >= 8
    assert count[("WS", "build deck")] == 2  # RankedPopulation
    assert count[("WS", "enqueue -> EnQueued")] > 0
    assert count[("WS", "whole cycle")] >= 4  # PvP players finished matches
    # A cycle cut off by the stop has its result step counted and its whole cycle not.
    assert count[("WS", "MatchFound -> battle result")] >= count[("WS", "whole cycle")]
    assert any(kind == "BAD" for kind, _ in count), "BadActor's rejections are reported"


def test_locust_distributed_master_and_one_worker(stack: Stack, tmp_path: Path) -> None:
    """Locust's master/worker mode (docs/operations.md#distributed-load): the master only
    coordinates and aggregates; the worker runs the users and reports back."""
    port = free_port()
    prefix = tmp_path / "dist"
    env = {
        **os.environ,
        "LOCUST_WS_TIMEOUT": "10",
        "LOCUST_GAME_URLS": ",".join(stack.game_urls),
        "LOCUST_THINK_TIME": "0.1",
    }
    common = [f"{BIN}/locust", "-f", "loadtest", "--host", stack.auth_url, "PvPPlayer"]
    master = subprocess.Popen(
        [
            *common,
            "--master",
            "--master-bind-host",
            "127.0.0.1",
            "--master-bind-port",
            str(port),
            "--expect-workers",
            "1",
            "--expect-workers-max-wait",
            "20",
            "--headless",
            "-u",
            "4",
            "-r",
            "4",
            "-t",
            "5s",
            "--stop-timeout",
            "5",
            "--csv",
            str(prefix),
            "--only-summary",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    worker = subprocess.Popen(
        [*common, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        master_out, _ = master.communicate(timeout=60)
        worker_out, _ = worker.communicate(timeout=20)  # a worker quits when the master does
    finally:
        for proc in (master, worker):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert master.returncode == 0, master_out[-3000:] + worker_out[-3000:]
    with open(f"{prefix}_stats.csv") as f:
        stats = {(row["Type"], row["Name"]): row for row in csv.DictReader(f)}
    with open(f"{prefix}_failures.csv") as f:
        assert list(csv.DictReader(f)) == []
    count = {key: int(row["Request Count"]) for key, row in stats.items()}
    assert count[("POST", "login")] == 4  # the worker's users, aggregated by the master
    assert count[("WS", "whole cycle")] >= 2
