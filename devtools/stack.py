"""Run a whole stack: Redis, PostgreSQL, the auth server and N pods (game + match server).

Used by `cardgame up`, `cardgame demo` and the end-to-end tests. Redis and PostgreSQL come from
the settings' URLs when they answer; otherwise private instances are started (see embedded.py).
Every server runs as its own process, exactly as in production.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import json
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from devtools.embedded import ServiceHandle, ensure_postgres, ensure_redis
from servers.common.config import Settings, to_env
from servers.common.content import migrate_and_load
from servers.common.tokens import write_key

log = logging.getLogger("cardgame.stack")

# Listening ports are picked below Linux's ephemeral range (32768-60999 by default): a port the
# kernel hands to an outgoing client connection between our check and the server's bind made
# a server fail with EADDRINUSE once tests opened many connections (seen once several auth
# instances and the Steam simulator ran in each test stack).
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


class StackError(RuntimeError):
    """A stack could not start; the message says which process and port, for people."""


@dataclass(frozen=True)
class HealthAnswer:
    healthy: bool  # our server, and it says it is healthy
    foreign: bool  # another program's server answers on our port
    other: str = ""  # the instance the foreign server reports, when it reports one


def judge_health(status: int, body: str, instance: str) -> HealthAnswer:
    """What one /health answer means to the stack `instance`. Every server of a stack reports
    the stack's instance id (see config.py), so any other answer, another stack's, an older
    build's or some other program's, comes from a server that holds a port we meant to use."""
    try:
        raw = json.loads(body)
    except ValueError:
        raw = None
    reported = raw.get("instance") if isinstance(raw, dict) else None
    if reported is None and status >= 500:
        # Perhaps ours, failing inside /health before it could say so: not proof of a
        # stranger, so keep waiting (the start-up timeout names the port if it persists).
        return HealthAnswer(False, False)
    if reported != instance:
        return HealthAnswer(False, True, reported if isinstance(reported, str) else "")
    return HealthAnswer(status == 200, False)


def foreign_message(name: str, port: int, answer: HealthAnswer) -> str:
    who = f"instance {answer.other}" if answer.other else "not a cardgame server of this stack"
    return f"port {port} ({name}) is taken: it is answered by another server ({who})"


def exit_description(returncode: int) -> str:
    """`code 1`, or `code -9 (killed by SIGKILL)` for a process ended by a signal."""
    if returncode < 0:
        try:
            return f"code {returncode} (killed by {signal.Signals(-returncode).name})"
        except ValueError:
            pass
    return f"code {returncode}"


def port_in_use(host: str, port: int) -> bool:
    """True when something listens on (host, port). SO_REUSEADDR as the servers bind, so a
    port left in TIME_WAIT by an earlier run does not count as taken."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host or "0.0.0.0", port))
        except OSError as exc:
            # Anything else (a host that is not ours) is left for the server to report.
            return exc.errno == errno.EADDRINUSE
    return False


@dataclass
class Proc:
    name: str
    args: list[str]
    env: dict[str, str]
    health_url: str
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None
    port: int = 0
    instance: str = ""  # the stack's instance id, which this server's /health must report

    def start(self) -> None:
        log_file = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            self.args,
            env=self.env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log_file.close()

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    def kill(self) -> None:
        """SIGKILL: a crash, with no chance to clean up."""
        if self.popen is not None and self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()

    def exit_report(self, lines: int = 20) -> str:
        """Who exited, how, and the end of its log (for a person reading stderr)."""
        tail = self.log_tail(lines)
        head = (
            f"{self.name} (port {self.port}) exited with {exit_description(self.returncode or 0)}"
        )
        if not tail:
            return f"{head}; its log {self.log_path} is empty"
        indented = "\n".join(f"    {line}" for line in tail.splitlines())
        return f"{head}; last lines of {self.log_path}:\n{indented}"

    def check_health(self, client: httpx.Client) -> bool:
        """One probe: True when healthy, False when not (yet); StackError when the port is
        answered by a server that is not this one."""
        try:
            response = client.get(self.health_url)
        except httpx.HTTPError:
            return False
        answer = judge_health(response.status_code, response.text, self.instance)
        if answer.foreign:
            raise StackError(foreign_message(self.name, self.port, answer))
        return answer.healthy

    def wait_healthy(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=1.0) as client:
            while time.monotonic() < deadline:
                if not self.alive():
                    raise StackError(self.exit_report())
                if self.check_health(client):
                    return
                time.sleep(0.05)
        raise StackError(f"{self.name} (port {self.port}) not healthy after {timeout:.0f} s")

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


