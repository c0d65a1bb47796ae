"""Match server (one per pod, internal only): request consumers, TryMatch loop, health, metrics."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import redis.asyncio as aioredis
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from quart import Quart, Response, jsonify

from servers.common import bus
from servers.common.config import Settings
from servers.common.keys import MATCH_GROUP, GameMode, Keys
from servers.match.loop import Matchmaking
from servers.match.metrics import MatchMetrics


@dataclass
class Running:
    redis: aioredis.Redis
    matchmaking: Matchmaking
    tasks: list[asyncio.Task[None]]


def create_app(settings: Settings) -> Quart:
    app = Quart("cardgame.match")
    keys = Keys(settings.redis.namespace)
    metrics = MatchMetrics()
    consumer = f"{settings.pod_id}-match"
    running: list[Running] = []

    @app.before_serving
    async def startup() -> None:
        redis = bus.connect_redis(settings.redis.url)
        mm = Matchmaking(redis, keys, settings.match.batch_size, metrics)
        ready = asyncio.Event(), asyncio.Event()
        tasks = [
            asyncio.create_task(bus.run_stream_consumer(
                redis, keys.enqueue_requests, MATCH_GROUP, consumer, mm.on_enqueue,
                ready=ready[0]), name="enqueue-requests"),
            asyncio.create_task(bus.run_stream_consumer(
                redis, keys.dequeue_requests, MATCH_GROUP, consumer, mm.on_dequeue,
                ready=ready[1]), name="dequeue-requests"),
            asyncio.create_task(mm.run_ticks(settings.match.tick_interval), name="trymatch"),
        ]
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in ready)), 10)
        running.append(Running(redis, mm, tasks))

    @app.after_serving
    async def shutdown() -> None:
        for run in running:
            for task in run.tasks:
                task.cancel()
            await asyncio.gather(*run.tasks, return_exceptions=True)
            await run.redis.aclose()

    @app.get("/health")
    async def health() -> Response:
        """Liveness: the process serves requests."""
        return jsonify({"status": "ok", "pod_id": settings.pod_id})

    @app.get("/ready")
    async def ready() -> Response:
        """Readiness: Redis answers."""
        try:
            await running[0].redis.ping()
        except Exception as exc:  # any Redis failure means not ready
            response = jsonify({"status": "unavailable", "redis": str(exc)})
            response.status_code = 503
            return response
        return jsonify({"status": "ready"})

    @app.get("/health/game-server")
    async def game_server_health() -> Response:
        """Whether any game server listens for battle requests (PUBSUB NUMSUB)."""
        [(_, count)] = await running[0].redis.pubsub_numsub(keys.battle_request)
        response = jsonify({"battle_request_subscribers": count})
        response.status_code = 200 if count > 0 else 500
        return response

    @app.get("/metrics")
    async def metrics_endpoint() -> Response:
        redis = running[0].redis
        async with redis.pipeline(transaction=False) as pipe:
            for mode in GameMode:
                pipe.zcard(keys.queue(mode))
            sizes = await pipe.execute()
        for mode, size in zip(GameMode, sizes, strict=True):
            metrics.queue_size.labels(mode.value).set(size)
        return Response(generate_latest(metrics.registry), content_type=CONTENT_TYPE_LATEST)

    return app
