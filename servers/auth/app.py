"""Auth server: logs players in and issues session tokens (public HTTP).

Routes (described for machines in `openapi.py`, served at /openapi.json):
    POST /login/steam    Steam ticket -> access + refresh token (production path)
    POST /login/dev      name or SteamID64 -> tokens (development config only)
    POST /token/refresh  refresh token -> new access + refresh token (rotation, reuse detection)
    POST /logout         revoke the session (refresh token in the body, or Bearer access token)
    GET  /.well-known/jwks.json   public keys game servers verify with
    GET  /openapi.json, GET /health
Every request except /health counts against the per-IP rate limit (shared through Redis).
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import msgspec
import redis.asyncio as aioredis
from quart import Quart, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException

from servers.auth import metrics, players, sessions
from servers.auth.openapi import openapi_document
from servers.auth.steam import SteamWebApi, TicketVerifier, check_policy, check_ticket_format
from servers.common import bus
from servers.common.config import Settings
from servers.common.db import create_pool
from servers.common.errors import ErrorCode, GameError
from servers.common.http import error_response
from servers.common.keys import Keys
from servers.common.protocol import clean_text
from servers.common.ratelimit import IpRateLimiter, Rule
from servers.common.tokens import LEEWAY, TokenIssuer, TokenVerifier

log = logging.getLogger("cardgame.auth")

MAX_NAME = 32
STATUS: dict[ErrorCode, int] = {
    ErrorCode.INVALID_MESSAGE: 400,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.TOKEN_EXPIRED: 401,
    ErrorCode.TOKEN_REVOKED: 401,
    ErrorCode.STEAM_TICKET_INVALID: 401,
    ErrorCode.INVALID_REFRESH_TOKEN: 401,
    ErrorCode.REFRESH_TOKEN_REUSED: 401,
    ErrorCode.STEAM_BANNED: 403,
    ErrorCode.STEAM_FAMILY_SHARED: 403,
    ErrorCode.DEV_LOGIN_DISABLED: 403,
    ErrorCode.MESSAGE_TOO_LARGE: 413,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.STEAM_LOGIN_UNAVAILABLE: 501,
    ErrorCode.STEAM_UNAVAILABLE: 503,
}
STEAM_RETRY_AFTER = 5  # seconds a client waits before retrying a login Steam could not serve


def steam_from_settings(settings: Settings) -> TicketVerifier | None:
    s = settings.steam
    return SteamWebApi(s) if s.web_api_url and s.web_api_key and s.app_id else None


# The routes are closures in here, and mccabe adds every nested function to this one.
def create_app(settings: Settings, steam: TicketVerifier | None = None) -> Quart:  # noqa: C901
    app = Quart("cardgame.auth")
    app.config["MAX_CONTENT_LENGTH"] = 16 * 1024
    issuer = TokenIssuer(settings.auth)
    verifier = TokenVerifier(settings.auth, issuer.keyring.public_keys())
    keys = Keys(settings.redis.namespace)
    auth_rule = Rule("auth", settings.ratelimit.auth_per_s, settings.ratelimit.auth_burst)
    steam = steam if steam is not None else steam_from_settings(settings)
    state: dict[str, Any] = {}

    @app.before_serving
    async def startup() -> None:
        state["pool"] = await create_pool(
            settings.database.url, settings.database.pool_min, settings.database.pool_max
        )
        state["redis"] = bus.connect_redis(settings.redis.url)
        state["limiter"] = IpRateLimiter(state["redis"], keys, settings.ratelimit)

    @app.after_serving
    async def shutdown() -> None:
        await state["pool"].close()
        await state["redis"].aclose()
        if isinstance(steam, SteamWebApi):
            await steam.aclose()

    def fail(code: ErrorCode, message: str | None = None, retry_after: float = 0) -> Response:
        response = error_response(code, STATUS.get(code, 400), message)
        if retry_after:
            response.headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
        return response

    @app.before_request
    async def start_timer() -> None:
        g.started = time.perf_counter()

    @app.after_request
    async def count(response: Response) -> Response:
        metrics.answered(
            request.url_rule.rule if request.url_rule else None,
            request.method,
            response.status_code,
            time.perf_counter() - g.get("started", 0.0),
        )
        if response.status_code >= 400:
            body = await response.get_json(silent=True)
            if isinstance(body, dict) and isinstance(body.get("error"), dict):
                metrics.ERRORS.labels(str(body["error"].get("code"))).inc()
        return response

    @app.before_request
    async def rate_limit() -> Response | None:
        if request.path in ("/health", "/metrics"):
            return None
        limiter: IpRateLimiter = state["limiter"]
        ip = limiter.ip_of(request.remote_addr, request.headers.get("X-Forwarded-For"))
        decision = await limiter.check(auth_rule, ip)
        if decision.allowed:
            return None
        metrics.RATE_LIMITED.labels("auth").inc()
        return fail(
            ErrorCode.RATE_LIMITED,
            f"more than {auth_rule.per_second:g} requests/s from {ip}; retry after"
            f" {decision.retry_after:.2f} s",
            decision.retry_after,
        )

    @app.errorhandler(GameError)
    async def game_error(exc: GameError) -> Response:
        retry = STEAM_RETRY_AFTER if exc.code is ErrorCode.STEAM_UNAVAILABLE else 0
        return fail(exc.code, exc.message, retry)

    async def json_body(optional: bool = False) -> dict[str, Any]:
        """The body as a JSON object (any content type; strict UTF-8), or INVALID_MESSAGE."""
        raw = await request.get_data()
        if optional and not raw.strip():
            return {}
        try:
            body = msgspec.json.decode(raw)
        except (msgspec.DecodeError, RecursionError):  # RecursionError: "[[[[..." deep
            body = None
        if not isinstance(body, dict):
            raise GameError(ErrorCode.INVALID_MESSAGE, "body must be a JSON object")
        return body

    def display_name(body: dict[str, Any], persona: bool = False) -> str | None:
        """The `name` of a login body. A Steam persona name (`persona`) is the player's name on
        Steam, which they cannot change here: characters a name may not hold are removed rather
        than the login refused (an empty result means no name). A development name is refused."""
        if "name" not in body:
            return None
        name = body["name"]
        if persona and isinstance(name, str) and 1 <= len(name) <= MAX_NAME:
            return clean_text(name) or None
        if (
            not isinstance(name, str)
            or not 1 <= len(name) <= MAX_NAME
            or not name.strip()
            or not name.isprintable()
        ):
            raise GameError(
                ErrorCode.INVALID_MESSAGE, f"name must be 1 to {MAX_NAME} printable characters"
            )
        return name.strip()

    def token_reply(
        player_id: int, name: str, refresh: sessions.Issued, created: bool | None = None
    ) -> Response:
        token, _ = issuer.issue(str(player_id), name, session_id=refresh.session_id)
        body: dict[str, Any] = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": settings.auth.access_token_ttl,
            "refresh_token": refresh.refresh_token,
            "refresh_expires_in": settings.auth.refresh_token_ttl,
            "player_id": str(player_id),
            "name": name,
        }
        if created is not None:
            body["created"] = created
        return jsonify(body)

    async def login(steam_id: int, name: str) -> Response:
        player = await players.find_or_create(state["pool"], steam_id, name)
        refresh = await sessions.start(state["pool"], steam_id, settings.auth.refresh_token_ttl)
        return token_reply(player.steam_id, player.display_name, refresh, player.created)

    async def revoke(session_id: str, reason: str) -> bool:
        """Revoke in PostgreSQL, then tell game servers (refuse its tokens, close its sockets)."""
        changed = await sessions.revoke(state["pool"], session_id, reason)
        redis: aioredis.Redis = state["redis"]
        await redis.set(
            keys.revoked_session(session_id), reason, ex=settings.auth.access_token_ttl + LEEWAY
        )
        await redis.publish(keys.session_revoked_channel, session_id)
        metrics.PUBSUB.labels("auth:session_revoked", "out").inc()
        return changed

    @app.post("/login/dev")
    async def login_dev() -> Response:
        """Development login by display name or SteamID64: no Steam, development config only."""
        if not settings.auth.dev_login:
            return fail(ErrorCode.DEV_LOGIN_DISABLED)
        body = await json_body()
        name, raw_id = display_name(body), body.get("steam_id")
        if "steam_id" in body:
            if (
                isinstance(raw_id, str)
                and len(raw_id) == 17
                and raw_id.isascii()
                and raw_id.isdigit()
            ):
                steam_id = int(raw_id)
            elif isinstance(raw_id, int) and not isinstance(raw_id, bool):
                steam_id = raw_id
            else:
                steam_id = 0
            if not players.is_steam_id64(steam_id):
                raise GameError(
                    ErrorCode.INVALID_MESSAGE, "steam_id must be an individual SteamID64"
                )
        elif name is not None:
            steam_id = players.dev_steam_id(name)
        else:
            raise GameError(ErrorCode.INVALID_MESSAGE, "give a name or a steam_id")
        return await login(steam_id, name or f"Player{str(steam_id)[-6:]}")

    @app.post("/login/steam")
    async def login_steam() -> Response:
        if steam is None:
            return fail(ErrorCode.STEAM_LOGIN_UNAVAILABLE)
        body = await json_body()
        ticket = check_ticket_format(body.get("ticket"))
        name = display_name(body, persona=True)
        verified = await steam.verify(ticket)
        check_policy(verified, settings.steam)
        if not players.is_steam_id64(verified.steam_id):
            raise GameError(ErrorCode.STEAM_TICKET_INVALID, "Steam answered an unusable steamid")
        return await login(verified.steam_id, name or f"Player{str(verified.steam_id)[-6:]}")

    @app.post("/token/refresh")
    async def refresh() -> Response:
        body = await json_body()
        token = body.get("refresh_token")
        if not isinstance(token, str):
            raise GameError(ErrorCode.INVALID_MESSAGE, "refresh_token (string) required")
        try:
            rotated = await sessions.rotate(state["pool"], token, settings.auth.refresh_token_ttl)
        except sessions.RefreshReused as reused:
            log.warning("refresh token reuse: session %s revoked", reused.session_id)
            await revoke(reused.session_id, "reuse")
            raise
        return token_reply(rotated.player_id, rotated.display_name, rotated.issued)

    @app.post("/logout")
    async def logout() -> Response:
        """Revoke the session named by a refresh token (body) or a Bearer access token."""
        body = await json_body(optional=True)
        token = body.get("refresh_token")
        session_id: str | None = None
        if "refresh_token" in body:
            session_id = (
                await sessions.session_of(state["pool"], token) if isinstance(token, str) else None
            )
            if session_id is None:
                raise GameError(ErrorCode.INVALID_REFRESH_TOKEN, "unknown refresh token")
        else:
            header = request.headers.get("Authorization", "")
            if not header.lower().startswith("bearer "):
                raise GameError(
                    ErrorCode.UNAUTHORIZED,
                    "give refresh_token in the body or an Authorization: Bearer token",
                )
            identity = verifier.verify(header[7:].strip())
            if identity.session_id is None:
                raise GameError(ErrorCode.UNAUTHORIZED, "the token has no session to revoke")
            session_id = identity.session_id
        revoked = await revoke(session_id, "logout")
        return jsonify({"revoked": revoked, "session_id": session_id})

    @app.get("/.well-known/jwks.json")
    async def jwks() -> Response:
        response = jsonify(issuer.keyring.jwks())
        response.headers["Cache-Control"] = "public, max-age=300"
        return response

    @app.get("/openapi.json")
    async def openapi() -> Response:
        return jsonify(openapi_document())

    @app.get("/metrics")
    async def metrics_endpoint() -> Response:
        """Prometheus exposition (internal: the Ingress does not route /metrics)."""
        body, content_type = metrics.scrape()
        return Response(body, content_type=content_type)

    @app.get("/health")
    async def health() -> Response:
        try:
            await state["pool"].fetchval("SELECT 1")
        except Exception as exc:  # the probe reports any database failure as unhealthy
            response = jsonify(
                {"status": "degraded", "database": str(exc), "instance": settings.instance_id}
            )
            response.status_code = 503
            return response
        return jsonify({"status": "ok", "instance": settings.instance_id})

    @app.errorhandler(HTTPException)
    async def http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        if status == 413:
            return error_response(ErrorCode.MESSAGE_TOO_LARGE, 413)
        if status in (404, 405):
            return error_response(
                ErrorCode.UNKNOWN_MESSAGE,
                status,
                "no such endpoint" if status == 404 else "method not allowed here",
            )
        if status >= 500:
            return error_response(ErrorCode.INTERNAL, status)
        return error_response(ErrorCode.INVALID_MESSAGE, status, exc.description)

    @app.errorhandler(Exception)
    async def unexpected(exc: Exception) -> Response:
        if isinstance(exc, HTTPException):
            return await http_error(exc)
        log.exception("request %s %s failed", request.method, request.path)
        return error_response(ErrorCode.INTERNAL, 500)

    return app
