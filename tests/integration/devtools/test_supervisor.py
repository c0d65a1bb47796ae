"""`cardgame up` as a supervisor: fail fast on a taken port or a server that exits while starting,
watch the servers afterwards, one state file per stack (the pure parts: tests/unit/devtools)."""

from __future__ import annotations

import http.server
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from devtools import stack_state
from devtools.stack import (
    Proc,
    StackError,
    free_port,
    port_in_use,
)
from servers.common.config import Settings

BIN = os.path.dirname(sys.executable)


def up_env(settings: Settings, tmp: Path, **extra: str) -> dict[str, str]:
    """The shared Redis and PostgreSQL of the run, a namespace of its own, free ports for every
    server, and TMPDIR so that the stack's state file lands in this test's directory."""
    env = dict(os.environ)
    namespace = f"{settings.redis.namespace}-up-{uuid.uuid4().hex[:6]}"
    env.update(
        {
            "REDIS_URL": settings.redis.url,
            "DATABASE_URL": settings.database.url,
            "CARDGAME_REDIS__NAMESPACE": namespace,
            "CARDGAME_AUTH__PORT": str(free_port()),
            "CARDGAME_GAME__PORT": str(free_port()),
            "CARDGAME_MATCH__PORT": str(free_port()),
            "CARDGAME_STEAM__SIM_PORT": str(free_port()),
            "TMPDIR": str(tmp),
        }
    )
    env.update(extra)
    return env


