"""Match server (one per pod, internal only): request consumers, TryMatch loop, watchdog,
health and metrics."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import redis.asyncio as aioredis
from quart import Quart, Response, jsonify

from servers.common import bus
from servers.common import metrics as common_metrics
from servers.common.config import Settings
from servers.common.heartbeat import run_heartbeat
from servers.common.keys import MATCH_GROUP, GameMode, Keys
from servers.match.loop import Matchmaking
from servers.match.matchmakers.ranked import Window
from servers.match.metrics import MatchMetrics
from servers.match.watchdog import Watchdog


@dataclass
class Running:
    redis: aioredis.Redis
    matchmaking: Matchmaking
    watchdog: Watchdog
    tasks: list[asyncio.Task[None]]


def matchmaking_for(
    redis: aioredis.Redis, keys: Keys, settings: Settings, metrics: MatchMetrics
) -> Matchmaking:
    m = settings.match
    return Matchmaking(
        redis,
        keys,
        m.batch_size,
        metrics,
        m.lease_seconds,
        window=Window(m.ranked_window_start, m.ranked_window_growth, m.ranked_window_max),
        pass_batch_size=m.pass_batch_size,
        ticket_max_wait=m.ticket_max_wait,
        pass_interval=m.tick_interval,
    )


def create_app(settings: Settings) -> Quart:
    app = Quart("cardgame.match")
    keys = Keys(settings.redis.namespace)
    metrics = MatchMetrics()
    consumer = f"{settings.pod_id}-match"
    running: list[Running] = []

    @app.before_serving
    async def startup() -> None:
        redis = bus.connect_redis(settings.redis.url)
        mm = matchmaking_for(redis, keys, settings, metrics)
        watchdog = Watchdog(redis, keys, mm, settings)

        def stats() -> dict[str, object]:
            return {
                "matches_formed": mm.matches_formed,
                "requests": mm.requests_handled,
                "maintenance": mm.maintenance,
                "game_servers_ok": watchdog.game_servers_ok,
            }

        ready = asyncio.Event(), asyncio.Event()
        tasks = [
            asyncio.create_task(
                bus.run_stream_consumer(
                    redis,
                    keys.enqueue_requests,
                    MATCH_GROUP,
                    consumer,
                    mm.on_enqueue,
                    ready=ready[0],
                ),
                name="enqueue-requests",
            ),
            asyncio.create_task(
                bus.run_stream_consumer(
                    redis,
                    keys.dequeue_requests,
                    MATCH_GROUP,
                    consumer,
                    mm.on_dequeue,
                    ready=ready[1],
                ),
                name="dequeue-requests",
            ),
            asyncio.create_task(mm.run_ticks(settings.match.tick_interval), name="trymatch"),
            asyncio.create_task(mm.run_housekeeping(), name="housekeeping"),
            asyncio.create_task(watchdog.run(), name="watchdog"),
            asyncio.create_task(
                run_heartbeat(
                    redis,
                    keys,
                    settings.pod_id,
                    "match",
                    stats,
                    settings.pods.heartbeat_interval,
                    settings.pods.heartbeat_ttl,
                ),
                name="heartbeat",
            ),
        ]
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in ready)), 10)
        running.append(Running(redis, mm, watchdog, tasks))

    @app.after_serving
    async def shutdown() -> None:
        # A tick cut short here is safe: its popped players return when their lease ends.
        for run in running:
            for task in run.tasks:
                task.cancel()
            await asyncio.gather(*run.tasks, return_exceptions=True)
            await run.redis.delete(keys.heartbeat(settings.pod_id, "match"))
            await run.redis.aclose()

    @app.get("/health")
    async def health() -> Response:
        """Liveness: the process serves requests."""
        return jsonify(
            {"status": "ok", "pod_id": settings.pod_id, "instance": settings.instance_id}
        )

    @app.get("/ready")
    async def ready() -> Response:
        """Readiness: Redis answers and game servers are there (not in automatic maintenance)."""
        run = running[0]
        try:
            await run.redis.ping()
        except Exception as exc:  # any Redis failure means not ready
            return _status({"status": "unavailable", "redis": str(exc)}, 503)
        if not run.watchdog.game_servers_ok:
            return _status(
                {
                    "status": "maintenance",
                    "maintenance": run.matchmaking.maintenance,
                    "numsub_failures": run.watchdog.numsub_failures,
                },
                503,
            )
        return _status({"status": "ready", "maintenance": run.matchmaking.maintenance}, 200)

    @app.get("/health/game-server")
    async def game_server_health() -> Response:
        """The seed's probe: 500 while no game server subscribes battle:request."""
        run = running[0]
        count = await bus.numsub(run.redis, keys.battle_request)
        ok = count > 0 and run.watchdog.game_servers_ok
        return _status(
            {
                "battle_request_subscribers": count,
                "numsub_failures": run.watchdog.numsub_failures,
                "maintenance": run.matchmaking.maintenance,
            },
            200 if ok else 500,
        )

    @app.get("/metrics")
    async def metrics_endpoint() -> Response:
        redis = running[0].redis
        async with redis.pipeline(transaction=False) as pipe:
            for mode in GameMode:
                pipe.zcard(keys.queue(mode))
                pipe.zrange(keys.queue(mode), 0, 0, withscores=True)  # the longest waiting
            replies = await pipe.execute()
        now = time.time()
        for i, mode in enumerate(GameMode):
            size, oldest = replies[2 * i], replies[2 * i + 1]
            metrics.queue_size.labels(mode.value).set(size)
            metrics.oldest_wait.labels(mode.value).set(
                max(0.0, now - oldest[0][1] / 1000) if oldest else 0.0
            )
        body, content_type = common_metrics.exposition(metrics.registry)
        return Response(body, content_type=content_type)

    return app


def _status(body: dict[str, object], status: int) -> Response:
    response = jsonify(body)
    response.status_code = status
    return response
