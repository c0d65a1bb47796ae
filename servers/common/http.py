"""Serving a Quart app with Hypercorn, the event loop servers run on, and the JSON error shape
of every HTTP API."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Coroutine
from typing import Any

from hypercorn.asyncio import serve
from hypercorn.config import Config
from quart import Quart, Response, jsonify

from servers.common.errors import DESCRIPTIONS, ErrorCode


def error_response(code: ErrorCode, status: int, message: str | None = None) -> Response:
    response = jsonify({"error": {"code": code.value, "message": message or DESCRIPTIONS[code]}})
    response.status_code = status
    return response


def run_app(app: Quart, host: str, port: int, **options: Any) -> None:
    """Serve until SIGINT/SIGTERM, then drain (if the app set CARDGAME_DRAIN) while still
    serving, then stop accepting and let the app's shutdown hooks run."""
    config = Config()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None
    config.graceful_timeout = 5
    for name, value in options.items():
        setattr(config, name, value)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)

        async def shutdown_trigger() -> None:
            await stop.wait()
            drain = app.config.get("CARDGAME_DRAIN")
            if drain is not None:
                await drain()

        await serve(app, config, shutdown_trigger=shutdown_trigger)

    run_loop(main())


def run_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run a server's main coroutine on uvloop where installed (faster), else asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)
