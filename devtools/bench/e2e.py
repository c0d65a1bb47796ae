"""`cardgame bench e2e`: C clients play PvP for S seconds against a stack; matches/s and latency.

Each client logs in once, holds one WebSocket and loops enqueue -> enqueued -> match_found ->
battle_result with no pause (closed loop; `--think` adds a random pause between matches). After a
warm-up, a window of `duration` seconds is measured: matches per second counts the battle results
that arrive inside it (two per match); stage latencies are those of the cycles begun inside it;
CPU seconds and peak RSS are read from every server process over the same window.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import websockets

from devtools.bench.procs import ProcessWatch, listening_pid, machine
from devtools.bench.report import format_stage, percentiles
from servers.common import protocol as p

STAGES = (
    "login",
    "connect",
    "enqueue -> EnQueued",
    "enqueue -> MatchFound",
    "MatchFound -> battle result",
    "whole cycle",
)


@dataclass
class Run:
    """Shared state of one benchmark run: the window and what was measured in it."""

    window_start: float = float("inf")
    window_end: float = float("inf")
    stopping: bool = False
    stages: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STAGES})
    results_in_window: int = 0
    cycles_in_window: int = 0
    errors: Counter[str] = field(default_factory=Counter)

    def in_window(self, t: float) -> bool:
        return self.window_start <= t < self.window_end


class BenchError(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class Client:
    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.ids = itertools.count(1)

    async def next_of(self, kind: type[p.ServerMessage], ref: str | None = None) -> Any:
        while True:
            message = p.decode_server(await self.ws.recv())
            if isinstance(message, p.Error) and (message.id is None or message.id == ref):
                raise BenchError(str(message.code))
            if isinstance(message, kind) and (ref is None or message.id == ref):
                return message

    async def settle(self, quiet: float = 1.0, most: float = 30.0) -> None:
        """After an error the session may still be queued or in a battle: read until its battle
        result arrives, or nothing came for `quiet` seconds."""
        deadline = time.monotonic() + most
        while time.monotonic() < deadline:
            try:
                async with asyncio.timeout(quiet):
                    message = p.decode_server(await self.ws.recv())
            except TimeoutError:
                return
            if isinstance(message, p.BattleResultMessage):
                return

    async def cycle(self, run: Run, timeout: float) -> None:
        started = time.perf_counter()
        ref = str(next(self.ids))
        async with asyncio.timeout(timeout):
            await self.ws.send(p.encode(p.Enqueue(id=ref)).decode())
            await self.next_of(p.Enqueued, ref)
            enqueued = time.perf_counter()
            found = await self.next_of(p.MatchFound)
            matched = time.perf_counter()
            while (await self.next_of(p.BattleResultMessage)).match_id != found.match_id:
                pass
        done = time.perf_counter()
        if run.in_window(done):
            run.results_in_window += 1
        if run.in_window(started):
            run.cycles_in_window += 1
            stages = run.stages
            stages["enqueue -> EnQueued"].append((enqueued - started) * 1000)
            stages["enqueue -> MatchFound"].append((matched - started) * 1000)
            stages["MatchFound -> battle result"].append((done - matched) * 1000)
            stages["whole cycle"].append((done - started) * 1000)


async def _login(http: httpx.AsyncClient, auth_url: str, name: str, run: Run) -> str:
    started = time.perf_counter()
    response = await http.post(f"{auth_url}/login/dev", json={"name": name})
    if response.status_code != 200:
        raise BenchError(response.json().get("error", {}).get("code", str(response.status_code)))
    run.stages["login"].append((time.perf_counter() - started) * 1000)
    return str(response.json()["access_token"])


async def _connect(game_url: str, token: str, run: Run, compression: bool) -> Client:
    started = time.perf_counter()
    ws = await websockets.connect(
        f"{game_url}?token={token}",
        max_size=2**24,
        open_timeout=30,
        compression="deflate" if compression else None,
    )
    welcome = p.decode_server(await ws.recv())
    if not isinstance(welcome, p.Welcome):
        await ws.close()
        raise BenchError(str(getattr(welcome, "code", "NO_WELCOME")))
    run.stages["connect"].append((time.perf_counter() - started) * 1000)
    return Client(ws)


async def drive(
    auth_url: str,
    game_urls: list[str],
    clients: int,
    duration: float,
    *,
    warmup: float = 2.0,
    timeout: float = 30.0,
    think: float = 0.0,
    compression: bool = True,
    watch: ProcessWatch | None = None,
) -> dict[str, Any]:
    """Log in and connect `clients` players, then measure `duration` seconds of PvP."""
    run = Run()
    tag = uuid.uuid4().hex[:6]
    limit = asyncio.Semaphore(100)

    async def setup(i: int) -> Client | None:
        async with limit:
            try:
                token = await _login(http, auth_url, f"bench-{tag}-{i}", run)
                return await _connect(game_urls[i % len(game_urls)], token, run, compression)
            except (BenchError, OSError, httpx.HTTPError, websockets.WebSocketException) as exc:
                run.errors[f"setup: {getattr(exc, 'code', type(exc).__name__)}"] += 1
                return None

    async with httpx.AsyncClient(timeout=timeout, limits=httpx.Limits(max_connections=100)) as http:
        ready = [c for c in await asyncio.gather(*(setup(i) for i in range(clients))) if c]

    async def play(client: Client) -> None:
        while not run.stopping:
            try:
                await client.cycle(run, timeout)
            except TimeoutError:
                if not run.stopping:  # at the end, the last players wait for opponents in vain
                    run.errors["timeout"] += 1
            except BenchError as exc:
                run.errors[exc.code] += 1
                await client.settle()  # do not hammer a session that is still busy
            except websockets.ConnectionClosed:
                run.errors["connection closed"] += 1
                return
            if think:
                await asyncio.sleep(random.uniform(0, think))

    loop_started = time.perf_counter()
    players = [asyncio.create_task(play(c)) for c in ready]
    await asyncio.sleep(warmup)
    run.window_start = time.perf_counter()
    run.window_end = run.window_start + duration
    if watch is not None:
        watch.start()
    await asyncio.sleep(duration)
    if watch is not None:
        watch.stop()
    run.stopping = True
    await asyncio.wait(players, timeout=5.0)  # let cycles in flight finish, briefly
    for task in players:
        task.cancel()
    await asyncio.gather(*players, return_exceptions=True)
    await asyncio.gather(*(c.ws.close() for c in ready), return_exceptions=True)
    return {
        "clients": clients,
        "connected": len(ready),
        "duration_s": duration,
        "warmup_s": warmup,
        "think_s": think,
        "compression": compression,
        "matches_completed": run.results_in_window // 2,
        "matches_per_s": round(run.results_in_window / 2 / duration, 1),
        "cycles_started_in_window": run.cycles_in_window,
        "stages_ms": {name: percentiles(values) for name, values in run.stages.items()},
        "errors": dict(run.errors),
        "wall_s": round(time.perf_counter() - loop_started, 1),
    }


def _port(url: str) -> int | None:
    return urlsplit(url).port


def bench_e2e(
    pods: int,
    clients: int,
    duration: float,
    *,
    warmup: float,
    think: float,
    tick: float | None,
    compression: bool,
    auth_url: str | None,
    game_urls: list[str] | None,
    profile: Path | None = None,
) -> dict[str, Any]:
    """Start a stack (or use the running one given by URLs) and drive it; with `profile`, the
    Python processes are profiled during the window (raw stacks written there)."""
    from devtools.stack import Stack
    from servers.common.config import load_settings

    watch = ProcessWatch(profile=profile)
    stack: Stack | None = None
    settings = load_settings()
    if auth_url is None:
        settings = settings.replace(redis={"namespace": f"bench-{uuid.uuid4().hex[:6]}"})
        if tick is not None:
            settings = settings.replace(match={"tick_interval": tick})
        stack = Stack(settings, pods=pods).start()
        auth_url, game_urls = stack.auth_url, stack.game_urls
        for proc in stack.procs:
            watch.add(proc.name, proc.popen.pid if proc.popen else None, python=True)
        watch.add("redis", listening_pid(_port(stack.settings.redis.url) or 6379))
        watch.add(
            "postgres",
            listening_pid(_port(stack.settings.database.url) or 5432),
            with_children=True,
        )
    else:
        for i, url in enumerate([auth_url, *(game_urls or [])]):
            watch.add(
                "auth" if i == 0 else f"game-{i}", listening_pid(_port(url) or 0), python=True
            )
    watch.add("load generator", os.getpid(), python=True)
    try:
        result = asyncio.run(
            drive(
                auth_url,
                list(game_urls or []),
                clients,
                duration,
                warmup=warmup,
                think=think,
                compression=compression,
                watch=watch,
            )
        )
    finally:
        if stack is not None:
            stack.stop()
    result.update(
        pods=pods if stack is not None else len(game_urls or []),
        tick_interval_s=settings.match.tick_interval if stack is not None else None,
        processes=watch.report(),
        profiles=watch.profiles,
        machine=machine(),
    )
    return result


def print_e2e(result: dict[str, Any]) -> None:
    print(
        f"pods {result['pods']}  clients {result['connected']}/{result['clients']}  "
        f"window {result['duration_s']} s  tick {result['tick_interval_s']} s"
    )
    print(
        f"matches completed   {result['matches_completed']}  ->  "
        f"{result['matches_per_s']} matches/s"
    )
    print("latency per stage:")
    for name, figures in result["stages_ms"].items():
        print(format_stage(name, figures))
    print(f"errors              {result['errors'] or 'none'}")
    for name, profile in result.get("profiles", {}).items():
        print(f"profile {name} ({profile.get('samples', 0)} samples), self %:")
        for function, pct in profile.get("self_pct", [])[:8]:
            print(f"  {pct:>5}  {function}")
    print("processes (measured window):")
    for name, figures in result["processes"].items():
        print(
            f"  {name:<16} cpu {figures['cpu_s']:>7} s ({figures['cpu_pct']:>5}%)"
            f"  peak rss {figures['peak_rss_mib']} MiB"
        )
