"""The commands people run: `cardgame demo`, `cardgame up`, `fake-client pvp`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import httpx

from devtools.stack import Stack, free_port
from servers.common.config import Settings

BIN = os.path.dirname(sys.executable)


def cli_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "REDIS_URL": settings.redis.url,
            "DATABASE_URL": settings.database.url,
            "CARDGAME_REDIS__NAMESPACE": settings.redis.namespace + "-cli",
        },
        **extra,
    )
    return env


def test_demo_plays_matches_across_two_pods(settings: Settings) -> None:
    done = subprocess.run(
        [f"{BIN}/cardgame", "demo", "--pods", "2", "--pairs", "6", "--json"],
        env=cli_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["matches_completed"] == 6 and summary["matches_failed"] == 0
    assert summary["players"] == 12 and summary["players_failed"] == 0
    assert summary["enqueue_to_battle_result_ms"]["p99"] is not None


def test_fake_client_pvp_against_running_stack(stack: Stack) -> None:
    done = subprocess.run(
        [
            f"{BIN}/fake-client",
            "pvp",
            "--auth",
            stack.auth_url,
            "--steam-sim",
            stack.steam_sim_url,
            "--game",
            ",".join(stack.game_urls),
            "--pairs",
            "4",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["matches_completed"] == 4
    assert "matches completed" in done.stderr


def test_fake_client_reports_failure_with_exit_code() -> None:
    port = free_port()  # nothing listens there
    done = subprocess.run(
        [
            f"{BIN}/fake-client",
            "pvp",
            "--auth",
            f"http://127.0.0.1:{port}",
            "--game",
            f"ws://127.0.0.1:{port}/ws",
            "--pairs",
            "1",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert json.loads(done.stdout.strip().splitlines()[-1])["players_failed"] == 2


def test_up_prints_endpoints_and_stops_cleanly_on_ctrl_c(settings: Settings) -> None:
    ports = {
        "CARDGAME_AUTH__PORT": str(free_port()),
        "CARDGAME_GAME__PORT": str(free_port()),
        "CARDGAME_MATCH__PORT": str(free_port()),
    }
    with subprocess.Popen(
        [f"{BIN}/cardgame", "up", "--pods", "1"],
        env=cli_env(settings, **ports),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            auth = proc.stdout.readline().strip()
            game = proc.stdout.readline().strip()
            assert auth == f"http://127.0.0.1:{ports['CARDGAME_AUTH__PORT']}"
            assert game == f"ws://127.0.0.1:{ports['CARDGAME_GAME__PORT']}/ws"
            assert httpx.get(f"{auth}/health").status_code == 200
            proc.send_signal(signal.SIGINT)
            assert proc.wait(30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    # `up` exited: its servers are gone (their ports refuse connections), within seconds.
    deadline = time.monotonic() + 10
    while True:
        try:
            httpx.get(f"{auth}/health", timeout=1)
        except httpx.ConnectError:
            break
        assert time.monotonic() < deadline, "the auth server still answers after `up` stopped"
        time.sleep(0.05)  # polling pace (bounded by the deadline)


# What the production image holds: the servers without devtools/ (see the Dockerfile).
WITHOUT_TOOLS = """
import sys
sys.modules["devtools"] = None  # importing it now fails as if it were not installed
from servers.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_without_the_development_tools_only_production_commands_remain() -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", WITHOUT_TOOLS, *args], capture_output=True, text=True, timeout=60
        )

    usage = run("--help")
    assert usage.returncode == 0
    assert "{serve,migrate,content,db,schema,openapi}" in usage.stdout
    assert run("up").returncode == 2 and "invalid choice: 'up'" in run("up").stderr
    refused = run("serve", "steam-sim")
    assert refused.returncode == 2 and "invalid choice: 'steam-sim'" in refused.stderr
    schema = run("schema")
    assert schema.returncode == 0 and json.loads(schema.stdout)["title"].startswith("cardgame")
