"""Game server (one per pod): the players' WebSocket, lobby, queue proxy and battle runner.

The server speaks WebSocket through the `websockets` library, not an ASGI stack: it reads a
client's frames only as fast as the session handles them (a bounded queue, then TCP pushes
back), bounds what it writes (`write_limit`), and can drop a socket outright, three things a
hostile client needs and ASGI cannot express (an ASGI app that stops reading lets the server
queue frames for it without limit, and one that returns while the client still sends left the
socket open for good). The few HTTP routes (`/health`, `/ready`, `/metrics`) are answered from
the same port before the WebSocket handshake.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import urlsplit

import asyncpg
import redis.asyncio as aioredis
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from servers.common import bus, content
from servers.common.config import Settings
from servers.common.db import create_pool
from servers.common.errors import ErrorCode
from servers.common.heartbeat import run_heartbeat
from servers.common.keys import BATTLE_GROUP, GameMode, Keys
from servers.common.ratelimit import ActivityLimits, IpRateLimiter
from servers.common.retention import run_partition_upkeep
from servers.common.tokens import verifier_for
from servers.game import metrics, ws
from servers.game.battle.runner import BattleRunner
from servers.game.service import GameService
from servers.game.sessions import CLOSE_SERVICE_RESTART, QueueState

log = logging.getLogger("cardgame.game")

Task = asyncio.Task[None]

# Frames a client may have in flight before the server stops reading its socket; the session
# handles one at a time, so a few cover any honest pipelining.
RECEIVE_QUEUE = 8
# How long a closing handshake may take before the socket is dropped.
CLOSE_TIMEOUT = 5.0


@dataclass
class GameServer:
    """What a running game server holds; created at start-up, closed at shutdown."""

    settings: Settings
    keys: Keys
    redis: aioredis.Redis
    pool: asyncpg.Pool
    service: GameService
    runner: BattleRunner
    guard: ws.Guard
    tokens: ws.Verifier
    battle_tasks: list[Task] = field(default_factory=list)
    tasks: list[Task] = field(default_factory=list)

    @classmethod
    async def start(cls, settings: Settings) -> GameServer:
        keys = Keys(settings.redis.namespace)
        pod_id = settings.pod_id
        redis = bus.connect_redis(settings.redis.url)
        pool = await create_pool(
            settings.database.url, settings.database.pool_min, settings.database.pool_max
        )
        service = GameService.build(
            redis, pool, keys, pod_id, settings.game, settings.match.battle_deadline
        )
        pod = service.pod
        runner = BattleRunner(
            redis, pool, keys, pod_id, rating=settings.rating, players=pod.players
        )
        pod.run_battle = runner.run
        limiter = IpRateLimiter(redis, keys, settings.ratelimit)
        pod.limits = ActivityLimits(
            limiter,
            settings.ratelimit,
            on_refused=lambda scope: metrics.RATE_LIMITED.labels(scope).inc(),
        )
        guard = ws.Guard(limiter, keys, settings.ratelimit, ws.Limits.of(settings.game))
        server = cls(
            settings, keys, redis, pool, service, runner, guard, verifier_for(settings.auth)
        )
        await server._start_tasks()
        return server

    async def _start_tasks(self) -> None:
        redis, keys, pod_id = self.redis, self.keys, self.settings.pod_id
        pod, inbox = self.service.pod, self.service.inbox
        subscribers = 4
        ready = [asyncio.Event() for _ in range(subscribers + len(GameMode))]

        async def on_revoked(_: str, data: bytes) -> None:
            closed = ws.close_revoked(pod.registry, data.decode(errors="replace"))
            if closed:
                log.info("closed %d socket(s) of a revoked session", closed)

        async def on_catalogue(_: str, data: bytes) -> None:
            version = content.parse_announcement(data)
            if version is None:
                log.warning("ignored a malformed catalogue announcement: %r", data[:64])
            elif version != pod.catalogue_version:
                log.info("card catalogue: version %s -> %d", pod.catalogue_version, version)
                pod.catalogue_version = version

        async def ignore(_channel: str, _data: bytes) -> None:
            """battle:request carries notices only; subscribing is the liveness signal."""

        def subscriber(channels: list[str], handler: bus.Handler, i: int, name: str) -> Task:
            return asyncio.create_task(
                bus.run_subscriber(
                    redis, channels, metrics.counting(keys.namespace, handler), ready[i]
                ),
                name=name,
            )

        self.tasks = [
            subscriber(inbox.channels(), inbox.on_message, 0, "results"),
            subscriber([keys.battle_request], ignore, 1, "battle-notices"),
            subscriber([keys.session_revoked_channel], on_revoked, 2, "revoked-sessions"),
            subscriber([keys.catalogue_channel], on_catalogue, 3, "catalogue"),
            asyncio.create_task(
                run_heartbeat(
                    redis,
                    keys,
                    pod_id,
                    "game",
                    self.stats,
                    self.settings.pods.heartbeat_interval,
                    self.settings.pods.heartbeat_ttl,
                ),
                name="heartbeat",
            ),
            asyncio.create_task(run_partition_upkeep(self.pool), name="partition-upkeep"),
        ]
        self.battle_tasks = [
            asyncio.create_task(
                bus.run_stream_consumer(
                    redis,
                    keys.battles(mode),
                    BATTLE_GROUP,
                    f"{pod_id}-game",
                    self.runner.on_entry,
                    batch=64,
                    concurrent=True,
                    ready=ready[subscribers + i],
                ),
                name=f"battles-{mode.value}",
            )
            for i, mode in enumerate(GameMode)
        ]
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in ready)), 10)
        # Read once subscribed: a version announced from now on reaches the handler.
        pod.catalogue_version = await content.current_version(self.pool)

    def stats(self) -> dict[str, object]:
        registry = self.service.pod.registry
        return {
            "sessions": len(registry),
            "connected": registry.connected(),
            "battles_running": self.runner.running,
            "battles_completed": self.runner.completed,
            "draining": self.service.pod.draining,
        }

    async def problems(self) -> dict[str, str]:
        """Why the server is not ready: Redis or PostgreSQL do not answer, or it drains."""
        problems: dict[str, str] = {}
        try:
            await self.redis.ping()
        except Exception as exc:  # report any Redis failure
            problems["redis"] = str(exc)
        try:
            await self.pool.fetchval("SELECT 1", timeout=2)
        except Exception as exc:  # report any PostgreSQL failure
            problems["database"] = str(exc)
        if self.service.pod.draining:
            problems["draining"] = "true"
        return problems

    async def socket(self, connection: ServerConnection) -> None:
        await ws.serve_socket(
            connection,
            self.service,
            self.tokens,
            self.settings.game.max_message_bytes,
            self.guard,
        )

    async def http(self, connection: ServerConnection, request: Request) -> Response | None:
        """The HTTP routes; None lets a WebSocket request on /ws go on to the handshake."""
        path = urlsplit(request.path).path
        if path == "/ws":
            return None
        if path == "/health":  # liveness: the process serves requests
            body: dict[str, object] = {"status": "ok", "pod_id": self.settings.pod_id}
            body.update(instance=self.settings.instance_id, **self.stats())
            body["catalogue_version"] = self.service.pod.catalogue_version
            return _json(HTTPStatus.OK, body)
        if path == "/ready":  # readiness: Redis and PostgreSQL answer and not draining
            problems = await self.problems()
            status = HTTPStatus.SERVICE_UNAVAILABLE if problems else HTTPStatus.OK
            return _json(status, {"status": "degraded" if problems else "ready", **problems})
        if path == "/metrics":  # Prometheus exposition (internal: the Ingress routes /ws only)
            body_bytes, content_type = metrics.scrape(self.stats())
            return _response(HTTPStatus.OK, body_bytes, content_type)
        return _json(HTTPStatus.NOT_FOUND, {"error": {"code": "NOT_FOUND", "message": path}})

    async def drain(self) -> None:
        """SIGTERM: stop taking players, dequeue the queued with a notice, finish battles and
        deliver their results, then close every socket telling clients to reconnect elsewhere."""
        pod = self.service.pod
        pod.draining = True
        deadline = time.monotonic() + self.settings.game.drain_deadline
        log.warning("draining: %d sessions", len(pod.registry))
        for session in pod.registry:
            if session.state is QueueState.QUEUED:
                try:
                    await session.request_dequeue(None, "server")
                except Exception as exc:  # best effort: the grace rule catches the rest
                    log.warning("drain dequeue of %s failed: %s", session.player_id, exc)
        # Stop taking new battles; ours finish (others' pending ones are claimed elsewhere).
        for task in self.battle_tasks:
            task.cancel()
        await self.runner.drain(max(0.0, deadline - time.monotonic()))
        while time.monotonic() < deadline and any(
            s.state is not QueueState.IDLE and s.conn is not None for s in pod.registry
        ):
            await asyncio.sleep(0.05)  # queue replies and battle results still on their way
        for session in pod.registry:
            if session.conn is not None:
                session.send_error(ErrorCode.SERVER_DRAINING)
                session.conn.close(CLOSE_SERVICE_RESTART, "server restarting: reconnect")

    async def close(self) -> None:
        tasks = self.tasks + self.battle_tasks
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.service.pod.close()
        try:
            await self.redis.delete(self.keys.heartbeat(self.settings.pod_id, "game"))
        except Exception as exc:  # Redis may be the reason we stop
            log.warning("could not remove the heartbeat: %s", exc)
        await self.pool.close()
        await self.redis.aclose()


def _response(status: HTTPStatus, body: bytes, content_type: str) -> Response:
    headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(body)))])
    headers["Connection"] = "close"
    return Response(status.value, status.phrase, headers, body)


def _json(status: HTTPStatus, body: Mapping[str, object]) -> Response:
    return _response(status, json.dumps(body).encode(), "application/json")


async def run(settings: Settings) -> None:
    """Serve until SIGINT/SIGTERM, then drain while still serving, then close."""
    # websockets logs every connection and HTTP probe at INFO: noise at our scale.
    logging.getLogger("websockets").setLevel(logging.WARNING)
    server = await GameServer.start(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    game = settings.game
    try:
        async with serve(
            server.socket,
            game.host,
            game.port,
            process_request=server.http,
            max_size=game.max_frame_bytes,
            max_queue=RECEIVE_QUEUE,
            close_timeout=CLOSE_TIMEOUT,
            server_header=None,
        ) as listener:
            log.info("game server %s listening on %s:%d", settings.pod_id, game.host, game.port)
            await stop.wait()
            await server.drain()
            listener.close(close_connections=False)  # the sockets were told to go already
            try:
                await asyncio.wait_for(listener.wait_closed(), CLOSE_TIMEOUT + 1)
            except TimeoutError:
                log.warning("sockets still open after the drain: dropping them")
    finally:
        await server.close()
