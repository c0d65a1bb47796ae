"""Typed Redis messaging: Pub/Sub channels and request streams read by a consumer group.

Pub/Sub carries replies and fan-out (fire-and-forget: only live subscribers get a message).
Requests to the match servers go through streams with a consumer group instead, so that each
request is handled by exactly one match server even when many run, and a request survives a
match server restart (stale pending entries are claimed by another consumer).

Single node or Redis Cluster, chosen by the URL (`redis+cluster://host:port`, see
`connect_redis`). What differs on a cluster is kept here, behind `numsub` and `mget`;
everything else (scripts, streams, one-slot transactions, Pub/Sub) is the same
code on both. Pub/Sub stays classic on a cluster: a PUBLISH on any node reaches subscribers on
every node (docs/operations.md says why not sharded Pub/Sub).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

import msgspec
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ClusterDownError, ResponseError, SlotNotCoveredError, TryAgainError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger("cardgame.bus")

Handler = Callable[[str, bytes], Awaitable[None]]

# One stream entry as read here: its id and its fields.
StreamEntry = tuple[bytes, dict[bytes, bytes]]


def text(reply: bytes | str) -> str:
    """A Redis reply (a key's value, a member) as text. The clients made here leave replies
    undecoded, so they are bytes; redis-py's types say `bytes | str`, since a client made with
    `decode_responses=True` returns str."""
    return reply.decode() if isinstance(reply, bytes) else reply


def stream_entries(reply: object) -> list[StreamEntry]:
    """Every entry of an XREAD or XREADGROUP reply, of every stream read (none on a timeout).

    The clients made here speak RESP2 and leave replies undecoded, so the reply is
    `[[stream, [(id, {field: value}), ...]], ...]` of bytes, or None; redis-py's types also
    allow the RESP3 (dict) and decoded (str) forms, which never reach this code."""
    streams = cast("list[tuple[bytes, list[StreamEntry]]] | None", reply)
    return [entry for _stream, entries in streams or [] for entry in entries]


def cancelling() -> bool:
    """Whether the current task was asked to stop. A cancellation can reach a long-lived loop
    disguised as another error (redis-py turns a cancel that races a timeout into a
    TimeoutError): every loop that catches broad errors checks this and stops instead of
    going round again with its cancellation lost."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def stop_if_cancelling() -> None:
    if cancelling():
        raise asyncio.CancelledError


class RetryLater(Exception):
    """Raised by a stream handler that could not finish (a dependency is down): the entry stays
    pending and is handled again once it is claimed after the idle time."""


RETRY_DELAY = 0.5


def redis_lost(exc: BaseException) -> bool:
    """Whether `exc` means Redis went away (the loops reconnect), not a bad reply or a bug.

    Besides redis-py's connection and timeout errors and socket errors:
    - a cluster that is down or has a slot uncovered (a failover, a cluster still forming),
      which redis-py answers by closing every connection of the client;
    - a command whose connection was closed under it that way: uvloop raises a bare
      RuntimeError ("... the handler is closed"), and redis-py itself an AttributeError on
      the connection's emptied writer or reader. Only such errors raised inside redis-py
      count; the same types from our own code are bugs.
    """
    if isinstance(
        exc,
        RedisConnectionError
        | RedisTimeoutError
        | OSError
        | ClusterDownError
        | SlotNotCoveredError
        | TryAgainError,
    ):
        return True
    if isinstance(exc, RuntimeError) and "handler is closed" in str(exc):
        return True
    return isinstance(exc, AttributeError) and "'NoneType'" in str(exc) and _raised_in_redis(exc)


def _raised_in_redis(exc: BaseException) -> bool:
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return f"{os.sep}redis{os.sep}" in tb.tb_frame.f_code.co_filename


_encoder = msgspec.json.Encoder()


CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


def is_cluster_url(url: str) -> bool:
    return urlsplit(url).scheme in CLUSTER_SCHEMES


def node_url(url: str) -> str:
    """The plain `redis://` (or `rediss://`) URL of a cluster URL's seed node; others unchanged."""
    parts = urlsplit(url)
    scheme = CLUSTER_SCHEMES.get(parts.scheme)
    return urlunsplit(parts._replace(scheme=scheme)) if scheme else url


def is_cluster(redis: Any) -> bool:
    return isinstance(redis, RedisCluster)


def connect_redis(url: str, max_connections: int = 128, **kwargs: Any) -> aioredis.Redis:
    """One client per process, created at server start.

    `redis://` / `rediss://`: one server, through a blocking pool: when every connection is busy
    (a burst of connects, blocking stream reads, subscriptions) a command waits for a free one
    instead of failing with "Too many connections", which redis-py's default pool raises at 100.

    `redis+cluster://host:port` / `rediss+cluster://...`: a Redis Cluster client (any node of
    the cluster as the seed; it discovers the others). Returned under the same type, since the
    code uses only the commands both clients share; the few that differ go through this module.
    """
    kwargs.setdefault("health_check_interval", 15)
    kwargs.setdefault("socket_keepalive", True)
    if is_cluster_url(url):
        # The cap is per node and, unlike the blocking pool, raises when reached rather than
        # waiting: leave room (connections are opened only when needed).
        cluster = RedisCluster.from_url(
            node_url(url), max_connections=max_connections * 4, **kwargs
        )
        return cluster  # type: ignore[return-value]  # not a Redis subclass: see above
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=10, **kwargs
    )
    return aioredis.Redis.from_pool(pool)  # the client owns the pool: aclose() closes it


