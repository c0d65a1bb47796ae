"""The player record against hostile timing, with the game servers' jobs run in-process against
a real Redis and PostgreSQL: two pods taking one player at once, a reconnect while the player
is being paired, a player let go during a pairing pass, a pod wrongly thought dead, a late
answer to a request that timed out. Each case once broke an invariant."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import msgspec
import pytest
import redis.asyncio as aioredis

from servers.common import protocol as p
from servers.common.config import GameSettings, Settings
from servers.common.errors import ErrorCode
from servers.common.keys import GameMode, Keys
from servers.common.lua import PlayerScripts, QueueScripts
from servers.game.service import GameService
from servers.game.sessions import Connection, QueueState, Session, Written
from servers.match.loop import Matchmaking
from servers.match.metrics import MatchMetrics
from tests.support.helpers import eventually
from tests.support.match_servers import ticket

NORMAL = GameMode.NORMAL
FAR = 10**13


def frames(conn: Connection) -> list[p.AnyServerMessage]:
    out = []
    while not conn.outbox.empty():
        item = conn.outbox.get_nowait()
        if isinstance(item, Written):
            item = item.data
        if isinstance(item, bytes):
            out.append(p.decode_server(item))
    return out


class Bus:
    """A subscription to some channels, handing what arrives to the right game server."""

    def __init__(self, redis: aioredis.Redis, routes: dict[str, GameService]) -> None:
        self.pubsub = redis.pubsub()
        self.routes = routes

    async def start(self) -> None:
        await self.pubsub.subscribe(*self.routes)
        for _ in self.routes:
            await self.pubsub.get_message(timeout=1)

    async def deliver(self, expected: int) -> list[tuple[str, bytes]]:
        """Hand `expected` messages to their servers, in the order they arrive."""
        got: list[tuple[str, bytes]] = []
        while len(got) < expected:
            message = await self.pubsub.get_message(ignore_subscribe_messages=True, timeout=2)
            assert message is not None, f"only {len(got)} of {expected} messages arrived"
            channel = message["channel"].decode()
            got.append((channel, message["data"]))
            await self.routes[channel].inbox.on_message(channel, message["data"])
        return got


@pytest.fixture
async def pods(
    redis: aioredis.Redis, pool: asyncpg.Pool, keys: Keys
) -> AsyncIterator[tuple[GameService, GameService]]:
    a = GameService.build(redis, pool, keys, "pod-a")
    b = GameService.build(redis, pool, keys, "pod-b")
    yield a, b
    await a.pod.close()
    await b.pod.close()


async def connect(service: GameService, player: str) -> tuple[Session, Connection]:
    conn = Connection()
    session, resumed, _ = await service.resume.connect(player, player, conn)
    conn.open(service.resume.welcome(session, resumed))
    return session, conn


async def test_two_pods_taking_one_player_at_once_leave_exactly_the_newest_connection(
    redis: aioredis.Redis, keys: Keys, pods: tuple[GameService, GameService]
) -> None:
    a, b = pods
    bus = Bus(redis, {keys.pod_control("pod-a"): a, keys.pod_control("pod-b"): b})
    await bus.start()
    first, _ = await connect(a, "700")
    await QueueScripts(redis, keys).enqueue(NORMAL, "700", 1, ticket("700"), first.epoch)
    # Socket C opens on pod-a (its attach still on its way) while socket B on pod-b attaches.
    c = Connection()
    session_a, _ = a.registry.attach("700", "p", c)
    session_b, b_conn = await connect(b, "700")
    await a.resume._take(session_a, c)  # C's attach lands last: C holds the newest epoch
    await bus.deliver(2)  # each pod hears that the other took the player
    record = await redis.hgetall(keys.player("700"))
    assert record[b"pod"] == b"pod-a" and int(record[b"epoch"]) == session_a.epoch
    assert a.registry.get("700") is session_a and session_a.conn is c and not c.closed
    assert b.registry.get("700") is None and b_conn.closed  # only the older one let go
    assert session_a.state is QueueState.QUEUED  # and the newest one knows the queue place


async def test_a_reconnect_while_being_paired_gets_match_found_and_true_answers(
    redis: aioredis.Redis, keys: Keys, pods: tuple[GameService, GameService]
) -> None:
    a, b = pods
    mm = Matchmaking(redis, keys, 100, MatchMetrics())
    queues = QueueScripts(redis, keys)
    x, _ = await connect(a, "801")
    y, _ = await connect(a, "802")
    await queues.enqueue(NORMAL, "801", 1, ticket("801"), x.epoch)
    await queues.enqueue(NORMAL, "802", 2, ticket("802"), y.epoch)
    popped = await queues.pop(NORMAL, 100, FAR)
    moved, conn = await connect(b, "801")  # X reconnects on pod-b while being paired
    assert moved.state is QueueState.QUEUED
    bus = Bus(redis, {keys.match_result("pod-a"): a, keys.match_result("pod-b"): b})
    await bus.start()
    await mm._match(NORMAL, popped)
    routed = await bus.deliver(2)
    assert sorted(channel for channel, _ in routed) == [
        keys.match_result("pod-a"),  # Y's
        keys.match_result("pod-b"),  # X's, where X is now
    ]
    match_id = (await redis.hget(keys.player("801"), "match") or b"").decode()
    assert moved.state is QueueState.IN_BATTLE and moved.match_id == match_id
    # A dequeue that reaches the match server after the commit is told which battle.
    request = p.DequeueRequest(
        request_id="late", player_id="801", game_mode="normal", pod_id="pod-b", epoch=moved.epoch
    )
    await mm.on_dequeue(p.encode(request))
    [(_, data)] = await bus.deliver(1)
    reply = msgspec.json.decode(data, type=p.MatchResult).result
    assert isinstance(reply, p.ResultError) and reply.code is ErrorCode.IN_BATTLE
    assert reply.match_id == match_id
    assert not any(isinstance(m, p.Dequeued) for m in frames(conn))


async def test_a_player_let_go_during_a_pairing_pass_is_not_put_back_in_the_queue(
    redis: aioredis.Redis, keys: Keys
) -> None:
    queues, players = QueueScripts(redis, keys), PlayerScripts(redis, keys)
    for player in ("901", "902"):
        attached = await players.attach(player, "pod-a", 1)
        await queues.enqueue(GameMode.RANKED, player, 1, ticket(player), attached.epoch)
    assert len(await queues.pop_exclusive(GameMode.RANKED, 100, FAR, 200)) == 2
    epoch = int(await redis.hget(keys.player("901"), "epoch") or 0)
    notices = {mode: f"gone from {mode.value}".encode() for mode in GameMode}
    assert await players.detach("901", epoch, notices) is GameMode.RANKED
    await queues.commit(GameMode.RANKED, [], ["901", "902"], [], FAR)  # the pass's leftovers
    assert await redis.zrange(keys.queue(GameMode.RANKED), 0, -1) == [b"902"]
    assert await redis.hmget(keys.player("901"), ["pod", "act", "notice"]) == [
        b"",
        b"idle",
        b"gone from ranked",
    ]


async def test_a_pod_thought_dead_is_told_which_players_it_lost(
    redis: aioredis.Redis, keys: Keys, settings: Settings, pods: tuple[GameService, GameService]
) -> None:
    from servers.match.watchdog import Watchdog

    a, _ = pods
    session, conn = await connect(a, "951")
    await QueueScripts(redis, keys).enqueue(NORMAL, "951", 1, ticket("951"), session.epoch)
    session.resume_queued(NORMAL)
    bus = Bus(redis, {keys.match_result("pod-a"): a})
    await bus.start()
    watchdog = Watchdog(redis, keys, Matchmaking(redis, keys, 100, MatchMetrics()), settings)
    assert await watchdog.dequeue_pod("pod-a") == 1  # a stalled loop missed its heartbeats
    await bus.deliver(1)
    assert session.state is QueueState.IDLE
    [told] = [m for m in frames(conn) if isinstance(m, p.Dequeued)]
    assert told.reason == "server"


async def test_a_late_enqueued_after_a_timeout_follows_the_record(
    redis: aioredis.Redis, pool: asyncpg.Pool, keys: Keys
) -> None:
    """The enqueue times out (the session idles and dequeues quietly, finding nobody queued);
    then the enqueue lands after all (here through a match server's stream, as a game server
    of an older version would send it): the late answer makes the session follow the record."""
    service = GameService.build(redis, pool, keys, "pod-a", GameSettings(match_reply_timeout=0.05))
    mm = Matchmaking(redis, keys, 100, MatchMetrics())
    session, conn = await connect(service, "961")
    request_id = session._begin(QueueState.ENQUEUING, NORMAL, "e1")  # as request_enqueue does

    async def timed_out() -> bool:
        return session.state is QueueState.IDLE

    await eventually(timed_out, timeout=5, what="the timeout")
    await service.pod.close()  # the quiet dequeue has run
    bus = Bus(redis, {keys.match_result("pod-a"): service})
    await bus.pubsub.subscribe(keys.match_result("pod-a"))
    await bus.pubsub.get_message(timeout=1)
    enqueue = p.EnqueueRequest(
        request_id=request_id,
        player_id="961",
        game_mode="normal",
        pod_id="pod-a",
        metadata=msgspec.json.decode(ticket("961"), type=p.BattleSnapshot),
        enqueued_at_ms=1,
        epoch=session.epoch,
    )
    await mm.on_enqueue(p.encode(enqueue))
    message = await bus.pubsub.get_message(ignore_subscribe_messages=True, timeout=2)
    assert message is not None
    await service.inbox.on_message(keys.match_result("pod-a"), message["data"])
    await service.pod.close()  # the resync with the record has run
    assert await redis.hget(keys.player("961"), "act") == b"queued"
    assert session.state is QueueState.QUEUED and session.mode is NORMAL
    # The client was told it timed out, then that the player is queued after all.
    told = [m for m in frames(conn) if isinstance(m, (p.Enqueued, p.Error))]
    assert [type(m) for m in told] == [p.Error, p.Enqueued]
    assert told[1].id is None and told[1].mode == "normal"
