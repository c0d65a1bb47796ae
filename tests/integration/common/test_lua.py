"""The queue and party scripts against a real Redis: atomicity, refusals, leases, poisoned entries,
the exclusive whole-queue pass, parties."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as aioredis

from servers.common.keys import GameMode, Keys
from servers.common.lua import Dequeued, PairToCommit, PartyScripts, QueueScripts
from tests.support.helpers import eventually
from tests.support.match_servers import fill_ranked, ticket

MODE = GameMode.NORMAL
FAR = 10**13  # a lease deadline that never passes during a test


async def queue_of(redis: aioredis.Redis, keys: Keys) -> list[tuple[bytes, float]]:
    return await redis.zrange(keys.queue(MODE), 0, -1, withscores=True)


async def test_enqueue_refuses_second_enqueue(redis: aioredis.Redis, keys: Keys) -> None:
    scripts = QueueScripts(redis, keys)
    first = await scripts.enqueue(MODE, "1", 1000, b'{"t":1}', "pod-a")
    second = await scripts.enqueue(MODE, "1", 2000, b'{"t":2}', "pod-b")
    assert (first.changed, first.queue_size) == (True, 1)
    assert (second.changed, second.queue_size) == (False, 1)
    # The refused enqueue left the first ticket, pod and score untouched.
    assert await redis.hget(keys.tickets(MODE), "1") == b'{"t":1}'
    assert await redis.hget(keys.ticket_pods(MODE), "1") == b"pod-a"
    assert await queue_of(redis, keys) == [(b"1", 1000)]


async def test_enqueue_refuses_a_player_being_paired(redis: aioredis.Redis, keys: Keys) -> None:
    scripts = QueueScripts(redis, keys)
    for player in ("1", "2"):
        await scripts.enqueue(MODE, player, 1000, b"{}", "pod-a")
    await scripts.pop(MODE, 10, FAR)
    again = await scripts.enqueue(MODE, "1", 2000, b"{}", "pod-a")
    assert again.changed is False and await redis.zcard(keys.queue(MODE)) == 0


async def test_dequeue_respects_the_pod_holding_the_player(
    redis: aioredis.Redis, keys: Keys
) -> None:
    scripts = QueueScripts(redis, keys)
    await scripts.enqueue(MODE, "1", 1000, b"{}", "pod-a")
    assert (await scripts.dequeue(MODE, "1", "pod-b"))[0] is Dequeued.OTHER_POD
    assert await redis.zcard(keys.queue(MODE)) == 1
    assert await scripts.dequeue(MODE, "1", "pod-a") == (Dequeued.REMOVED, 0)
    assert (await scripts.dequeue(MODE, "1"))[0] is Dequeued.NOT_QUEUED
    assert await redis.exists(keys.queue(MODE), keys.tickets(MODE), keys.ticket_pods(MODE)) == 0


async def test_repoint_moves_a_queued_player(redis: aioredis.Redis, keys: Keys) -> None:
    scripts = QueueScripts(redis, keys)
    assert await scripts.repoint(MODE, "1", "pod-b") is False
    await scripts.enqueue(MODE, "1", 1000, b"{}", "pod-a")
    assert await scripts.repoint(MODE, "1", "pod-b") is True
    assert (await scripts.dequeue(MODE, "1", "pod-a"))[0] is Dequeued.OTHER_POD


@pytest.mark.parametrize(
    ("queued", "limit", "expected"),
    [(0, 10, 0), (1, 10, 0), (2, 10, 2), (5, 10, 4), (9, 4, 4), (9, 5, 4)],
)
async def test_pop_takes_an_even_number_oldest_first(
    redis: aioredis.Redis, keys: Keys, queued: int, limit: int, expected: int
) -> None:
    scripts = QueueScripts(redis, keys)
    for i in range(queued):
        await scripts.enqueue(MODE, f"p{i}", 1000 - i, f'{{"n":{i}}}'.encode(), f"pod-{i}")
    popped = await scripts.pop(MODE, limit, FAR)
    assert len(popped) == expected
    # Oldest (lowest score) first; each comes with its own ticket and pod.
    assert [e.player_id for e in popped] == [f"p{i}" for i in range(queued - 1, -1, -1)][:expected]
    assert all(e.ticket == f'{{"n":{e.player_id[1:]}}}'.encode() for e in popped)
    assert all(e.pod_id == f"pod-{e.player_id[1:]}" for e in popped)
    assert await redis.zcard(keys.queue(MODE)) == queued - expected
    # Popped players are held under a lease, not gone.
    assert await redis.zcard(keys.inflight(MODE)) == expected


async def test_commit_hands_pairs_to_the_stream_and_requeues_leftovers(
    redis: aioredis.Redis, keys: Keys
) -> None:
    scripts = QueueScripts(redis, keys)
    for i, player in enumerate(["a", "b", "c", "d"]):
        await scripts.enqueue(MODE, player, 100 + i, b"{}", "pod-1")
    await scripts.pop(MODE, 4, FAR)
    committed = await scripts.commit(
        MODE, [PairToCommit("m1", "a", "b", b'{"match":"m1"}')], leftover=["c"], dropped=["d"]
    )
    assert committed == {"m1"}
    entries = await redis.xrange(keys.battles(MODE))
    assert [fields[b"m"] for _, fields in entries] == [b'{"match":"m1"}']
    assert await queue_of(redis, keys) == [(b"c", 102)]  # back with its original time
    assert await redis.zcard(keys.inflight(MODE)) == 0
    assert await redis.hkeys(keys.tickets(MODE)) == [b"c"]
    assert await redis.hkeys(keys.ticket_pods(MODE)) == [b"c"]


async def test_expired_lease_returns_players_and_blocks_their_commit(
    redis: aioredis.Redis, keys: Keys
) -> None:
    scripts = QueueScripts(redis, keys)
    await scripts.enqueue(MODE, "a", 100, b"{}", "pod-1")
    await scripts.enqueue(MODE, "b", 101, b"{}", "pod-1")
    await scripts.pop(MODE, 2, lease_deadline_ms=5000)
    # The match server "died"; another one reaps after the deadline...
    assert await scripts.reap(MODE, now_ms=4999) == 0
    assert await scripts.reap(MODE, now_ms=5001) == 2
    assert await queue_of(redis, keys) == [(b"a", 100), (b"b", 101)]
    # ...and the late commit of the dead server's pair does nothing.
    assert await scripts.commit(MODE, [PairToCommit("m", "a", "b", b"{}")], [], []) == set()
    assert await redis.xlen(keys.battles(MODE)) == 0
    assert await redis.zcard(keys.queue(MODE)) == 2


async def test_concurrent_pops_never_share_a_player(redis: aioredis.Redis, keys: Keys) -> None:
    scripts = QueueScripts(redis, keys)
    total = 2000
    async with redis.pipeline(transaction=False) as pipe:
        for i in range(total):
            pipe.zadd(keys.queue(MODE), {f"p{i}": i})
            pipe.hset(keys.tickets(MODE), f"p{i}", b"{}")
        await pipe.execute()

    async def popper() -> list[str]:
        taken: list[str] = []
        while popped := await scripts.pop(MODE, 64, FAR):
            taken.extend(e.player_id for e in popped)
        return taken

    results = await asyncio.gather(*(popper() for _ in range(6)))
    everyone = [player for taken in results for player in taken]
    assert len(everyone) == total
    assert len(set(everyone)) == total


async def test_an_exclusive_pass_refuses_while_another_server_holds_the_queue(
    redis: aioredis.Redis, keys: Keys
) -> None:
    scripts = QueueScripts(redis, keys)
    await fill_ranked(redis, keys, {"1": 1500, "2": 1510, "3": 1520}, 0)
    deadline = int(time.time() * 1000) + 60_000
    first = await scripts.pop_exclusive(GameMode.RANKED, 100, deadline, 1)
    assert {e.player_id for e in first} == {"1", "2", "3"}
    await fill_ranked(redis, keys, {"4": 1500, "5": 1500}, 0)

    async def pass_key_gone() -> bool:  # it lives 1 ms; the in-flight batch stays
        return not await redis.exists(keys.pairing_pass(GameMode.RANKED))

    await eventually(pass_key_gone, timeout=2, what="the pass key's expiry")
    assert await scripts.pop_exclusive(GameMode.RANKED, 100, deadline, 1) == []
    await scripts.commit(GameMode.RANKED, [], ["1", "2", "3"], [])
    second = await scripts.pop_exclusive(GameMode.RANKED, 100, deadline, 10_000)
    assert len(second) == 5
    await scripts.commit(GameMode.RANKED, [], [e.player_id for e in second], [])
    # The pass key: once per interval, whoever asks.
    assert await scripts.pop_exclusive(GameMode.RANKED, 100, deadline, 10_000) == []


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
