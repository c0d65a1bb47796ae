"""Run a whole stack: Redis, PostgreSQL, the auth server and N pods (game + match server).

Used by `cardgame up`, `cardgame demo` and the end-to-end tests. Redis and PostgreSQL come from
the settings' URLs when they answer; otherwise private instances are started (see embedded.py).
Every server runs as its own process, exactly as in production.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from servers.common.config import Settings, to_env
from servers.common.db import migrate
from servers.common.embedded import ServiceHandle, ensure_postgres, ensure_redis

log = logging.getLogger("cardgame.stack")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Proc:
    name: str
    args: list[str]
    env: dict[str, str]
    health_url: str
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log_file = self.log_path.open("ab")
        self.popen = subprocess.Popen(self.args, env=self.env, stdout=log_file,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        log_file.close()

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL: a crash, with no chance to clean up."""
        if self.popen is not None and self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()

    def wait_healthy(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited:\n{self.log_tail()}")
            try:
                if httpx.get(self.health_url, timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} not healthy after {timeout:.0f} s")

    def stop(self, timeout: float = 10.0) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class Stack:
    settings: Settings
    pods: int = 1
    fixed_ports: bool = False  # True: the configured ports; False: free ones (no clashes)
    log_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="cardgame-logs-")))
    procs: list[Proc] = field(default_factory=list)
    services: list[ServiceHandle] = field(default_factory=list)
    auth_url: str = ""
    game_urls: list[str] = field(default_factory=list)
    match_urls: list[str] = field(default_factory=list)

    def start(self, timeout: float = 30.0) -> Stack:
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, timeout: float) -> None:
        redis = ensure_redis(self.settings.redis.url or None)
        self.services.append(redis)
        db = ensure_postgres(self.settings.database.url or None)
        self.services.append(db)
        self.settings = self.settings.replace(redis={"url": redis.url},
                                              database={"url": db.url})
        asyncio.run(migrate(db.url))
        port = self._ports()
        self._add("auth", "auth", None, self.settings.auth.host, port("auth", 0))
        for i in range(1, self.pods + 1):
            pod = f"pod-{i}"
            self._add(f"match-{i}", "match", pod, self.settings.match.host, port("match", i - 1))
            self._add(f"game-{i}", "game", pod, self.settings.game.host, port("game", i - 1))
        for proc in self.procs:
            proc.start()
        self._wait_healthy(timeout)

    def _ports(self):  # type: ignore[no-untyped-def]
        bases = {"auth": self.settings.auth.port, "game": self.settings.game.port,
                 "match": self.settings.match.port}

        def port(kind: str, index: int) -> int:
            return bases[kind] + index if self.fixed_ports else free_port()
        return port

    def _add(self, name: str, kind: str, pod: str | None, host: str, port: int) -> None:
        env = dict(os.environ)
        env.update(to_env(self.settings))
        env.update({
            "REDIS_URL": self.settings.redis.url,
            "DATABASE_URL": self.settings.database.url,
            f"CARDGAME_{kind.upper()}__PORT": str(port),
            f"CARDGAME_{kind.upper()}__HOST": host,
            "PYTHONUNBUFFERED": "1",
        })
        if pod:
            env["POD_ID"] = pod
        url_host = "127.0.0.1" if host in ("0.0.0.0", "") else host
        http = f"http://{url_host}:{port}"
        if kind == "auth":
            self.auth_url = http
        elif kind == "game":
            self.game_urls.append(f"ws://{url_host}:{port}/ws")
        else:
            self.match_urls.append(http)
        self.procs.append(Proc(name, [sys.executable, "-m", "servers.cli", "serve", kind], env,
                               f"{http}/health", self.log_dir / f"{name}.log"))

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pending = list(self.procs)
        with httpx.Client(timeout=1.0) as client:
            while pending:
                for proc in list(pending):
                    if not proc.alive():
                        raise RuntimeError(f"{proc.name} exited during start-up:\n"
                                           f"{proc.log_tail()}")
                    try:
                        if client.get(proc.health_url).status_code == 200:
                            pending.remove(proc)
                    except httpx.HTTPError:
                        pass
                if pending and time.monotonic() > deadline:
                    names = ", ".join(p.name for p in pending)
                    raise RuntimeError(f"not healthy after {timeout:.0f} s: {names}\n"
                                       + "\n".join(p.log_tail() for p in pending))
                if pending:
                    time.sleep(0.1)

    def proc(self, name: str) -> Proc:
        return next(p for p in self.procs if p.name == name)

    def endpoints(self) -> list[str]:
        return [self.auth_url, *self.game_urls]

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.alive() and proc.popen is not None:
                proc.popen.send_signal(signal.SIGTERM)
        for proc in reversed(self.procs):
            proc.stop()
        for service in reversed(self.services):
            service.stop()
        self.services.clear()

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
