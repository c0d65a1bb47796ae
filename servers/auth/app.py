"""Auth server: logs players in and issues session tokens (public HTTP).

Routes (described for machines in `openapi.py`, served at /openapi.json):
    POST /login/steam    Steam ticket -> access + refresh token (production path)
    POST /login/dev      name or SteamID64 -> tokens (development config only)
    POST /token/refresh  refresh token -> new access + refresh token (rotation, reuse detection)
    POST /logout         revoke the session (refresh token in the body, or Bearer access token)
    GET  /.well-known/jwks.json   public keys game servers verify with
    GET  /openapi.json, GET /health
Every request except /health counts against the per-IP rate limit (shared through Redis).

`create_app` lists every hook and route; what they share while the server runs is one
`AuthState`, made at start-up and read through `auth_state()`.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import asyncpg
import msgspec
import redis.asyncio as aioredis
from quart import Quart, Response, current_app, g, jsonify, request
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
# The key of the running server's `AuthState` in `app.extensions`.
EXTENSION = "cardgame.auth"


def steam_from_settings(settings: Settings) -> TicketVerifier | None:
    s = settings.steam
    return SteamWebApi(s) if s.web_api_url and s.web_api_key and s.app_id else None


@dataclass(frozen=True)
class AuthState:
    """What a running auth server holds; made by `before_serving`, closed by `after_serving`."""

    settings: Settings
    keys: Keys
    issuer: TokenIssuer
    verifier: TokenVerifier
    auth_rule: Rule
    steam: TicketVerifier | None
    pool: asyncpg.Pool
    redis: aioredis.Redis
    limiter: IpRateLimiter

    @classmethod
    async def start(
        cls, settings: Settings, issuer: TokenIssuer, steam: TicketVerifier | None
    ) -> AuthState:
        keys = Keys(settings.redis.namespace)
        pool = await create_pool(
            settings.database.url, settings.database.pool_min, settings.database.pool_max
        )
        redis = bus.connect_redis(settings.redis.url)
        return cls(
            settings=settings,
            keys=keys,
            issuer=issuer,
            verifier=TokenVerifier(settings.auth, issuer.keyring.public_keys()),
            auth_rule=Rule("auth", settings.ratelimit.auth_per_s, settings.ratelimit.auth_burst),
            steam=steam,
            pool=pool,
            redis=redis,
            limiter=IpRateLimiter(redis, keys, settings.ratelimit),
        )

    async def close(self) -> None:
        await self.pool.close()
        await self.redis.aclose()
        if isinstance(self.steam, SteamWebApi):
            await self.steam.aclose()

    def token_reply(
        self, player_id: int, name: str, refresh: sessions.Issued, created: bool | None = None
    ) -> Response:
        token, _ = self.issuer.issue(str(player_id), name, session_id=refresh.session_id)
        body: dict[str, Any] = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": self.settings.auth.access_token_ttl,
            "refresh_token": refresh.refresh_token,
            "refresh_expires_in": self.settings.auth.refresh_token_ttl,
            "player_id": str(player_id),
            "name": name,
        }
        if created is not None:
            body["created"] = created
        return jsonify(body)

    async def login(self, steam_id: int, name: str) -> Response:
        player = await players.find_or_create(self.pool, steam_id, name)
        refresh = await sessions.start(self.pool, steam_id, self.settings.auth.refresh_token_ttl)
        return self.token_reply(player.steam_id, player.display_name, refresh, player.created)

    async def revoke(self, session_id: str, reason: str) -> bool:
        """Revoke in PostgreSQL, then tell game servers (refuse its tokens, close its sockets)."""
        changed = await sessions.revoke(self.pool, session_id, reason)
        await self.redis.set(
            self.keys.revoked_session(session_id),
            reason,
            ex=self.settings.auth.access_token_ttl + LEEWAY,
        )
        await self.redis.publish(self.keys.session_revoked_channel, session_id)
        metrics.PUBSUB.labels("auth:session_revoked", "out").inc()
        return changed


def auth_state() -> AuthState:
    """The state of the auth server serving the current request (or starting, or stopping)."""
    state: AuthState = current_app.extensions[EXTENSION]
    return state


def create_app(settings: Settings, steam: TicketVerifier | None = None) -> Quart:
    app = Quart("cardgame.auth")
    app.config["MAX_CONTENT_LENGTH"] = 16 * 1024
    # Made here rather than at start-up: a missing signing key fails before a port is bound.
    issuer = TokenIssuer(settings.auth)
    steam = steam if steam is not None else steam_from_settings(settings)

    @app.before_serving
    async def startup() -> None:
        app.extensions[EXTENSION] = await AuthState.start(settings, issuer, steam)

    app.after_serving(shutdown)
    # A request: timer, rate limit, route (or error handler), then the metrics of its reply.
    app.before_request(start_timer)
    app.before_request(rate_limit)
    app.after_request(count)
    app.post("/login/dev")(login_dev)
    app.post("/login/steam")(login_steam)
    app.post("/token/refresh")(refresh)
    app.post("/logout")(logout)
    app.get("/.well-known/jwks.json")(jwks)
    app.get("/openapi.json")(openapi)
    app.get("/metrics")(metrics_endpoint)
    app.get("/health")(health)
    app.register_error_handler(GameError, game_error)
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(Exception, unexpected)
    return app


async def shutdown() -> None:
    await auth_state().close()


def fail(code: ErrorCode, message: str | None = None, retry_after: float = 0) -> Response:
    response = error_response(code, STATUS.get(code, 400), message)
    if retry_after:
        response.headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    return response


async def start_timer() -> None:
    g.started = time.perf_counter()


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


async def rate_limit() -> Response | None:
    if request.path in ("/health", "/metrics"):
        return None
    state = auth_state()
    limiter, rule = state.limiter, state.auth_rule
    ip = limiter.ip_of(request.remote_addr, request.headers.get("X-Forwarded-For"))
    decision = await limiter.check(rule, ip)
    if decision.allowed:
        return None
    metrics.RATE_LIMITED.labels("auth").inc()
    return fail(
        ErrorCode.RATE_LIMITED,
        f"more than {rule.per_second:g} requests/s from {ip}; retry after"
        f" {decision.retry_after:.2f} s",
        decision.retry_after,
    )


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


async def login_dev() -> Response:
    """Development login by display name or SteamID64: no Steam, development config only."""
    state = auth_state()
    if not state.settings.auth.dev_login:
        return fail(ErrorCode.DEV_LOGIN_DISABLED)
    body = await json_body()
    name, raw_id = display_name(body), body.get("steam_id")
    if "steam_id" in body:
        if isinstance(raw_id, str) and len(raw_id) == 17 and raw_id.isascii() and raw_id.isdigit():
            steam_id = int(raw_id)
        elif isinstance(raw_id, int) and not isinstance(raw_id, bool):
            steam_id = raw_id
        else:
            steam_id = 0
        if not players.is_steam_id64(steam_id):
            raise GameError(ErrorCode.INVALID_MESSAGE, "steam_id must be an individual SteamID64")
    elif name is not None:
        steam_id = players.dev_steam_id(name)
    else:
        raise GameError(ErrorCode.INVALID_MESSAGE, "give a name or a steam_id")
    return await state.login(steam_id, name or f"Player{str(steam_id)[-6:]}")


async def login_steam() -> Response:
    state = auth_state()
    steam = state.steam
    if steam is None:
        return fail(ErrorCode.STEAM_LOGIN_UNAVAILABLE)
    body = await json_body()
    ticket = check_ticket_format(body.get("ticket"))
    name = display_name(body, persona=True)
    verified = await steam.verify(ticket)
    check_policy(verified, state.settings.steam)
    if not players.is_steam_id64(verified.steam_id):
        raise GameError(ErrorCode.STEAM_TICKET_INVALID, "Steam answered an unusable steamid")
    return await state.login(verified.steam_id, name or f"Player{str(verified.steam_id)[-6:]}")


async def refresh() -> Response:
    state = auth_state()
    body = await json_body()
    token = body.get("refresh_token")
    if not isinstance(token, str):
        raise GameError(ErrorCode.INVALID_MESSAGE, "refresh_token (string) required")
    try:
        rotated = await sessions.rotate(state.pool, token, state.settings.auth.refresh_token_ttl)
    except sessions.RefreshReused as reused:
        log.warning("refresh token reuse: session %s revoked", reused.session_id)
        await state.revoke(reused.session_id, "reuse")
        raise
    return state.token_reply(rotated.player_id, rotated.display_name, rotated.issued)


async def logout() -> Response:
    """Revoke the session named by a refresh token (body) or a Bearer access token."""
    state = auth_state()
    body = await json_body(optional=True)
    token = body.get("refresh_token")
    session_id: str | None = None
    if "refresh_token" in body:
        session_id = (
            await sessions.session_of(state.pool, token) if isinstance(token, str) else None
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
        identity = state.verifier.verify(header[7:].strip())
        if identity.session_id is None:
            raise GameError(ErrorCode.UNAUTHORIZED, "the token has no session to revoke")
        session_id = identity.session_id
    revoked = await state.revoke(session_id, "logout")
    return jsonify({"revoked": revoked, "session_id": session_id})


async def jwks() -> Response:
    response = jsonify(auth_state().issuer.keyring.jwks())
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


async def openapi() -> Response:
    return jsonify(openapi_document())


async def metrics_endpoint() -> Response:
    """Prometheus exposition (internal: the Ingress does not route /metrics)."""
    body, content_type = metrics.scrape()
    return Response(body, content_type=content_type)


async def health() -> Response:
    state = auth_state()
    try:
        await state.pool.fetchval("SELECT 1")
    except Exception as exc:  # the probe reports any database failure as unhealthy
        response = jsonify(
            {"status": "degraded", "database": str(exc), "instance": state.settings.instance_id}
        )
        response.status_code = 503
        return response
    return jsonify({"status": "ok", "instance": state.settings.instance_id})


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


async def unexpected(exc: Exception) -> Response:
    if isinstance(exc, HTTPException):
        return await http_error(exc)
    log.exception("request %s %s failed", request.method, request.path)
    return error_response(ErrorCode.INTERNAL, 500)
