"""Game server (one per pod): the players' WebSocket, lobby, queue proxy and battle runner."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

import asyncpg
import redis.asyncio as aioredis
from quart import Quart, Response, jsonify

from servers.common import bus
from servers.common.config import Settings
from servers.common.db import create_pool
from servers.common.errors import ErrorCode
from servers.common.heartbeat import run_heartbeat
from servers.common.keys import BATTLE_GROUP, GameMode, Keys
from servers.common.ratelimit import ActivityLimits, IpRateLimiter
from servers.common.tokens import verifier_for
from servers.game import metrics, ws
from servers.game.battle.runner import BattleRunner
from servers.game.relay import Relay
from servers.game.sessions import CLOSE_SERVICE_RESTART, QueueState

log = logging.getLogger("cardgame.game")


@dataclass
class GameServer:
    """What a running game server holds; created at start-up, closed at shutdown."""

    redis: aioredis.Redis
    pool: asyncpg.Pool
    relay: Relay
    runner: BattleRunner
    guard: ws.Guard
    battle_tasks: list[asyncio.Task[None]] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def stats(self) -> dict[str, object]:
        registry = self.relay.registry
        return {
            "sessions": len(registry),
            "connected": registry.connected(),
            "battles_running": self.runner.running,
            "battles_completed": self.runner.completed,
            "draining": self.relay.draining,
        }


# The routes are closures in here, and mccabe adds every nested function to this one.
def create_app(settings: Settings) -> Quart:  # noqa: C901
    app = Quart("cardgame.game")
    tokens = verifier_for(settings.auth)
    keys = Keys(settings.redis.namespace)
    pod_id = settings.pod_id
    servers: list[GameServer] = []

    @app.before_serving
    async def startup() -> None:
        redis = bus.connect_redis(settings.redis.url)
        pool = await create_pool(
            settings.database.url, settings.database.pool_min, settings.database.pool_max
        )
        relay = Relay(
            redis,
            pool,
            keys,
            pod_id,
            settings.game.match_reply_timeout,
            settings.game.reconnect_grace,
            party_ttl=settings.game.party_ttl,
            gzip_threshold=settings.game.timeline_gzip_threshold,
            history_limit=settings.game.history_limit,
        )
        runner = BattleRunner(redis, pool, keys, pod_id, rating=settings.rating)
        relay.run_battle = runner.run
        limiter = IpRateLimiter(redis, keys, settings.ratelimit)
        relay.limits = ActivityLimits(
            limiter,
            settings.ratelimit,
            on_refused=lambda scope: metrics.RATE_LIMITED.labels(scope).inc(),
        )
        server = GameServer(redis, pool, relay, runner, ws.Guard(limiter, keys, settings.ratelimit))
        ready = [asyncio.Event() for _ in range(3 + len(GameMode))]

        async def on_revoked(_: str, data: bytes) -> None:
            closed = ws.close_revoked(relay.registry, data.decode(errors="replace"))
            if closed:
                log.info("closed %d socket(s) of a revoked session", closed)

        async def ignore(_channel: str, _data: bytes) -> None:
            """battle:request carries notices only; subscribing is the liveness signal."""

        server.tasks = [
            asyncio.create_task(
                bus.run_subscriber(
                    redis,
                    relay.channels(),
                    metrics.counting(keys.namespace, relay.on_message),
                    ready[0],
                ),
                name="results",
            ),
            asyncio.create_task(
                bus.run_subscriber(
                    redis, [keys.battle_request], metrics.counting(keys.namespace, ignore), ready[1]
                ),
                name="battle-notices",
            ),
            asyncio.create_task(
                bus.run_subscriber(
                    redis,
                    [keys.session_revoked_channel],
                    metrics.counting(keys.namespace, on_revoked),
                    ready[2],
                ),
                name="revoked-sessions",
            ),
            asyncio.create_task(
                run_heartbeat(
                    redis,
                    keys,
                    pod_id,
                    "game",
                    server.stats,
                    settings.pods.heartbeat_interval,
                    settings.pods.heartbeat_ttl,
                ),
                name="heartbeat",
            ),
        ]
        server.battle_tasks = [
            asyncio.create_task(
                bus.run_stream_consumer(
                    redis,
                    keys.battles(mode),
                    BATTLE_GROUP,
                    f"{pod_id}-game",
                    runner.on_entry,
                    batch=64,
                    concurrent=True,
                    ready=ready[3 + i],
                ),
                name=f"battles-{mode.value}",
            )
            for i, mode in enumerate(GameMode)
        ]
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in ready)), 10)
        servers.append(server)

    async def drain() -> None:
        """SIGTERM: stop taking players, dequeue the queued with a notice, finish battles and
        deliver their results, then close every socket telling clients to reconnect elsewhere."""
        server = servers[0]
        relay = server.relay
        relay.draining = True
        deadline = time.monotonic() + settings.game.drain_deadline
        log.warning("draining: %d sessions", len(relay.registry))
        for session in relay.registry:
            if session.state is QueueState.QUEUED:
                try:
                    await session.request_dequeue(None, "server")
                except Exception as exc:  # best effort: the grace rule catches the rest
                    log.warning("drain dequeue of %s failed: %s", session.player_id, exc)
        # Stop taking new battles; ours finish (others' pending ones are claimed elsewhere).
        for task in server.battle_tasks:
            task.cancel()
        await server.runner.drain(max(0.0, deadline - time.monotonic()))
        while time.monotonic() < deadline and any(
            s.state is not QueueState.IDLE and s.conn is not None for s in relay.registry
        ):
            await asyncio.sleep(0.05)  # queue replies and battle results still on their way
        for session in relay.registry:
            if session.conn is not None:
                session.send_error(ErrorCode.SERVER_DRAINING)
                session.conn.close(CLOSE_SERVICE_RESTART, "server restarting: reconnect")
        await asyncio.sleep(0.2)  # let the send loops flush the close frames

    app.config["CARDGAME_DRAIN"] = drain

    @app.after_serving
    async def shutdown() -> None:
        for server in servers:
            tasks = server.tasks + server.battle_tasks
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            try:
                await server.redis.delete(keys.heartbeat(pod_id, "game"))
            except Exception as exc:  # Redis may be the reason we stop
                log.warning("could not remove the heartbeat: %s", exc)
            await server.pool.close()
            await server.redis.aclose()

    @app.websocket("/ws")
    async def socket() -> None:
        server = servers[0]
        await ws.serve_socket(server.relay, tokens, settings.game.max_message_bytes, server.guard)

    @app.get("/health")
    async def health() -> Response:
        """Liveness: the process serves requests."""
        return jsonify(
            {
                "status": "ok",
                "pod_id": pod_id,
                "instance": settings.instance_id,
                **servers[0].stats(),
            }
        )

    @app.get("/metrics")
    async def metrics_endpoint() -> Response:
        """Prometheus exposition (internal: the Ingress routes only /ws here)."""
        body, content_type = metrics.scrape(servers[0].stats())
        return Response(body, content_type=content_type)

    @app.get("/ready")
    async def ready() -> Response:
        """Readiness: Redis and PostgreSQL answer and the server is not draining."""
        server = servers[0]
        problems: dict[str, str] = {}
        try:
            await server.redis.ping()
        except Exception as exc:  # report any Redis failure
            problems["redis"] = str(exc)
        try:
            await server.pool.fetchval("SELECT 1", timeout=2)
        except Exception as exc:  # report any PostgreSQL failure
            problems["database"] = str(exc)
        if server.relay.draining:
            problems["draining"] = "true"
        response = jsonify({"status": "degraded" if problems else "ready", **problems})
        response.status_code = 503 if problems else 200
        return response

    return app
