"""lua/publish_batch.lua: many messages in one call, delivered in order, receivers counted."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from servers.common.keys import Keys
from servers.common.lua import PublishScript


async def test_publish_many_delivers_in_order(redis: aioredis.Redis, keys: Keys) -> None:
    one, two = keys.match_result("pod-a"), keys.battle_result("pod-b")
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(one, two)
    try:
        messages = [(one, b"m1"), (two, b"m2"), (one, b"m3"), (keys.battle_request, b"nobody")]
        assert await PublishScript(redis).publish_many(messages) == 3
        assert await PublishScript(redis).publish_many([]) == 0
        got = []
        async with asyncio.timeout(5):
            while len(got) < 3:
                msg = await pubsub.get_message(timeout=1.0)
                if msg is not None:
                    got.append((msg["channel"].decode(), msg["data"]))
        assert got == [(one, b"m1"), (two, b"m2"), (one, b"m3")]
    finally:
        await pubsub.aclose()
