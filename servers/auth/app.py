"""Auth server: logs players in and issues session tokens (public HTTP)."""

from __future__ import annotations

from typing import Any

from quart import Quart, Response, jsonify, request

from servers.auth import players
from servers.auth.steam import TicketVerifier
from servers.common.config import Settings
from servers.common.db import create_pool
from servers.common.errors import ErrorCode
from servers.common.http import error_response
from servers.common.tokens import TokenService

MAX_NAME = 32


def create_app(settings: Settings, steam: TicketVerifier | None = None) -> Quart:
    app = Quart("cardgame.auth")
    app.config["MAX_CONTENT_LENGTH"] = 16 * 1024
    tokens = TokenService(settings.auth)

    @app.before_serving
    async def startup() -> None:
        app.pool = await create_pool(  # type: ignore[attr-defined]
            settings.database.url, settings.database.pool_min, settings.database.pool_max
        )

    @app.after_serving
    async def shutdown() -> None:
        await app.pool.close()  # type: ignore[attr-defined]

    async def json_body() -> dict[str, Any] | None:
        body = await request.get_json(force=True, silent=True)
        return body if isinstance(body, dict) else None

    async def login(steam_id: int, name: str) -> Response:
        player = await players.find_or_create(app.pool, steam_id, name)  # type: ignore[attr-defined]
        token, expires = tokens.issue(str(player.steam_id), player.display_name)
        return jsonify({
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": settings.auth.access_token_ttl,
            "player_id": str(player.steam_id),
            "name": player.display_name,
            "created": player.created,
        })

    @app.post("/login/dev")
    async def login_dev() -> Response:
        """Development login by display name or SteamID64: no Steam, development config only."""
        if not settings.auth.dev_login:
            return error_response(ErrorCode.DEV_LOGIN_DISABLED, 403)
        body = await json_body()
        if body is None:
            return error_response(ErrorCode.INVALID_MESSAGE, 400, "body must be a JSON object")
        name, raw_id = body.get("name"), body.get("steam_id")
        if name is not None and (
            not isinstance(name, str) or not 1 <= len(name.strip()) <= MAX_NAME
            or not name.isprintable()
        ):
            return error_response(ErrorCode.INVALID_MESSAGE, 400,
                                  f"name must be 1 to {MAX_NAME} printable characters")
        if raw_id is not None:
            try:
                steam_id = int(raw_id)
            except (TypeError, ValueError):
                steam_id = 0
            if isinstance(raw_id, bool) or not players.is_steam_id64(steam_id):
                return error_response(ErrorCode.INVALID_MESSAGE, 400,
                                      "steam_id must be an individual SteamID64")
        elif name is not None:
            steam_id = players.dev_steam_id(name.strip())
        else:
            return error_response(ErrorCode.INVALID_MESSAGE, 400, "give a name or a steam_id")
        display = name.strip() if name else f"Player{str(steam_id)[-6:]}"
        return await login(steam_id, display)

    @app.post("/login/steam")
    async def login_steam() -> Response:
        if steam is None:
            return error_response(ErrorCode.STEAM_LOGIN_UNAVAILABLE, 501)
        body = await json_body()
        ticket = body.get("ticket") if body else None
        if not isinstance(ticket, str):
            return error_response(ErrorCode.INVALID_MESSAGE, 400, "ticket (hex string) required")
        verified = await steam.verify(ticket)
        return await login(verified.steam_id, f"Player{str(verified.steam_id)[-6:]}")

    @app.get("/health")
    async def health() -> Response:
        try:
            await app.pool.fetchval("SELECT 1")  # type: ignore[attr-defined]
        except Exception as exc:  # the probe reports any database failure as unhealthy
            response = jsonify({"status": "degraded", "database": str(exc)})
            response.status_code = 503
            return response
        return jsonify({"status": "ok"})

    @app.errorhandler(413)
    async def too_large(_: Exception) -> Response:
        return error_response(ErrorCode.MESSAGE_TOO_LARGE, 413)

    @app.errorhandler(404)
    async def not_found(_: Exception) -> Response:
        return error_response(ErrorCode.UNKNOWN_MESSAGE, 404, "no such endpoint")

    @app.errorhandler(405)
    async def bad_method(_: Exception) -> Response:
        return error_response(ErrorCode.UNKNOWN_MESSAGE, 405, "method not allowed here")

    return app
