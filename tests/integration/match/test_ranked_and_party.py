"""Ranked, Party and ticket lifetime in the match servers against a real Redis."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter

import msgspec
import redis.asyncio as aioredis

from devtools.bench.matchmaking import stop_tasks
from servers.common import protocol as p
from servers.common.keys import GameMode, Keys
from servers.common.lua import PartyScripts, QueueScripts
from servers.common.models import BattleSnapshot
from servers.match.loop import Matchmaking
from servers.match.matchmakers.ranked import Window
from servers.match.metrics import MatchMetrics
from tests.integration.match.test_loop import DECK, Listener, start_servers

_request = msgspec.json.Decoder(p.BattleRequest)


def ticket(player: str, rating: float = 1500.0, party: str = "") -> bytes:
    return p.encode(
        BattleSnapshot(
            player_id=player,
            name=f"n{player}",
            level=1,
            rating=rating,
            deck=DECK,
            pod_id="pod-a",
            party_code=party,
        )
    )


async def battles(redis: aioredis.Redis, keys: Keys, mode: GameMode) -> list[p.BattleRequest]:
    entries = await redis.xrange(keys.battles(mode))
    return [_request.decode(fields[b"m"]) for _id, fields in entries]


async def fill_ranked(
    redis: aioredis.Redis, keys: Keys, ratings: dict[str, float], waited_s: float
) -> None:
    scripts = QueueScripts(redis, keys)
    score = int(time.time() * 1000) - int(waited_s * 1000)
    for player, rating in ratings.items():
        await scripts.enqueue(GameMode.RANKED, player, score, ticket(player, rating), "pod-a")


async def run_servers(
    redis: aioredis.Redis, keys: Keys, count: int, until: int, window: Window
) -> list[p.BattleRequest]:
    servers = [
        Matchmaking(redis, keys, 64, MatchMetrics(), window=window, pass_interval=0.02)
        for _ in range(count)
    ]

    async def loop(mm: Matchmaking) -> None:
        while True:
            await mm.tick()
            await asyncio.sleep(0.02)

    tasks = [asyncio.create_task(loop(mm)) for mm in servers]
    try:
        deadline = time.monotonic() + 10
        while len(await battles(redis, keys, GameMode.RANKED)) < until:
            if time.monotonic() > deadline:
                failed = [t.exception() for t in tasks if t.done() and not t.cancelled()]
                raise AssertionError(
                    f"not everyone was matched: {len(await battles(redis, keys, GameMode.RANKED))}"
                    f" pairs, queue {await redis.zcard(keys.queue(GameMode.RANKED))}, in flight"
                    f" {await redis.zcard(keys.inflight(GameMode.RANKED))}, failed {failed!r}"
                )
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)  # a double match would show up by now
    finally:
        await stop_tasks(tasks)
    return await battles(redis, keys, GameMode.RANKED)


async def test_several_match_servers_on_the_ranked_queue(redis: aioredis.Redis) -> None:
    """No double match, nobody lost, never a player with themselves, and the same quality with
    three match servers as with one (the queue is paired whole, by one server per pass)."""
    rng = random.Random(7)
    ratings = {str(5000 + i): rng.gauss(1500, 300) for i in range(400)}
    # Waited long enough for the widest window: everyone can be paired in one pass.
    window = Window(start=50, growth=10, maximum=2000)
    mean_diff = {}
    for count in (1, 3):
        keys = Keys(f"t-ranked-{uuid.uuid4().hex[:6]}")
        await fill_ranked(redis, keys, ratings, waited_s=200)
        requests = await run_servers(redis, keys, count, 200, window)
        players = Counter(c.player_id for r in requests for c in (r.player1, r.player2))
        assert len(requests) == 200
        assert set(players) == set(ratings) and set(players.values()) == {1}
        assert all(r.player1.player_id != r.player2.player_id for r in requests)
        assert await redis.zcard(keys.queue(GameMode.RANKED)) == 0
        assert await redis.zcard(keys.inflight(GameMode.RANKED)) == 0
        mean_diff[count] = sum(
            abs(r.player1.metadata.rating - r.player2.metadata.rating) for r in requests
        ) / len(requests)
    assert mean_diff[3] <= mean_diff[1] * 1.05 + 1, mean_diff


async def test_an_exclusive_pass_refuses_while_another_server_holds_the_queue(
    redis: aioredis.Redis, keys: Keys
) -> None:
    scripts = QueueScripts(redis, keys)
    await fill_ranked(redis, keys, {"1": 1500, "2": 1510, "3": 1520}, 0)
    deadline = int(time.time() * 1000) + 60_000
    first = await scripts.pop_exclusive(GameMode.RANKED, 100, deadline, 1)
    assert {e.player_id for e in first} == {"1", "2", "3"}
    await fill_ranked(redis, keys, {"4": 1500, "5": 1500}, 0)
    await asyncio.sleep(0.01)  # the pass key (1 ms) is gone; the in-flight batch is not
    assert await scripts.pop_exclusive(GameMode.RANKED, 100, deadline, 1) == []
    await scripts.commit(GameMode.RANKED, [], ["1", "2", "3"], [])
    second = await scripts.pop_exclusive(GameMode.RANKED, 100, deadline, 10_000)
    assert len(second) == 5
    await scripts.commit(GameMode.RANKED, [], [e.player_id for e in second], [])
    # The pass key: once per interval, whoever asks.
    assert await scripts.pop_exclusive(GameMode.RANKED, 100, deadline, 10_000) == []


async def test_expired_tickets_are_dequeued_and_told(redis: aioredis.Redis, keys: Keys) -> None:
    listener = Listener(redis, keys, ["pod-a"])
    await listener.ready.wait()
    scripts = QueueScripts(redis, keys)
    now = int(time.time() * 1000)
    await scripts.enqueue(GameMode.NORMAL, "old", now - 10_000, ticket("old"), "pod-a")
    await scripts.enqueue(GameMode.RANKED, "older", now - 20_000, ticket("older"), "pod-a")
    await scripts.enqueue(GameMode.RANKED, "fresh", now, ticket("fresh", 3000), "pod-a")
    mm = Matchmaking(redis, keys, 64, MatchMetrics(), ticket_max_wait=5.0)
    try:
        assert await mm.expire_tickets() == 2
        await listener.until(lambda: len(listener.results) == 2, 5)
    finally:
        await listener.stop()
    told = {(r.player_id, r.game_mode): r.result for r in listener.results}
    assert told == {
        ("old", "normal"): p.ResultDequeued(reason="expired"),
        ("older", "ranked"): p.ResultDequeued(reason="expired"),
    }
    assert await redis.zrange(keys.queue(GameMode.RANKED), 0, -1) == [b"fresh"]
    assert not await redis.hexists(keys.tickets(GameMode.NORMAL), "old")


async def test_party_members_meet_each_other_only(redis: aioredis.Redis, keys: Keys) -> None:
    scripts = QueueScripts(redis, keys)
    now = int(time.time() * 1000)
    queue = [
        ("a1", "AAAAAA"),
        ("b1", "BBBBBB"),
        ("a2", "AAAAAA"),
        ("c1", "CCCCCC"),
        ("b2", "BBBBBB"),
    ]
    for i, (player, code) in enumerate(queue):
        await scripts.enqueue(GameMode.PARTY, player, now + i, ticket(player, party=code), "pod-a")
    _, tasks = start_servers(redis, keys, 2)
    try:
        deadline = time.monotonic() + 5
        while len(await battles(redis, keys, GameMode.PARTY)) < 2:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)
    finally:
        await stop_tasks(tasks)
    met = {
        frozenset((r.player1.player_id, r.player2.player_id))
        for r in await battles(redis, keys, GameMode.PARTY)
    }
    assert met == {frozenset(("a1", "a2")), frozenset(("b1", "b2"))}
    assert await redis.zrange(keys.queue(GameMode.PARTY), 0, -1) == [b"c1"]


async def test_party_scripts(redis: aioredis.Redis, keys: Keys) -> None:
    parties = PartyScripts(redis, keys)
    now = int(time.time() * 1000)
    assert (await parties.create("AAAAAA", "host", now, now + 60_000)).status == "ok"
    assert (await parties.create("BBBBBB", "host", now, now + 60_000)).status == "in_party"
    assert (await parties.create("AAAAAA", "other", now, now + 60_000)).status == "taken"
    assert (await parties.join("ZZZZZZ", "guest", now)).status == "not_found"
    assert (await parties.join("AAAAAA", "guest", now)).status == "ok"
    assert (await parties.join("AAAAAA", "guest", now)).status == "ok"  # again: idempotent
    assert (await parties.join("AAAAAA", "third", now)).status == "full"
    assert not await redis.hexists(keys.party_members, "third")  # nothing half-written
    # The guest waits for the duel; the host leaves: the guest is taken out of the queue.
    await QueueScripts(redis, keys).enqueue(
        GameMode.PARTY, "guest", now, ticket("guest", party="AAAAAA"), "pod-g"
    )
    left = await parties.leave("host")
    assert left.left and left.other == "guest" and left.other_dequeued_pod == "pod-g"
    assert await redis.zcard(keys.queue(GameMode.PARTY)) == 0
    assert not (await parties.leave("host")).left
    # Expiry: joining an expired party fails; the sweep removes it and names its members.
    assert (await parties.join("AAAAAA", "late", now + 120_000)).status == "expired"
    gone = await parties.sweep(now + 120_000)
    assert [(g.player_id, g.code) for g in gone] == [("guest", "AAAAAA")]
    assert await redis.hlen(keys.parties) == 0 and await redis.hlen(keys.party_members) == 0
