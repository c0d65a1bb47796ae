"""The queue scripts against a real Redis: atomicity, refusals, poisoned entries, slots."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot

from servers.common.keys import GameMode, Keys
from servers.common.lua import QueueScripts

MODE = GameMode.NORMAL


def test_script_keys_share_a_cluster_slot(keys: Keys) -> None:
    for mode in GameMode:
        assert key_slot(keys.queue(mode).encode()) == key_slot(keys.tickets(mode).encode())


async def test_enqueue_refuses_second_enqueue(redis: aioredis.Redis, keys: Keys) -> None:
    scripts = QueueScripts(redis, keys)
    first = await scripts.enqueue(MODE, "1", 1000, b'{"t":1}')
    second = await scripts.enqueue(MODE, "1", 2000, b'{"t":2}')
    assert (first.changed, first.queue_size) == (True, 1)
    assert (second.changed, second.queue_size) == (False, 1)
    # The refused enqueue left the first ticket and score untouched.
    assert await redis.hget(keys.tickets(MODE), "1") == b'{"t":1}'
    assert await redis.zscore(keys.queue(MODE), "1") == 1000


async def test_dequeue_removes_player_and_ticket(redis: aioredis.Redis, keys: Keys) -> None:
    scripts = QueueScripts(redis, keys)
    await scripts.enqueue(MODE, "1", 1000, b"{}")
    removed = await scripts.dequeue(MODE, "1")
    again = await scripts.dequeue(MODE, "1")
    assert (removed.changed, removed.queue_size) == (True, 0)
    assert again.changed is False
    assert await redis.exists(keys.queue(MODE), keys.tickets(MODE)) == 0


@pytest.mark.parametrize(("queued", "limit", "expected"), [(0, 10, 0), (1, 10, 0), (2, 10, 2),
                                                           (5, 10, 4), (9, 4, 4), (9, 5, 4)])
async def test_pop_takes_an_even_number_oldest_first(redis: aioredis.Redis, keys: Keys,
                                                     queued: int, limit: int,
                                                     expected: int) -> None:
    scripts = QueueScripts(redis, keys)
    for i in range(queued):
        await scripts.enqueue(MODE, f"p{i}", 1000 - i, f'{{"n":{i}}}'.encode())
    popped = await scripts.pop(MODE, limit)
    assert len(popped) == expected
    # Oldest (lowest score) first; each comes with its own ticket.
    assert [e.player_id for e in popped] == [f"p{i}" for i in range(queued - 1, -1, -1)][:expected]
    assert all(e.ticket == f'{{"n":{e.player_id[1:]}}}'.encode() for e in popped)
    assert await redis.zcard(keys.queue(MODE)) == queued - expected
    assert await redis.hlen(keys.tickets(MODE)) == queued - expected


async def test_pop_reports_missing_ticket_as_poisoned(redis: aioredis.Redis, keys: Keys) -> None:
    scripts = QueueScripts(redis, keys)
    await redis.zadd(keys.queue(MODE), {"ghost": 1, "real": 2})
    await redis.hset(keys.tickets(MODE), "real", b"{}")
    popped = await scripts.pop(MODE, 10)
    assert [(e.player_id, e.ticket) for e in popped] == [("ghost", b""), ("real", b"{}")]


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
        while popped := await scripts.pop(MODE, 64):
            taken.extend(e.player_id for e in popped)
        return taken

    results = await asyncio.gather(*(popper() for _ in range(6)))
    everyone = [player for taken in results for player in taken]
    assert len(everyone) == total
    assert len(set(everyone)) == total
