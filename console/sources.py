"""The console's I/O: reading Redis and PostgreSQL into the raw structures of `console.model`,
and the operator actions. Nothing here touches the UI.

One Redis poll is two pipelined round trips (whatever the number of pods and modes): first the
clock, the pod list and the maintenance flag, then heartbeats, queues, subscriber counts,
streams and the watched player. Queue figures use ZCARD / ZRANGE / ZCOUNT, never a full read,
so a queue of a million players costs the same as an empty one; ratings come from a sample.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any, Protocol

import asyncpg
import msgspec
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from console.model import (
    WAIT_EDGES,
    MatchRow,
    PlayerLive,
    PlayerProfile,
    QueueRaw,
    RawPoll,
    StreamRaw,
    design_channels,
)
from servers.common import bus
from servers.common import protocol as p
from servers.common.heartbeat import ROLES, Heartbeat
from servers.common.keys import GameMode, Keys
from servers.common.lua import Busy, Dequeued, QueueScripts

RATING_SAMPLE = 64  # tickets read per mode and poll for the rating histogram
DEQUEUE_WAIT = 3.0  # seconds the console waits to see its dequeue request handled

_heartbeat = msgspec.json.Decoder(Heartbeat)


class _Rating(msgspec.Struct):
    rating: float = 0.0


_rating = msgspec.json.Decoder(_Rating)


class Source(Protocol):
    """What the app needs; `LiveSource` reads a real stack, `console.fixture` static data."""

    keys: Keys
    redis_label: str
    database_label: str

    async def poll(self, player_id: str | None = None) -> RawPoll: ...
    def tail(self) -> AsyncIterator[tuple[str, bytes] | None]: ...
    async def ping_database(self) -> None: ...
    async def find_player(self, query: str) -> PlayerProfile | None: ...
    async def set_maintenance(self, on: bool) -> str: ...
    async def dequeue(self, player_id: str) -> str: ...
    async def disconnect(self, player_id: str) -> str: ...
    async def drain(self, pod: str) -> str: ...
    async def close(self) -> None: ...


def _hide_password(url: str) -> str:
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user + ':***@' if ':' in creds else creds + '@'}{host}"


class LiveSource:
    def __init__(
        self, redis_url: str, database_url: str, keys: Keys, maintenance_ttl: int = 300
    ) -> None:
        self.keys = keys
        self.redis_label = _hide_password(redis_url)
        self.database_label = _hide_password(database_url) if database_url else "(none)"
        self.maintenance_ttl = maintenance_ttl
        # Short timeouts: a slow or gone Redis must turn into an error the status bar shows,
        # never a poll that hangs. redis-py reconnects by itself on the next command.
        self.redis = aioredis.Redis.from_url(
            redis_url, socket_connect_timeout=2, socket_timeout=5, health_check_interval=10
        )
        self.database_url = database_url
        self._pool: asyncpg.Pool | None = None
        self._scripts = QueueScripts(self.redis, keys)

    async def close(self) -> None:
        await self.redis.aclose()
        if self._pool is not None:
            await self._pool.close()

    # ------------------------------------------------------------ Redis reads
    async def poll(self, player_id: str | None = None) -> RawPoll:
        started = time.perf_counter()
        k = self.keys
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.time()
            pipe.zrange(k.pods, 0, -1, withscores=True)
            pipe.get(k.maintenance_flag)
            pipe.ttl(k.maintenance_flag)
            (sec, usec), listed, flag, ttl = await pipe.execute()
        now = sec + usec / 1_000_000
        pods_listed = {pod.decode(): score / 1000 for pod, score in listed}
        pods = sorted(pods_listed)
        modes = [m.value for m in GameMode]
        specs = design_channels(k, pods, modes)
        channels = [s.name for s in specs if s.kind == "pubsub"]
        streams = [s.name for s in specs if s.kind == "stream"]
        now_ms = int(now * 1000)

        async with self.redis.pipeline(transaction=False) as pipe:
            for pod in pods:
                for role in ROLES:
                    pipe.get(k.heartbeat(pod, role))
            for mode in GameMode:
                pipe.zcard(k.queue(mode))
                pipe.zrange(k.queue(mode), 0, 0, withscores=True)
                for edge in WAIT_EDGES:
                    pipe.zcount(k.queue(mode), "-inf", now_ms - int(edge * 1000))
                pipe.zcard(k.inflight(mode))
                pipe.hrandfield(k.tickets(mode), RATING_SAMPLE, withvalues=True)
            pipe.pubsub_numsub(*channels)
            for stream in streams:
                pipe.xinfo_stream(stream)
                pipe.xinfo_groups(stream)
            if player_id:
                pipe.hget(k.player(player_id), "pod")
                pipe.get(k.player_match(player_id))
                for mode in GameMode:
                    pipe.zscore(k.queue(mode), player_id)
                    pipe.hget(k.ticket_pods(mode), player_id)
                    pipe.zscore(k.inflight(mode), player_id)
            replies = iter(await pipe.execute(raise_on_error=False))

        take = _Replies(replies)
        beats = {pod: _read_heartbeats(take) for pod in pods}
        queues = {mode.value: _read_queue(take) for mode in GameMode}
        numsub = {bus.text(c): int(n) for c, n in take()}
        stream_info = {stream: _read_stream(next(replies), next(replies)) for stream in streams}
        player = _read_player(take) if player_id else None
        return RawPoll(
            now=now,
            pods_listed=pods_listed,
            heartbeats=beats,
            queues=queues,
            numsub=numsub,
            streams=stream_info,
            maintenance=flag.decode() if flag is not None else None,
            maintenance_ttl=ttl if flag is not None and ttl >= 0 else None,
            duration=time.perf_counter() - started,
            player=player,
        )

    async def tail(self) -> AsyncIterator[tuple[str, bytes] | None]:
        """Every message published in the namespace, through one PSUBSCRIBE; None once
        subscribed and whenever a quarter second passed without a message. Pattern
        subscribers are not counted by PUBSUB NUMSUB, so watching never hides a dead game
        server from the NUMSUB rule."""
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.psubscribe(self.keys.all_channels_pattern())
            yield None
            while True:
                msg = await pubsub.get_message(timeout=0.25)
                if msg is None:
                    yield None
                    continue
                channel = msg["channel"]
                yield (channel.decode() if isinstance(channel, bytes) else channel, msg["data"])
        finally:
            await pubsub.aclose()

    # ------------------------------------------------------------ PostgreSQL reads
    async def _database(self) -> asyncpg.Pool:
        if not self.database_url:
            raise RuntimeError("no database URL")
        if self._pool is None:
            # min_size=0: creating the pool never fails; each use (re)connects as needed, so
            # a database that comes back is used again without restarting the console.
            pool = await asyncpg.create_pool(
                self.database_url, min_size=0, max_size=2, timeout=3, command_timeout=5
            )
            assert pool is not None
            self._pool = pool
        return self._pool

    async def ping_database(self) -> None:
        pool = await self._database()
        await pool.fetchval("SELECT 1")

    async def find_player(self, query: str) -> PlayerProfile | None:
        """By SteamID64, exact name, or else a name containing the query (newest login first)."""
        query = query.strip()
        if not query:
            return None
        pool = await self._database()
        player_id = int(query) if query.isdigit() and len(query) < 20 else None
        rows = await pool.fetch(
            "SELECT p.steam_id, p.display_name, p.created_at, p.last_login_at,"
            " coalesce(pp.rating, 1500) AS rating, coalesce(pp.rating_deviation, 350) AS rd,"
            " coalesce(pp.level, 1) AS level, coalesce(pp.experience, 0) AS experience,"
            " coalesce(pp.wins, 0) AS wins, coalesce(pp.losses, 0) AS losses,"
            " coalesce(pp.draws, 0) AS draws"
            " FROM players p LEFT JOIN player_profiles pp ON pp.player_id = p.steam_id"
            " WHERE p.steam_id = $1 OR p.display_name = $2 OR p.display_name ILIKE $3"
            " ORDER BY p.steam_id = $1 DESC NULLS LAST, p.display_name = $2 DESC,"
            " p.last_login_at DESC LIMIT 6",
            player_id,
            query,
            f"%{_like_escape(query)}%",
        )
        if not rows:
            return None
        row = rows[0]
        recent = await pool.fetch(
            "SELECT h.match_id::text AS match_id, h.mode, h.finished_at, me.result,"
            " me.rating_before, me.rating_after, o.player_id AS opponent,"
            " op.display_name AS opponent_name"
            " FROM match_participants me JOIN match_history h ON h.match_id = me.match_id"
            " JOIN match_participants o ON o.match_id = me.match_id AND o.player_id <> $1"
            " JOIN players op ON op.steam_id = o.player_id"
            " WHERE me.player_id = $1 ORDER BY h.finished_at DESC LIMIT 5",
            row["steam_id"],
        )
        return PlayerProfile(
            player_id=str(row["steam_id"]),
            name=row["display_name"],
            created_at=row["created_at"].timestamp(),
            last_login_at=row["last_login_at"].timestamp(),
            rating=row["rating"],
            rating_deviation=row["rd"],
            level=row["level"],
            experience=row["experience"],
            wins=row["wins"],
            losses=row["losses"],
            draws=row["draws"],
            recent=tuple(
                MatchRow(
                    r["match_id"],
                    r["mode"],
                    r["finished_at"].timestamp(),
                    r["result"],
                    str(r["opponent"]),
                    r["opponent_name"],
                    r["rating_before"],
                    r["rating_after"],
                )
                for r in recent
            ),
            others=tuple(f"{r['display_name']} ({r['steam_id']})" for r in rows[1:]),
        )

    # ------------------------------------------------------------ actions
    async def set_maintenance(self, on: bool) -> str:
        if not on:
            removed = await self.redis.delete(self.keys.maintenance_flag)
            return "flag removed" if removed else "the flag was already gone"
        ttl = self.maintenance_ttl or None
        await self.redis.set(self.keys.maintenance_flag, "manual", ex=ttl)
        return f"flag set to manual{f', expires in {ttl} s' if ttl else ', no expiry'}"

    async def dequeue(self, player_id: str) -> str:
        """Through the normal request stream, as the player's own game server would: a
        DequeueRequest naming the pod that holds the ticket. A match server removes the player
        (dequeue.lua, with its pod check) and answers Dequeued on that pod's channel, so the
        session and the client are told. Only a ticket no pod holds is removed directly."""
        raw = await self.poll(player_id)
        live = raw.player
        if live is None or live.queued_mode is None:
            if live is not None and live.inflight_mode:
                return "being paired right now: not dequeued (try again)"
            return "not queued"
        mode = GameMode(live.queued_mode)
        if not live.ticket_pod:
            try:
                status, _ = await self._scripts.dequeue(mode, player_id)
            except Busy:
                return "matched meanwhile: in a battle, not dequeued"
            return (
                "removed directly (no pod held the ticket)"
                if status is Dequeued.REMOVED
                else "not queued"
            )
        await bus.stream_add(
            self.redis,
            self.keys.dequeue_requests,
            p.DequeueRequest(
                request_id=f"console-{uuid.uuid4().hex}",
                player_id=player_id,
                game_mode=mode.value,
                pod_id=live.ticket_pod,
                reason="server",
            ),
        )
        deadline = time.monotonic() + DEQUEUE_WAIT
        while time.monotonic() < deadline:
            if await self.redis.zscore(self.keys.queue(mode), player_id) is None:
                return f"dequeued from {mode.value} by a match server; {live.ticket_pod} told"
            await asyncio.sleep(0.1)
        return f"dequeue request sent for {mode.value}; still queued after {DEQUEUE_WAIT:.0f} s"

    async def disconnect(self, player_id: str) -> str:
        value = await self.redis.hget(self.keys.player(player_id), "pod")
        if not value:
            return "no pod holds a session for this player"
        pod = value.decode() if isinstance(value, bytes) else str(value)
        receivers = await bus.publish(
            self.redis,
            self.keys.pod_control(pod),
            p.PodCommand(command="disconnect", player_id=player_id),
        )
        return f"disconnect sent to {pod}" if receivers else f"no game server listens on {pod}"

    async def drain(self, pod: str) -> str:
        receivers = await bus.publish(
            self.redis, self.keys.pod_control(pod), p.PodCommand(command="drain")
        )
        return f"drain sent to {pod}" if receivers else f"no game server listens on {pod}"


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return "timed out"
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:120]


class _Replies:
    """The replies of a pipeline run with raise_on_error=False, in order; calling it gives the
    next reply, or raises the error it holds."""

    def __init__(self, replies: Iterator[Any]) -> None:
        self._replies = replies

    def __call__(self) -> Any:
        reply = next(self._replies)
        if isinstance(reply, Exception):
            raise reply
        return reply


def _read_heartbeats(take: _Replies) -> dict[str, Heartbeat]:
    """One pod's heartbeats by role (GET of each role's key)."""
    beats: dict[str, Heartbeat] = {}
    for role in ROLES:
        value = take()
        if value is not None:
            try:
                beats[role] = _heartbeat.decode(value)
            except msgspec.DecodeError:
                pass  # a foreign or corrupt value shows as a dead server
    return beats


def _read_queue(take: _Replies) -> QueueRaw:
    """One mode's queue: ZCARD, the oldest entry, a ZCOUNT per wait edge, the in-flight ZCARD
    and a sample of tickets (HRANDFIELD with values)."""
    size = int(take())
    first = take()
    waits = tuple(int(take()) for _ in WAIT_EDGES)
    inflight = int(take())
    sample = take() or []
    ratings = []
    for ticket in sample[1::2]:
        try:
            ratings.append(_rating.decode(ticket).rating)
        except msgspec.DecodeError:
            pass
    return QueueRaw(size, int(first[0][1]) if first else None, waits, inflight, tuple(ratings))


def _read_stream(info: Any, groups: Any) -> StreamRaw:
    """One request stream from its XINFO STREAM and XINFO GROUPS replies."""
    if isinstance(info, ResponseError):  # no such key: nothing written yet
        return StreamRaw(0, None)
    if isinstance(info, Exception):
        raise info
    pending = lag = 0
    lag_known = True
    for group in groups if not isinstance(groups, Exception) else []:
        pending += int(group.get("pending") or 0)
        if group.get("lag") is None:
            lag_known = False
        else:
            lag += int(group["lag"])
    added = info.get("entries-added")
    return StreamRaw(
        int(info.get("length", 0)),
        None if added is None else int(added),
        pending,
        lag if lag_known else None,
    )


def _read_player(take: _Replies) -> PlayerLive:
    """Where a player stands: session pod, match, and per mode queue score, ticket holder and
    in-flight time."""
    pod, match = take(), take()
    live: dict[str, Any] = {
        "pod": pod.decode() if pod else None,
        "match_id": match.decode() if match else None,
    }
    for mode in GameMode:
        score, holder, inflight_at = take(), take(), take()
        if score is not None:
            live.update(
                queued_mode=mode.value,
                queued_since_ms=int(score),
                ticket_pod=holder.decode() if holder else None,
            )
        if inflight_at is not None:
            live["inflight_mode"] = mode.value
    return PlayerLive(**live)