async def numsub(redis: aioredis.Redis, channel: str) -> int:
    """Subscribers of a (classic) channel. On a cluster each node counts only the clients
    connected to it, and redis-py asks one node: sum over every node instead."""
    if is_cluster(redis):
        cluster = cast(RedisCluster, redis)
        await cluster.initialize()  # a no-op once the client knows the nodes
        total = 0
        for node in cluster.get_nodes():
            [(_, count)] = await cluster.execute_command(
                "PUBSUB NUMSUB", channel, target_nodes=node
            )
            total += int(count)
        return total
    [(_, count)] = await redis.pubsub_numsub(channel)
    return int(count)


async def mget(redis: aioredis.Redis, keys: list[str]) -> list[bytes | None]:
    """MGET of keys that may live in different slots (one command per slot on a cluster)."""
    if not keys:
        return []
    if is_cluster(redis):
        replies = await cast(RedisCluster, redis).mget_nonatomic(keys)
    else:
        replies = await redis.mget(keys)
    # Undecoded replies: bytes (redis-py's type says `bytes | str` for decoding clients).
    return cast("list[bytes | None]", replies)


async def publish(redis: aioredis.Redis, channel: str, message: msgspec.Struct) -> int:
    return int(await redis.publish(channel, _encoder.encode(message)))


async def run_subscriber(
    redis: aioredis.Redis, channels: list[str], handler: Handler, ready: asyncio.Event | None = None
) -> None:
    """Deliver every message on `channels` to `handler` until cancelled; resubscribe on errors."""
    while True:
        stop_if_cancelling()  # a swallowed cancel must not keep the loop going
        pubsub = redis.pubsub(ignore_subscribe_messages=True)
        try:
            if is_cluster(redis):
                # A cluster's pubsub picks its node from the slot map, known only once the
                # client has asked the cluster for it.
                await redis.initialize()
            await pubsub.subscribe(*channels)
            if ready is not None:
                ready.set()
            while True:
                stop_if_cancelling()  # a swallowed cancel must not keep the loop going
                msg = await pubsub.get_message(timeout=1.0)
                if msg is None:
                    continue
                channel = msg["channel"]
                channel = channel.decode() if isinstance(channel, bytes) else channel
                try:
                    await handler(channel, msg["data"])
                except asyncio.CancelledError:
                    raise
                except Exception:
                    stop_if_cancelling()
                    log.exception("handler failed for a message on %s", channel)
        except Exception as exc:
            if not redis_lost(exc):
                raise
            stop_if_cancelling()
            log.warning("subscription to %s lost (%s); resubscribing", channels, exc)
            await asyncio.sleep(RETRY_DELAY)
        finally:
            await pubsub.aclose()


