"""Match server (one per pod, internal only): request consumers, TryMatch loop, watchdog,
health and metrics.

`create_app` lists every hook and route; what they share while the server runs is one
`MatchState` (Redis, the matchmaking loop, the watchdog and the background tasks), made at
start-up and read through `match_state()`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from dataclasses import dataclass

import redis.asyncio as aioredis
from quart import Quart, Response, current_app, jsonify

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
# The key of the running server's `MatchState` in `app.extensions`.
EXTENSION = "cardgame.match"

Task = asyncio.Task[None]


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


@dataclass(frozen=True)
class MatchState:
    """What a running match server holds; made by `before_serving`, closed by `after_serving`.
    It owns the background tasks: `close` cancels them and waits for them to end."""

    settings: Settings
    keys: Keys
    metrics: MatchMetrics
    redis: aioredis.Redis
    matchmaking: Matchmaking
    watchdog: Watchdog
    watchdog_task: Task
    tasks: tuple[Task, ...]  # every background task, watchdog_task among them

    @classmethod
    async def start(cls, settings: Settings) -> MatchState:
        keys = Keys(settings.redis.namespace)
        metrics = MatchMetrics()
        consumer = f"{settings.pod_id}-match"
        redis = bus.connect_redis(settings.redis.url)
        mm = matchmaking_for(redis, keys, settings, metrics)
        watchdog = Watchdog(redis, keys, mm, settings)
        ready = asyncio.Event(), asyncio.Event()
        tasks = (
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
                    functools.partial(heartbeat_stats, mm, watchdog),
                    settings.pods.heartbeat_interval,
                    settings.pods.heartbeat_ttl,
                ),
                name="heartbeat",
            ),
        )
        state = cls(settings, keys, metrics, redis, mm, watchdog, watchdog_task, tasks)
        try:
            await asyncio.wait_for(asyncio.gather(*(e.wait() for e in ready)), 10)
        except BaseException:
            # Not serving after all (after_serving will not run): stop what was started.
            await state.stop_tasks()
            await redis.aclose()
            raise
        return state

    async def stop_tasks(self) -> None:
        # A tick cut short here is safe: its popped players return when their lease ends.
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def close(self) -> None:
        await self.stop_tasks()
        await self.redis.delete(self.keys.heartbeat(self.settings.pod_id, "match"))
        await self.redis.aclose()

    async def queue_gauges(self) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for mode in GameMode:
                pipe.zcard(self.keys.queue(mode))
                pipe.zrange(self.keys.queue(mode), 0, 0, withscores=True)  # the longest waiting
            replies = await pipe.execute()
        now = time.time()
        for i, mode in enumerate(GameMode):
            size, oldest = replies[2 * i], replies[2 * i + 1]
            self.metrics.queue_size.labels(mode.value).set(size)
            self.metrics.oldest_wait.labels(mode.value).set(
                max(0.0, now - oldest[0][1] / 1000) if oldest else 0.0
            )


def heartbeat_stats(mm: Matchmaking, watchdog: Watchdog) -> dict[str, object]:
    """What the pod's heartbeat tells about this match server."""
    return {
        "matches_formed": mm.matches_formed,
        "requests": mm.requests_handled,
        "maintenance": mm.maintenance,
        "game_servers_ok": watchdog.game_servers_ok,
    }


def match_state() -> MatchState:
    """The state of the match server serving the current request (or starting, or stopping)."""
    state: MatchState = current_app.extensions[EXTENSION]
    return state


def create_app(settings: Settings) -> Quart:
    app = Quart("cardgame.match")

    @app.before_serving
    async def startup() -> None:
        app.extensions[EXTENSION] = await MatchState.start(settings)

    app.after_serving(shutdown)
    app.get("/health")(health)
    app.get("/ready")(ready)
    app.get("/health/game-server")(game_server_health)
    app.get("/metrics")(metrics_endpoint)
    return app


async def shutdown() -> None:
    await match_state().close()


async def health() -> Response:
    """Liveness: the process serves requests."""
    settings = match_state().settings
    return jsonify({"status": "ok", "pod_id": settings.pod_id, "instance": settings.instance_id})


async def ready() -> Response:
    """Readiness: Redis answers and game servers are there (not in automatic maintenance)."""
    state = match_state()
    try:
        # Bounded: a Redis that hangs (rather than refusing connections) must fail the
        # probe, not outlast it.
        await asyncio.wait_for(state.redis.ping(), READY_REDIS_TIMEOUT)
        state.metrics.redis_up.set(1.0)
    except Exception as exc:  # any Redis failure means not ready
        state.metrics.redis_up.set(0.0)
        return _status({"status": "unavailable", "redis": str(exc) or type(exc).__name__}, 503)
    if not state.watchdog.game_servers_ok:
        return _status(
            {
                "status": "maintenance",
                "maintenance": state.matchmaking.maintenance,
                "numsub_failures": state.watchdog.numsub_failures,
            },
            503,
        )
    return _status({"status": "ready", "maintenance": state.matchmaking.maintenance}, 200)


async def game_server_health() -> Response:
    """Liveness of the match container, the design's rule: 500 once `numsub_failures` NUMSUB
    checks in a row found no game server subscribed to battle:request (and until one is
    seen again), or when the watchdog that counts them has stopped. It reads the
    watchdog's state and never calls Redis: one probe that sees no subscriber (a game
    server restarting) or a Redis outage must not restart the container; Redis is
    /ready's business."""
    state = match_state()
    watchdog = state.watchdog
    stopped = state.watchdog_task.done()
    ok = not watchdog.no_game_server and not stopped
    return _status(
        {
            "status": "ok" if ok else "no_game_server" if not stopped else "watchdog_stopped",
            "battle_request_subscribers": watchdog.subscribers,
            "numsub_failures": watchdog.numsub_failures,
            "numsub_failures_limit": state.settings.match.numsub_failures,
            "maintenance": state.matchmaking.maintenance,
            "redis_ok": watchdog.redis_ok,
        },
        200 if ok else 500,
    )


async def metrics_endpoint() -> Response:
    state = match_state()
    try:
        await asyncio.wait_for(state.queue_gauges(), READY_REDIS_TIMEOUT)
        state.metrics.redis_up.set(1.0)
    except Exception as exc:  # a Redis outage is what the scrape must still report
        log.warning("queue gauges not refreshed: %s", str(exc) or type(exc).__name__)
        state.metrics.redis_up.set(0.0)
    body, content_type = common_metrics.exposition(state.metrics.registry)
    return Response(body, content_type=content_type)


def _status(body: dict[str, object], status: int) -> Response:
    response = jsonify(body)
    response.status_code = status
    return response
