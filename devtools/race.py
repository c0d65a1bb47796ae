"""`cardgame race`: the two-pods-two-modes race probe.

Per attempt a fresh player opens two sockets at the same moment with the same access token, one
to pod-1 and one to pod-2, and sends on them, concurrently, `enqueue normal` and `enqueue ranked`
(in a fifth of the attempts `enqueue normal` twice, in another fifth `start_pve` and `enqueue
normal`; in half of them pod-2's socket opens up to 30 ms later, to sweep the race window). Once
both answered (a reply, an error or a close frame) Redis is read in one atomic snapshot: a
**double queue** is the player in the queue or in-flight set of two modes. Then every socket
still open sends `dequeue`, all are closed, and once the player's tickets settle (polled, bounded
by the reconnect grace plus a margin) a **ghost** is any ticket of the player still in a queue
or in-flight set, or a player record still saying `queued`.

The probe starts its own stack with a short reconnect grace (`--grace`), so that a socket closed
while queued settles quickly, and runs several attempts at a time (each its own player). It
reports double queues, ghosts, overlapping recorded matches and what each socket was told, and
exits 1 when any of them is found.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import redis.asyncio as aioredis
import websockets

from devtools import invariants as inv
from devtools.adversary import ignore_orphaned_replies, outcome_of
from devtools.stack import Stack
from fake_client.client import GameClient, ProtocolViolation, login_dev
from servers.common import protocol as p
from servers.common.bus import connect_redis
from servers.common.config import Settings
from servers.common.keys import Keys
from servers.common.protocol import ServerError

# The pairs of actions sent at once, with their weights.
PAIRS: tuple[tuple[tuple[str, str], float], ...] = (
    (("normal", "ranked"), 0.6),
    (("normal", "normal"), 0.2),
    (("pve", "normal"), 0.2),
)
SETTLE_MARGIN = 3.0  # seconds past the reconnect grace a player's tickets may take to settle
# In half the attempts pod-2's socket opens up to this many seconds after pod-1's (both
# enqueues are still sent as soon as each socket is open), so that attempts sweep the window
# where one enqueue is in flight while the other socket takes the player over.
STAGGER_MAX = 0.03
DOUBLE_QUEUE_LOOKS = 3  # snapshots per attempt once both sockets were answered
LOOK_INTERVAL = 0.05


@dataclass
class Probe:
    """What every attempt shares."""

    auth_url: str
    game_urls: list[str]
    redis: aioredis.Redis
    keys: Keys
    http: httpx.AsyncClient
    settle_timeout: float
    tag: str
    rng: random.Random


@dataclass
class Attempt:
    player_id: str
    pair: str
    double_queue: list[inv.Finding] = field(default_factory=list)
    ghosts: list[inv.Finding] = field(default_factory=list)
    told: Counter[str] = field(default_factory=Counter)
    protocol_violations: list[str] = field(default_factory=list)
    seconds: float = 0.0
    staggered: bool = False  # pod-2's socket opened a little after pod-1's


@dataclass
class RaceReport:
    pods: int
    attempts: int
    seconds: float
    per_attempt_p50_ms: float
    per_attempt_max_ms: float
    double_queues: int
    ghosts: int
    double_activity: int
    protocol_violations: int
    pairs: dict[str, int]
    staggered: int
    told: dict[str, dict[str, int]]  # pair -> "socket step: outcome" -> count
    details: list[str]

    @property
    def failed(self) -> bool:
        return bool(self.double_queues or self.ghosts or self.double_activity)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def player_findings(view: inv.TicketView, player_id: str) -> list[inv.Finding]:
    """A ghost of the race probe: any ticket of the player, or a record still saying queued."""
    found = [f for f in inv.leftover_findings(view) if f.player_id == player_id]
    record = view.records.get(player_id) or {}
    if record.get("act") == "queued":
        found.append(
            inv.Finding("ghost_tickets", player_id, f"record queued in {record.get('mode')!r}")
        )
    return [inv.Finding("ghost_tickets", f.player_id, f.detail) for f in found]


async def _connect(
    probe: Probe, url: str, token: str, slot: str, attempt: Attempt, delay: float = 0.0
) -> GameClient | None:
    if delay:
        await asyncio.sleep(delay)  # part of the attempt: sweeps the window between the opens
    try:
        client = await GameClient.connect(url, token, open_timeout=5)
    except ProtocolViolation as exc:
        attempt.protocol_violations.append(f"{slot}: {exc}")
        return None
    except (OSError, websockets.WebSocketException, ServerError, TimeoutError, EOFError) as exc:
        attempt.told[f"{slot} connect: {outcome_of(exc)}"] += 1
        return None
    attempt.told[f"{slot} welcome: {client.welcome.state}"] += 1
    return client


async def _act(client: GameClient | None, action: str, slot: str, attempt: Attempt) -> None:
    if client is None:
        return
    message: p.ClientMessage = (
        p.StartPve(difficulty="easy") if action == "pve" else p.Enqueue(mode=action)
    )
    try:
        reply: object = await client.request(message, timeout=8)
    except (ServerError, ConnectionError, TimeoutError, websockets.WebSocketException) as exc:
        reply = exc
    attempt.told[f"{slot} {action}: {outcome_of(reply)}"] += 1


async def _dequeue(client: GameClient, slot: str, attempt: Attempt) -> None:
    if client._reader.done():  # noqa: SLF001  the server closed it
        return
    try:
        reply: object = await client.request(p.Dequeue(), timeout=8)
    except (ServerError, ConnectionError, TimeoutError, websockets.WebSocketException) as exc:
        reply = exc
    attempt.told[f"{slot} dequeue: {outcome_of(reply)}"] += 1


async def _close(client: GameClient, slot: str, attempt: Attempt) -> None:
    try:
        await asyncio.wait_for(client.close(), 5)
    except (TimeoutError, OSError, websockets.WebSocketException):
        pass
    attempt.told[f"{slot} close: {client.ws.close_code}"] += 1


async def _look_for_double(probe: Probe, attempt: Attempt) -> None:
    for look in range(DOUBLE_QUEUE_LOOKS):
        view = await inv.read_view(probe.redis, probe.keys, [attempt.player_id])
        attempt.double_queue = [
            f for f in inv.double_queued(view) if f.player_id == attempt.player_id
        ]
        if attempt.double_queue or look == DOUBLE_QUEUE_LOOKS - 1:
            return
        await asyncio.sleep(LOOK_INTERVAL)  # sampling pace: a late enqueue may still land


async def _settle(probe: Probe, attempt: Attempt) -> None:
    """Poll until the player holds nothing, or the settle timeout: what is left is a ghost."""
    deadline = time.monotonic() + probe.settle_timeout
    while True:
        view = await inv.read_view(probe.redis, probe.keys, [attempt.player_id])
        attempt.ghosts = player_findings(view, attempt.player_id)
        if not attempt.ghosts or time.monotonic() >= deadline:
            return
        await asyncio.sleep(0.1)  # polling pace


async def run_attempt(probe: Probe, index: int, pair: tuple[str, str]) -> Attempt:
    started = time.monotonic()
    login = await login_dev(probe.http, probe.auth_url, f"race-{probe.tag}-{index}")
    attempt = Attempt(login.player_id, "+".join(pair))
    slots = ("pod-1", "pod-2")
    urls = (probe.game_urls[0], probe.game_urls[1 % len(probe.game_urls)])
    delays = (0.0, probe.rng.uniform(0.0, STAGGER_MAX) if probe.rng.random() < 0.5 else 0.0)
    attempt.staggered = delays[1] > 0
    clients = await asyncio.gather(
        *(
            _connect(probe, u, login.access_token, s, attempt, d)
            for u, s, d in zip(urls, slots, delays, strict=True)
        )
    )
    await asyncio.gather(
        *(_act(c, action, s, attempt) for c, action, s in zip(clients, pair, slots, strict=True))
    )
    await _look_for_double(probe, attempt)
    live = [(c, s) for c, s in zip(clients, slots, strict=True) if c is not None]
    await asyncio.gather(*(_dequeue(c, s, attempt) for c, s in live))
    await asyncio.gather(*(_close(c, s, attempt) for c, s in live))
    await _settle(probe, attempt)
    attempt.seconds = time.monotonic() - started
    return attempt


async def _probe(
    stack: Stack, attempts: int, concurrency: int, rng: random.Random
) -> list[Attempt]:
    ignore_orphaned_replies()
    redis = connect_redis(stack.settings.redis.url, decode_responses=True)
    sem = asyncio.Semaphore(concurrency)
    pairs = [pair for pair, _ in PAIRS]
    weights = [weight for _, weight in PAIRS]
    chosen = [rng.choices(pairs, weights)[0] for _ in range(attempts)]
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            probe = Probe(
                stack.auth_url,
                stack.game_urls,
                redis,
                Keys(stack.settings.redis.namespace),
                http,
                stack.settings.game.reconnect_grace + SETTLE_MARGIN,
                uuid.uuid4().hex[:6],
                random.Random(rng.random()),
            )

            async def one(i: int) -> Attempt:
                async with sem:
                    return await run_attempt(probe, i, chosen[i])

            return list(await asyncio.gather(*(one(i) for i in range(attempts))))
    finally:
        await redis.aclose()


def run_race(
    settings: Settings,
    pods: int = 2,
    attempts: int = 200,
    concurrency: int = 8,
    grace: float = 1.0,
    seed: int | None = None,
) -> RaceReport:
    rng = random.Random(seed)
    settings = settings.replace(
        redis={"namespace": f"race-{uuid.uuid4().hex[:6]}"}, game={"reconnect_grace": grace}
    )
    with Stack(settings, pods=max(2, pods)) as stack:
        started = time.monotonic()
        results = asyncio.run(_probe(stack, attempts, concurrency, rng))
        seconds = time.monotonic() - started
        activities = asyncio.run(
            inv.recorded_activities(stack.settings.database.url, [a.player_id for a in results])
        )
    overlaps = inv.overlapping_activities(activities)
    told: dict[str, Counter[str]] = {}
    details: list[str] = []
    for attempt in results:
        told.setdefault(attempt.pair, Counter()).update(attempt.told)
        for finding in attempt.double_queue + attempt.ghosts:
            details.append(f"{attempt.pair}: {finding}")
        details.extend(f"protocol violation: {v}" for v in attempt.protocol_violations)
    details.extend(
        f"double_activity: player {a.player_id}: matches {a.match_id} and {b.match_id}"
        for a, b in overlaps
    )
    durations = sorted(a.seconds for a in results)
    return RaceReport(
        pods=max(2, pods),
        attempts=attempts,
        seconds=round(seconds, 1),
        per_attempt_p50_ms=round(durations[len(durations) // 2] * 1000, 1),
        per_attempt_max_ms=round(durations[-1] * 1000, 1),
        double_queues=sum(bool(a.double_queue) for a in results),
        ghosts=sum(bool(a.ghosts) for a in results),
        double_activity=len(overlaps),
        protocol_violations=sum(len(a.protocol_violations) for a in results),
        pairs=dict(Counter(a.pair for a in results)),
        staggered=sum(a.staggered for a in results),
        told={pair: dict(sorted(c.items())) for pair, c in sorted(told.items())},
        details=details[:50],
    )


def print_race(report: RaceReport) -> None:
    print(f"pods {report.pods}, attempts {report.attempts}, {report.seconds} s")
    print(
        f"per attempt         p50 {report.per_attempt_p50_ms} ms, "
        f"max {report.per_attempt_max_ms} ms"
    )
    print(f"pairs               {report.pairs} (staggered opens {report.staggered})")
    print(f"double queues       {report.double_queues}")
    print(f"ghosts              {report.ghosts}")
    print(f"double activity     {report.double_activity}")
    print(f"protocol violations {report.protocol_violations}")
    for pair, told in report.told.items():
        print(f"told ({pair})")
        for what, count in told.items():
            print(f"    {count:5d}  {what}")
    for detail in report.details:
        print(f"problem             {detail}")
