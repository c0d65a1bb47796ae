"""Match server (one per pod, internal only): request consumers, TryMatch loop, watchdog,
health and metrics."""

from __future__ import annotations

import asyncio
import logging
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

log = logging.getLogger("cardgame.match")

# Seconds /ready and /metrics wait for Redis' PING: under Kubernetes' default probe timeout (1 s).
READY_REDIS_TIMEOUT = 0.8


@dataclass
class Running:
    redis: aioredis.Redis
    matchmaking: Matchmaking
    watchdog: Watchdog
    tasks: list[asyncio.Task[None]]
    watchdog_task: asyncio.Task[None]


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
        battle_deadline=m.battle_deadline,
    )


# The routes are closures in here, and mccabe adds every nested function to this one.
def create_app(settings: Settings) -> Quart:  # noqa: C901
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
            watchdog_task := asyncio.create_task(watchdog.run(), name="watchdog"),
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
        running.append(Running(redis, mm, watchdog, tasks, watchdog_task))

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
            # Bounded: a Redis that hangs (rather than refusing connections) must fail the
            # probe, not outlast it.
            await asyncio.wait_for(run.redis.ping(), READY_REDIS_TIMEOUT)
            metrics.redis_up.set(1.0)
        except Exception as exc:  # any Redis failure means not ready
            metrics.redis_up.set(0.0)
            return _status({"status": "unavailable", "redis": str(exc) or type(exc).__name__}, 503)
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
        """Liveness of the match container, the design's rule: 500 once `numsub_failures` NUMSUB
        checks in a row found no game server subscribed to battle:request (and until one is
        seen again), or when the watchdog that counts them has stopped. It reads the
        watchdog's state and never calls Redis: one probe that sees no subscriber (a game
        server restarting) or a Redis outage must not restart the container; Redis is
        /ready's business."""
        run = running[0]
        watchdog = run.watchdog
        stopped = run.watchdog_task.done()
        ok = not watchdog.no_game_server and not stopped
        return _status(
            {
                "status": "ok" if ok else "no_game_server" if not stopped else "watchdog_stopped",
                "battle_request_subscribers": watchdog.subscribers,
                "numsub_failures": watchdog.numsub_failures,
                "numsub_failures_limit": settings.match.numsub_failures,
                "maintenance": run.matchmaking.maintenance,
                "redis_ok": watchdog.redis_ok,
            },
            200 if ok else 500,
        )

    async def queue_gauges(redis: aioredis.Redis) -> None:
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

    @app.get("/metrics")
    async def metrics_endpoint() -> Response:
        try:
            await asyncio.wait_for(queue_gauges(running[0].redis), READY_REDIS_TIMEOUT)
            metrics.redis_up.set(1.0)
        except Exception as exc:  # a Redis outage is what the scrape must still report
            log.warning("queue gauges not refreshed: %s", str(exc) or type(exc).__name__)
            metrics.redis_up.set(0.0)
        body, content_type = common_metrics.exposition(metrics.registry)
        return Response(body, content_type=content_type)

    return app


def _status(body: dict[str, object], status: int) -> Response:
    response = jsonify(body)
    response.status_code = status
    return response
