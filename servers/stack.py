"""Run a whole stack: Redis, PostgreSQL, the auth server and N pods (game + match server).

Used by `cardgame up`, `cardgame demo` and the end-to-end tests. Redis and PostgreSQL come from
the settings' URLs when they answer; otherwise private instances are started (see embedded.py).
Every server runs as its own process, exactly as in production.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import random
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
from servers.common.tokens import write_key

log = logging.getLogger("cardgame.stack")

# Written by `cardgame up` while it runs: the Redis and PostgreSQL URLs it uses (private ones
# by default), so that `cardgame-console` finds the stack without being told.
STATE_FILE = Path(tempfile.gettempdir()) / "cardgame-up.json"


# Listening ports are picked below Linux's ephemeral range (32768-60999 by default): a port the
# kernel hands to an outgoing client connection between our check and the server's bind made
# a server fail with EADDRINUSE once tests opened many connections (seen with issue 4's stacks).
_PORT_RANGE = (20000, 32000)
_handed_out: set[int] = set()


def free_port() -> int:
    """A port nothing listens on, not handed out before by this process."""
    for _ in range(200):
        port = random.randint(*_PORT_RANGE)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    with socket.socket() as s:  # the range is crowded: let the kernel choose
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
    # Issue 4: several auth instances (sharing keys, rate limits, sessions), the Steam Web API
    # simulator (development), and extra environment for every server process.
    auth_instances: int = 1
    auth_urls: list[str] = field(default_factory=list)
    steam_sim_url: str = ""
    extra_env: dict[str, str] = field(default_factory=dict)

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
        self._prepare_auth(port)
        for i in range(self.auth_instances):
            self._add("auth" if i == 0 else f"auth-{i + 1}", "auth", None,
                      self.settings.auth.host, port("auth", i))
        for i in range(1, self.pods + 1):
            pod = f"pod-{i}"
            self._add(f"match-{i}", "match", pod, self.settings.match.host, port("match", i - 1))
            self._add(f"game-{i}", "game", pod, self.settings.game.host, port("game", i - 1))
        for proc in self.procs:
            proc.start()
        self._wait_healthy(timeout)

    def _prepare_auth(self, port) -> None:  # type: ignore[no-untyped-def]
        """Signing keys every auth instance shares (a fresh key in this run's directory unless
        configured), the JWKS URL game servers verify with, and the Steam simulator."""
        auth = self.settings.auth
        if not auth.key_dir:
            key_dir = self.log_dir / "keys"
            write_key(key_dir, "stack-1", auth.jwt_algorithm)
            auth = dataclasses.replace(auth, key_dir=str(key_dir))
        if self.settings.env != "production" and not self.settings.steam.web_api_url:
            sim_port = port("steam", 0)
            self.steam_sim_url = f"http://127.0.0.1:{sim_port}"
            self.procs.append(Proc("steam-sim", [sys.executable, "-m", "servers.cli", "serve",
                                                 "steam-sim"],
                                   self._env({"CARDGAME_STEAM__SIM_PORT": str(sim_port),
                                              "CARDGAME_STEAM__SIM_HOST": "127.0.0.1"}),
                                   f"{self.steam_sim_url}/health",
                                   self.log_dir / "steam-sim.log"))
            self.settings = self.settings.replace(steam={"web_api_url": self.steam_sim_url})
        self.settings = self.settings.replace(auth=dataclasses.asdict(auth))

    def _env(self, extra: dict[str, str]) -> dict[str, str]:
        env = dict(os.environ)
        env.update(to_env(self.settings))  # every field, so a Stack's settings are what runs
        env.update(self.extra_env)
        env.update(extra)
        return env

    def _ports(self):  # type: ignore[no-untyped-def]
        bases = {"auth": self.settings.auth.port, "game": self.settings.game.port,
                 "match": self.settings.match.port, "steam": self.settings.steam.sim_port}

        def port(kind: str, index: int) -> int:
            return bases[kind] + index if self.fixed_ports else free_port()
        return port

    def _add(self, name: str, kind: str, pod: str | None, host: str, port: int) -> None:
        env = self._env({})
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
            self.auth_url = self.auth_url or http
            self.auth_urls.append(http)
        elif kind == "game":
            # Game servers hold no signing key: they verify with the auth server's JWKS.
            env["CARDGAME_AUTH__KEY_DIR"] = ""
            env["CARDGAME_AUTH__JWKS_URL"] = f"{self.auth_url}/.well-known/jwks.json"
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
        return [self.auth_url, *self.game_urls] + ([self.steam_sim_url] if self.steam_sim_url
                                                   else [])

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
