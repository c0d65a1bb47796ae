"""The match server's probes against real Redis: liveness (`/health/game-server`) follows the
seed's NUMSUB rule and nothing else; a Redis outage fails readiness (`/ready`) and shows in the
metrics, never liveness. Each test runs a real match server process with fast check intervals.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from devtools.embedded import find_redis_server, redis_answers
from devtools.stack import Proc, free_port
from servers.common.bus import connect_redis
from servers.common.config import Settings, to_env
from servers.common.keys import Keys
from tests.support.helpers import eventually

# Checks every 0.3 s, the rule fires after 4 of them: a second or so instead of 30 s.
FAILURES = 4


def _match_server(settings: Settings, redis_url: str, log_dir: Path) -> Proc:
    port = free_port()
    fast = settings.replace(
        redis={"url": redis_url, "namespace": f"{settings.redis.namespace}-h{time.time_ns()}"},
        match={"port": port, "numsub_check_interval": 0.3, "numsub_failures": FAILURES},
        pods={"heartbeat_interval": 0.1, "heartbeat_ttl": 1.0},
        instance_id=f"health-{port}",
    )
    env = {**os.environ, **to_env(fast), "REDIS_URL": redis_url, "POD_ID": "pod-h"}
    proc = Proc(
        "match-h",
        [sys.executable, "-m", "servers.cli", "serve", "match"],
        env,
        f"http://127.0.0.1:{port}/health",
        log_dir / f"match-{port}.log",
        port=port,
        instance=fast.instance_id,
    )
    proc.start()
    proc.wait_healthy(20)
    return proc


class Match:
    def __init__(self, proc: Proc, keys: Keys) -> None:
        self.proc, self.keys = proc, keys
        self.url = f"http://127.0.0.1:{proc.port}"
        self.http = httpx.AsyncClient(timeout=3)

    async def liveness(self) -> tuple[int, dict[str, object]]:
        response = await self.http.get(f"{self.url}/health/game-server")
        return response.status_code, response.json()

    async def ready(self) -> int:
        return (await self.http.get(f"{self.url}/ready")).status_code

    async def metric(self, name: str) -> float:
        text = (await self.http.get(f"{self.url}/metrics")).text
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise AssertionError(f"{name} not exposed")


@pytest.fixture
def log_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="cardgame-health-") as path:
        yield Path(path)


def _redis_server(argv: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[list[str], list[subprocess.Popen[bytes]]]]:
    """A private redis-server the test may kill, stop and restart on the same port."""
    port = free_port()
    argv = [find_redis_server(), "--port", str(port), "--bind", "127.0.0.1"]
    argv += ["--save", "", "--appendonly", "no", "--dir", str(tmp_path)]
    procs = [_redis_server(argv)]
    try:
        yield argv, procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.kill()
                proc.wait()


async def _subscribed(url: str, channel: str) -> aioredis.client.PubSub:
    """A stand-in game server: what the rule counts is a subscriber on battle:request."""
    client = connect_redis(url)
    pubsub = client.pubsub()
    await pubsub.subscribe(channel)
    return pubsub


@pytest.fixture
async def matches() -> AsyncIterator[list[Match]]:
    made: list[Match] = []
    yield made
    for match in made:
        await match.http.aclose()
        match.proc.stop()


async def test_liveness_fails_only_after_consecutive_numsub_failures(
    settings: Settings, log_dir: Path, matches: list[Match]
) -> None:
    url = settings.redis.url
    proc = _match_server(settings, url, log_dir)
    match = Match(proc, Keys(proc.env["CARDGAME_REDIS__NAMESPACE"]))
    matches.append(match)
    pubsub = await _subscribed(url, match.keys.battle_request)

    async def seen() -> bool:
        status, body = await match.liveness()
        return status == 200 and body["battle_request_subscribers"] == 1

    await eventually(seen, timeout=10)
    await pubsub.aclose()  # the only "game server" goes away
    samples: list[tuple[int, int]] = []
    deadline = time.monotonic() + 15
    while not samples or samples[-1][1] != 500:
        assert time.monotonic() < deadline, samples
        status, body = await match.liveness()
        samples.append((int(body["numsub_failures"]), status))  # type: ignore[call-overload]
        await asyncio.sleep(0.02)  # sampling pace (bounded by the deadline)
    assert all(status == 200 for failures, status in samples if failures < FAILURES), samples
    assert all(status == 500 for failures, status in samples if failures >= FAILURES), samples
    # Probes that saw no subscriber yet did not fail: 1 to FAILURES - 1 checks in a row.
    assert {f for f, s in samples if 0 < f < FAILURES and s == 200}, samples
    assert await match.ready() == 503  # maintenance: the liveness rule emptied the queues

    pubsub = await _subscribed(url, match.keys.battle_request)  # a game server is back

    async def recovered() -> bool:
        status, body = await match.liveness()
        return status == 200 and body["numsub_failures"] == 0 and await match.ready() == 200

    await eventually(recovered, timeout=10)
    await pubsub.aclose()


async def test_redis_outage_fails_readiness_never_liveness(
    settings: Settings,
    log_dir: Path,
    matches: list[Match],
    own_redis: tuple[list[str], list[subprocess.Popen[bytes]]],
) -> None:
    argv, procs = own_redis
    url = f"redis://127.0.0.1:{argv[2]}/0"

    async def redis_up() -> bool:
        return redis_answers(url, 0.2)

    await eventually(redis_up, timeout=10)
    proc = _match_server(settings, url, log_dir)
    match = Match(proc, Keys(proc.env["CARDGAME_REDIS__NAMESPACE"]))
    matches.append(match)
    pubsub = await _subscribed(url, match.keys.battle_request)

    async def healthy() -> bool:
        status, _ = await match.liveness()
        return status == 200 and await match.ready() == 200

    await eventually(healthy, timeout=10)
    assert await match.metric("cardgame_match_redis_up") == 1.0
    failed_before = await match.metric("cardgame_watchdog_check_failures_total")

    async def outage_holds_liveness(checks: int) -> None:
        """Until the watchdog has failed `checks` times more (over FAILURES NUMSUB periods),
        every liveness probe passes and readiness fails once it has seen the outage."""
        target = failed_before + checks
        while (failed := await match.metric("cardgame_watchdog_check_failures_total")) < target:
            status, body = await match.liveness()
            assert status == 200, body
            if failed > failed_before:
                assert await match.ready() == 503
            await asyncio.sleep(0.05)  # sampling pace until the counted checks are reached
        assert await match.metric("cardgame_match_redis_up") == 0.0

    # 1. Redis dies (connections refused), long enough for the NUMSUB rule to fire twice over.
    procs[0].kill()
    procs[0].wait()
    await pubsub.aclose()
    await outage_holds_liveness(checks=2 * FAILURES * 3)
    status, body = await match.liveness()
    assert status == 200 and body["redis_ok"] is False

    # Redis returns (empty, on the same port) and a game server subscribes again.
    procs.append(_redis_server(argv))
    await eventually(redis_up, timeout=10)
    pubsub = await _subscribed(url, match.keys.battle_request)
    await eventually(healthy, timeout=10)
    assert await match.metric("cardgame_match_redis_up") == 1.0

    # 2. Redis hangs (SIGSTOP: connections accepted, never answered): /ready must not hang.
    failed_before = await match.metric("cardgame_watchdog_check_failures_total")
    procs[-1].send_signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        assert await match.ready() == 503
        assert time.monotonic() - started < 2.0
        # Nothing progresses while Redis hangs, so there is no event to wait for: sample
        # liveness over more than FAILURES check periods instead.
        for _ in range(3 * FAILURES):
            status, body = await match.liveness()
            assert status == 200, body
            await asyncio.sleep(0.1)  # on purpose: samples spread over the check periods
        assert await match.metric("cardgame_match_redis_up") == 0.0
    finally:
        procs[-1].send_signal(signal.SIGCONT)
    await eventually(healthy, timeout=15)
    await pubsub.aclose()
    assert proc.alive()