async def stream_add(
    redis: aioredis.Redis, stream: str, message: msgspec.Struct, maxlen: int = 100_000
) -> None:
    await redis.xadd(stream, {"m": _encoder.encode(message)}, maxlen=maxlen, approximate=True)


async def ensure_group(redis: aioredis.Redis, stream: str, group: str) -> None:
    try:
        # "0": requests added before the first match server started are handled too.
        await redis.xgroup_create(stream, group, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


async def _handle_entry(
    handler: Callable[[bytes], Awaitable[None]],
    stream: str,
    entry_id: bytes,
    fields: dict[bytes, bytes],
) -> bytes | None:
    """Run the handler on one entry; its id when it may be acked, None to handle it again."""
    try:
        await handler(fields[b"m"])
    except RetryLater as exc:
        log.warning("will retry an entry of %s: %s", stream, exc)
        return None
    except Exception as exc:
        if redis_lost(exc):
            raise  # not acked: handled again after the reconnect
        stop_if_cancelling()
        log.exception("handler failed on %s; dropping the entry", stream)
    return entry_id


async def run_stream_consumer(
    redis: aioredis.Redis,
    stream: str,
    group: str,
    consumer: str,
    handler: Callable[[bytes], Awaitable[None]],
    *,
    batch: int = 256,
    claim_idle_ms: int = 3_000,
    concurrent: bool = False,
    ready: asyncio.Event | None = None,
) -> None:
    """Handle each stream entry within the group; ack and delete it after the handler ran.

    Entries left pending by a consumer that died, or whose handler raised RetryLater, are
    claimed again after `claim_idle_ms`. A handler failing otherwise is logged and its entry
    dropped (a poisoned entry must not block the stream). `concurrent` handles a batch at once.
    """

    def handle(entry_id: bytes, fields: dict[bytes, bytes]) -> Awaitable[bytes | None]:
        return _handle_entry(handler, stream, entry_id, fields)

    last_claim = 0.0
    loop = asyncio.get_running_loop()
    while True:
        stop_if_cancelling()  # a swallowed cancel must not keep the loop going
        try:
            await ensure_group(redis, stream, group)
            if ready is not None:
                ready.set()
            while True:
                stop_if_cancelling()  # a swallowed cancel must not keep the loop going
                entries: list[StreamEntry] = []
                if loop.time() - last_claim > claim_idle_ms / 2000:
                    last_claim = loop.time()
                    claimed = await redis.xautoclaim(
                        stream, group, consumer, claim_idle_ms, start_id="0-0", count=batch
                    )
                    entries.extend(e for e in claimed[1] if e[1])
                reply = await redis.xreadgroup(
                    group, consumer, {stream: ">"}, count=batch, block=1000
                )
                entries.extend(stream_entries(reply))
                if not entries:
                    continue
                if concurrent:
                    done = await asyncio.gather(*(handle(i, f) for i, f in entries))
                else:
                    done = [await handle(i, f) for i, f in entries]
                ids = [entry_id for entry_id in done if entry_id is not None]
                if not ids:
                    continue
                async with redis.pipeline(transaction=False) as pipe:
                    pipe.xack(stream, group, *ids)
                    pipe.xdel(stream, *ids)
                    await pipe.execute()
        except ResponseError as exc:
            # NOGROUP: the stream was deleted (e.g. FLUSHALL), so recreate it; CLUSTERDOWN is
            # a ResponseError too.
            if "NOGROUP" not in str(exc) and not redis_lost(exc):
                raise
            await asyncio.sleep(RETRY_DELAY)
        except Exception as exc:
            if not redis_lost(exc):
                raise
            stop_if_cancelling()
            log.warning("stream %s unavailable (%s); retrying", stream, exc)
            await asyncio.sleep(RETRY_DELAY)
