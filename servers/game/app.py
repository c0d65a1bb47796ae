"""Game server (one per pod): the players' WebSocket, lobby, queue proxy and battle runner."""

from __future__ import annotations

import asyncio
import logging

from quart import Quart, Response, jsonify

from servers.common import bus
from servers.common.config import Settings
from servers.common.db import create_pool
from servers.common.keys import Keys
from servers.common.ratelimit import IpRateLimiter
from servers.common.tokens import verifier_for
from servers.game import ws
from servers.game.battle.runner import BattleRunner
from servers.game.relay import Relay

log = logging.getLogger("cardgame.game")


def create_app(settings: Settings) -> Quart:
    app = Quart("cardgame.game")
    tokens = verifier_for(settings.auth)
    keys = Keys(settings.redis.namespace)
    pod_id = settings.pod_id
    state: dict[str, object] = {}

    @app.before_serving
    async def startup() -> None:
        redis = bus.connect_redis(settings.redis.url)
        pool = await create_pool(settings.database.url, settings.database.pool_min,
                                 settings.database.pool_max)
        relay = Relay(redis, pool, keys, pod_id, settings.game.match_reply_timeout)
        runner = BattleRunner(redis, pool, keys, pod_id)
        guard = ws.Guard(IpRateLimiter(redis, keys, settings.ratelimit), keys, settings.ratelimit)

        async def on_revoked(_: str, data: bytes) -> None:
            closed = ws.close_revoked(relay.registry, data.decode(errors="replace"))
            if closed:
                log.info("closed %d socket(s) of a revoked session", closed)

        subscribed = asyncio.Event(), asyncio.Event(), asyncio.Event()
        tasks = [
            asyncio.create_task(bus.run_subscriber(redis, relay.channels(), relay.on_message,
                                                   subscribed[0]), name="results"),
            asyncio.create_task(bus.run_subscriber(redis, [keys.battle_request],
                                                   runner.on_request, subscribed[1]),
                                name="battle-requests"),
            asyncio.create_task(bus.run_subscriber(redis, [keys.session_revoked_channel],
                                                   on_revoked, subscribed[2]),
                                name="revoked-sessions"),
        ]
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in subscribed)), 10)
        state.update(redis=redis, pool=pool, relay=relay, runner=runner, tasks=tasks, guard=guard)

    @app.after_serving
    async def shutdown() -> None:
        runner: BattleRunner = state["runner"]  # type: ignore[assignment]
        await runner.drain(timeout=5)
        for task in state["tasks"]:  # type: ignore[attr-defined]
            task.cancel()
        await asyncio.gather(*state["tasks"], return_exceptions=True)  # type: ignore[arg-type]
        await state["pool"].close()  # type: ignore[attr-defined]
        await state["redis"].aclose()  # type: ignore[attr-defined]

    @app.websocket("/ws")
    async def socket() -> None:
        await ws.serve_socket(state["relay"], tokens,  # type: ignore[arg-type]
                              settings.game.max_message_bytes,
                              state["guard"])  # type: ignore[arg-type]

    @app.get("/health")
    async def health() -> Response:
        relay: Relay = state["relay"]  # type: ignore[assignment]
        runner: BattleRunner = state["runner"]  # type: ignore[assignment]
        return jsonify({"status": "ok", "pod_id": pod_id, "sessions": len(relay.registry),
                        "connected": relay.registry.connected(),
                        "battles_running": len(runner.tasks),
                        "battles_completed": runner.completed})

    return app
