"""Smoke tests of `cardgame bench` with tiny sizes: they run, print figures and their JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from devtools.stack import Stack
from servers.common.config import Settings

BIN = os.path.dirname(sys.executable)


def bench(settings: Settings, tmp_path: Path, *args: str) -> dict[str, Any]:
    env = {**os.environ, "REDIS_URL": settings.redis.url, "DATABASE_URL": settings.database.url}
    done = subprocess.run(
        [f"{BIN}/cardgame", "bench", *args, "--json", "--out", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(list(tmp_path.glob(f"{args[0]}-*.json"))) == 1
    return result


def test_bench_e2e_against_running_stack(stack: Stack, settings: Settings, tmp_path: Path) -> None:
    result = bench(
        settings,
        tmp_path,
        "e2e",
        "--auth",
        stack.auth_url,
        "--game",
        ",".join(stack.game_urls),
        "--clients",
        "6",
        "--duration",
        "1.5",
        "--warmup",
        "0.5",
    )
    # Closed-loop clients on the test stack's 50 ms tick may exceed the per-connection message
    # limit (20/s): that protective answer is allowed, any other error is not.
    assert result["connected"] == 6 and set(result["errors"]) <= {"RATE_LIMITED"}
    assert result["matches_completed"] > 0 and result["matches_per_s"] > 0
    stages = result["stages_ms"]
    assert stages["whole cycle"]["count"] > 0 and stages["whole cycle"]["p99"] is not None
    assert stages["login"]["count"] == 6 and stages["connect"]["count"] == 6
    assert {"auth", "game-1", "game-2", "load generator"} <= set(result["processes"])
    assert result["machine"]["cores"] >= 1


def test_bench_matchmaker_small_queue(settings: Settings, tmp_path: Path) -> None:
    result = bench(settings, tmp_path, "matchmaker", "--queued", "3000", "--batch", "256")
    [run] = result["runs"]
    assert run["queued"] == 3000 and run["batch_ms"]["p50"] > 0
    assert run["drain"]["players_paired_per_s"] > 0


def test_bench_connections_few_idle(settings: Settings, tmp_path: Path) -> None:
    result = bench(settings, tmp_path, "connections", "--idle", "30")
    assert [r["compression_offered"] for r in result["runs"]] == [False, True]
    assert all(r["idle"] == 30 for r in result["runs"])


def test_bench_matchmaking_reports_quality(settings: Settings, tmp_path: Path) -> None:
    result = bench(
        settings,
        tmp_path,
        "matchmaking",
        "--players",
        "60",
        "--arrival-rate",
        "60",
        "--duration",
        "1",
        "--servers",
        "2",
    )
    assert result["pairs"] > 0 and result["servers"] == 2
    assert (
        result["arrivals"]
        == 2 * result["pairs"]
        + result["still_waiting"]["players"]
        + result["arrivals_skipped_nobody_idle"]
    )
    assert result["wait_s"]["median"] is not None and result["rating_diff"]["p95"] is not None
    assert result["rating_diff"]["mean"] >= result["best_possible_mean_diff"]