@dataclass(frozen=True)
class Slot:
    """One server process a stack will run, and where it listens."""

    name: str
    kind: str  # auth, game, match or steam-sim (the `cardgame serve` argument)
    pod: str | None
    host: str
    port: int


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
    # Several auth instances (sharing keys, rate limits, sessions), the Steam Web API
    # simulator (development), and extra environment for every server process.
    auth_instances: int = 1
    auth_urls: list[str] = field(default_factory=list)
    steam_sim_url: str = ""
    extra_env: dict[str, str] = field(default_factory=dict)
    # Every server of this stack reports it on /health; see judge_health.
    instance_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    _reported: set[int] = field(default_factory=set, repr=False)  # pids
    _reported_services: set[int] = field(default_factory=set, repr=False)  # ids of handles

    def start(self, timeout: float = 30.0) -> Stack:
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, timeout: float) -> None:
        self.settings = self.settings.replace(instance_id=self.instance_id)
        slots = self._plan()
        if self.fixed_ports:
            # Before anything starts: a taken port is named at once, not after a server's
            # bind error surfaces in its log.
            taken = [
                f"port {slot.port} ({slot.name}) is already in use"
                for slot in slots
                if port_in_use(slot.host, slot.port)
            ]
            if taken:
                raise StackError("; ".join(taken))
        redis = ensure_redis(self.settings.redis.url or None)
        self.services.append(redis)
        db = ensure_postgres(self.settings.database.url or None)
        self.services.append(db)
        self.settings = self.settings.replace(redis={"url": redis.url}, database={"url": db.url})
        asyncio.run(migrate_and_load(db.url))
        self._prepare_auth()
        for slot in slots:
            if slot.kind == "steam-sim":
                self._add_steam_sim(slot)
            else:
                self._add(slot)
        for proc in self.procs:
            proc.start()
        self._wait_healthy(timeout)

    def _plan(self) -> list[Slot]:
        """Every server process, in start order (auth before the game servers that use its
        JWKS URL), with its port: the configured ones counted up, or free ones."""

        def port(base: int, index: int) -> int:
            return base + index if self.fixed_ports else free_port()

        s = self.settings
        slots: list[Slot] = []
        if s.env != "production" and not s.steam.web_api_url:
            slots.append(
                Slot("steam-sim", "steam-sim", None, "127.0.0.1", port(s.steam.sim_port, 0))
            )
        for i in range(self.auth_instances):
            slots.append(
                Slot(
                    "auth" if i == 0 else f"auth-{i + 1}",
                    "auth",
                    None,
                    s.auth.host,
                    port(s.auth.port, i),
                )
            )
        for i in range(1, self.pods + 1):
            slots.append(
                Slot(f"match-{i}", "match", f"pod-{i}", s.match.host, port(s.match.port, i - 1))
            )
            slots.append(
                Slot(f"game-{i}", "game", f"pod-{i}", s.game.host, port(s.game.port, i - 1))
            )
        return slots

    def _prepare_auth(self) -> None:
        """Signing keys every auth instance shares (a fresh key in this run's directory unless
        configured)."""
        auth = self.settings.auth
        if not auth.key_dir:
            key_dir = self.log_dir / "keys"
            write_key(key_dir, "stack-1", auth.jwt_algorithm)
            auth = dataclasses.replace(auth, key_dir=str(key_dir))
        self.settings = self.settings.replace(auth=dataclasses.asdict(auth))

    def _add_steam_sim(self, slot: Slot) -> None:
        """The Steam Web API simulator, which the auth servers then verify tickets with."""
        self.steam_sim_url = f"http://{slot.host}:{slot.port}"
        self.settings = self.settings.replace(steam={"web_api_url": self.steam_sim_url})
        self.procs.append(
            Proc(
                slot.name,
                [sys.executable, "-m", "servers.cli", "serve", "steam-sim"],
                self._env(
                    {
                        "CARDGAME_STEAM__SIM_PORT": str(slot.port),
                        "CARDGAME_STEAM__SIM_HOST": slot.host,
                    }
                ),
                f"{self.steam_sim_url}/health",
                self.log_dir / f"{slot.name}.log",
                port=slot.port,
                instance=self.instance_id,
            )
        )

    def _env(self, extra: dict[str, str]) -> dict[str, str]:
        env = dict(os.environ)
        env.update(to_env(self.settings))  # every field, so a Stack's settings are what runs
        env.update(self.extra_env)
        env.update(extra)
        return env

    def _add(self, slot: Slot) -> None:
        kind, host, port = slot.kind, slot.host, slot.port
        env = self._env({})
        env.update(
            {
                "REDIS_URL": self.settings.redis.url,
                "DATABASE_URL": self.settings.database.url,
                f"CARDGAME_{kind.upper()}__PORT": str(port),
                f"CARDGAME_{kind.upper()}__HOST": host,
                "PYTHONUNBUFFERED": "1",
            }
        )
        if slot.pod:
            env["POD_ID"] = slot.pod
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
        self.procs.append(
            Proc(
                slot.name,
                [sys.executable, "-m", "servers.cli", "serve", kind],
                env,
                f"{http}/health",
                self.log_dir / f"{slot.name}.log",
                port=port,
                instance=self.instance_id,
            )
        )

    def _wait_healthy(self, timeout: float) -> None:
        """Until every server answers as ours; a server that exits or a port answered by
        another server fails at once (StackError), without waiting for the timeout."""
        deadline = time.monotonic() + timeout
        pending = list(self.procs)
        with httpx.Client(timeout=1.0) as client:
            while pending:
                for proc in list(pending):
                    if not proc.alive():
                        raise StackError(f"during start-up: {proc.exit_report()}")
                    if proc.check_health(client):
                        pending.remove(proc)
                if pending and time.monotonic() > deadline:
                    names = ", ".join(f"{p.name} (port {p.port})" for p in pending)
                    raise StackError(
                        f"not healthy after {timeout:.0f} s: {names}\n"
                        + "\n".join(p.log_tail() for p in pending)
                    )
                if pending:
                    time.sleep(0.1)

    def newly_exited(self) -> list[Proc]:
        """Servers that exited since the last call (each reported once)."""
        gone = [
            p
            for p in self.procs
            if p.popen is not None and p.popen.pid not in self._reported and not p.alive()
        ]
        self._reported.update(p.popen.pid for p in gone if p.popen is not None)
        return gone

    def services_down(self) -> list[str]:
        """Reports of private Redis/PostgreSQL servers that died since the last call."""
        reports = []
        for service in self.services:
            report = service.exit_report()
            if report is not None and id(service) not in self._reported_services:
                self._reported_services.add(id(service))
                reports.append(report)
        return reports

    def proc(self, name: str) -> Proc:
        return next(p for p in self.procs if p.name == name)

    def endpoints(self) -> list[str]:
        return [self.auth_url, *self.game_urls] + (
            [self.steam_sim_url] if self.steam_sim_url else []
        )

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