class Up:
    """A `cardgame up` subprocess whose output lines arrive on queues (read by threads), so a
    test waits for the line it needs instead of sleeping."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.env = env
        self.popen = subprocess.Popen(
            [f"{BIN}/cardgame", "up", "--pods", "1", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stdout: queue.Queue[str] = queue.Queue()
        self.stderr: queue.Queue[str] = queue.Queue()
        self.seen_stderr: list[str] = []
        self.pumps = [
            threading.Thread(target=self._pump, args=(stream, lines), daemon=True)
            for stream, lines in (
                (self.popen.stdout, self.stdout),
                (self.popen.stderr, self.stderr),
            )
        ]
        for pump in self.pumps:
            pump.start()

    @staticmethod
    def _pump(stream: object, lines: queue.Queue[str]) -> None:
        for line in stream:  # type: ignore[attr-defined]
            lines.put(line.rstrip("\n"))

    def endpoints(self, timeout: float = 60.0) -> list[str]:
        """auth, game, Steam simulator: what `cardgame up` prints once the stack is healthy."""
        return [self.stdout.get(timeout=timeout) for _ in range(3)]

    def wait_stderr(self, match: Callable[[str], bool], timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            line = self.stderr.get(timeout=max(0.0, deadline - time.monotonic()))
            self.seen_stderr.append(line)
            if match(line):
                return line

    def child(self, kind: str) -> psutil.Process:
        return next(
            p
            for p in psutil.Process(self.popen.pid).children()
            if p.cmdline()[-2:] == ["serve", kind]
        )

    def state_file(self) -> Path:
        return Path(self.env["TMPDIR"]) / f"cardgame-stacks-{os.getuid()}"

    def stop(self) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)
        try:
            return self.popen.wait(60)
        finally:
            if self.popen.poll() is None:
                self.popen.kill()
                self.popen.wait()
            for pump in self.pumps:  # they end at EOF, once the process is gone
                pump.join(10)
            for stream in (self.popen.stdout, self.popen.stderr):
                if stream is not None:
                    stream.close()


@pytest.fixture
def running_up(settings: Settings, tmp_path: Path) -> Iterator[Callable[..., Up]]:
    started: list[Up] = []

    def start(*args: str, **env: str) -> Up:
        up = Up(up_env(settings, tmp_path, **env), *args)
        started.append(up)
        return up

    yield start
    for up in started:
        up.stop()


def health(url: str) -> dict[str, object]:
    response = httpx.get(f"{url}/health", timeout=5)
    assert response.status_code == 200
    body: dict[str, object] = response.json()
    return body


def test_second_up_on_the_same_ports_fails_fast_and_leaves_the_first_alone(
    running_up: Callable[..., Up],
) -> None:
    first = running_up()
    auth, game, sim = first.endpoints()
    first.wait_stderr(lambda line: line.startswith("# stack "))
    instance = health(auth)["instance"]
    assert isinstance(instance, str) and len(instance) == 32
    assert health(sim)["instance"] == instance
    state = first.state_file() / f"{instance}.json"
    saved = stack_state.parse(state.read_text())
    assert saved is not None and saved.pid == first.popen.pid and saved.auth_url == auth
    assert saved.game_urls == [game]

    began = time.monotonic()
    second = subprocess.run(
        [f"{BIN}/cardgame", "up", "--pods", "1"],
        env=first.env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert time.monotonic() - began < 10
    assert second.returncode == 1, second.stderr
    port = first.env["CARDGAME_AUTH__PORT"]
    assert f"port {port} (auth) is already in use" in second.stderr
    assert f"port {first.env['CARDGAME_GAME__PORT']} (game-1) is already in use" in second.stderr
    assert "Traceback" not in second.stderr

    assert first.popen.poll() is None
    assert health(auth)["instance"] == instance
    assert state.exists()
    listed = subprocess.run(
        [f"{BIN}/cardgame", "stacks"], env=first.env, capture_output=True, text=True, timeout=30
    )
    assert listed.returncode == 0 and listed.stdout.startswith(instance), listed.stdout
    console = subprocess.run(
        [f"{BIN}/cardgame-console", "--list-stacks"],
        env=first.env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert console.returncode == 0 and console.stdout == listed.stdout

    assert first.stop() == 0
    assert not state.exists()


def test_a_server_that_exits_during_start_up_fails_up_naming_it(
    running_up: Callable[..., Up],
) -> None:
    # 192.0.2.1 (TEST-NET-1) is no address of this machine: the game server cannot bind.
    up = running_up(CARDGAME_GAME__HOST="192.0.2.1")
    assert up.popen.wait(60) == 1
    line = up.wait_stderr(lambda line: line.startswith("cardgame up:"))
    port = up.env["CARDGAME_GAME__PORT"]
    assert f"game-1 (port {port}) exited with code 1" in line
    assert not list(up.state_file().glob("*.json"))


def test_a_server_killed_after_start_up_stops_the_stack(running_up: Callable[..., Up]) -> None:
    up = running_up()
    auth, _, _ = up.endpoints()
    up.wait_stderr(lambda line: line.startswith("# stack "))
    up.child("game").kill()
    assert up.popen.wait(60) == 1
    port = up.env["CARDGAME_GAME__PORT"]
    up.wait_stderr(lambda line: f"game-1 (port {port}) exited with code -9" in line)
    up.wait_stderr(lambda line: "stopping the stack" in line)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{auth}/health")
    assert not list(up.state_file().glob("*.json"))


def test_a_private_redis_that_dies_stops_the_stack(running_up: Callable[..., Up]) -> None:
    # No URL: the stack starts a redis-server of its own. Fatal even with --keep-going.
    up = running_up("--keep-going", REDIS_URL="")
    up.endpoints()
    up.wait_stderr(lambda line: line.startswith("# stack "))
    redis = next(p for p in psutil.Process(up.popen.pid).children() if p.name() == "redis-server")
    redis.kill()
    assert up.popen.wait(60) == 1
    up.wait_stderr(lambda line: "private redis-server" in line and "exited with code -9" in line)
    up.wait_stderr(lambda line: "stopping the stack" in line)


def test_keep_going_reports_a_dead_server_and_keeps_the_rest(running_up: Callable[..., Up]) -> None:
    up = running_up("--keep-going")
    auth, game, _ = up.endpoints()
    up.wait_stderr(lambda line: line.startswith("# stack "))
    up.child("match").kill()
    port = up.env["CARDGAME_MATCH__PORT"]
    up.wait_stderr(lambda line: f"match-1 (port {port}) exited with code -9" in line)
    assert up.popen.poll() is None
    assert health(auth)["status"] == "ok"
    assert health(game.replace("ws://", "http://").removesuffix("/ws"))["status"] == "ok"
    assert len(list(up.state_file().glob("*.json"))) == 1
    assert up.stop() == 1  # a server died during the run


@pytest.mark.parametrize("command", [["up"], ["demo"], ["chaos"]])
@pytest.mark.parametrize("pods", ["0", "-1"])
def test_pods_below_one_is_a_usage_error(command: list[str], pods: str) -> None:
    done = subprocess.run(
        [f"{BIN}/cardgame", *command, "--pods", pods], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2
    assert "must be at least 1" in done.stderr and "usage:" in done.stderr


# ---------------------------------------------------------------- the server on our port
class _OtherServer(http.server.BaseHTTPRequestHandler):
    body = b'{"status": "ok", "instance": "someone-else"}'

    def do_GET(self) -> None:  # noqa: N802 (the http.server API)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def other_server() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _OtherServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_a_health_answer_from_another_server_fails_naming_the_port(
    other_server: int, tmp_path: Path
) -> None:
    proc = Proc(
        "auth",
        [],
        {},
        f"http://127.0.0.1:{other_server}/health",
        tmp_path / "auth.log",
        port=other_server,
        instance="mine",
    )
    with httpx.Client(timeout=1.0) as client, pytest.raises(StackError) as failed:
        proc.check_health(client)
    assert str(failed.value) == (
        f"port {other_server} (auth) is taken: it is answered by "
        "another server (instance someone-else)"
    )
    assert port_in_use("127.0.0.1", other_server)
