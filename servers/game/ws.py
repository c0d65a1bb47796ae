"""The player's WebSocket: authenticate, attach to the session, then three tasks until it ends:
a receive loop (one client frame at a time), a send loop (the session's outbox), and a backlog
watch that drops a client which stops reading while its unsent replies pile up."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from servers.common import logs
from servers.common import protocol as p
from servers.common.config import GameSettings, RateLimitSettings
from servers.common.errors import ErrorCode, GameError
from servers.common.keys import Keys
from servers.common.ratelimit import IpRateLimiter, Rule, TokenBucket
from servers.common.tokens import Identity
from servers.game import metrics
from servers.game.commands import Context, dispatch
from servers.game.service import GameService
from servers.game.sessions import (
    CLOSE_RATE_LIMITED,
    CLOSE_SERVICE_RESTART,
    CLOSE_SLOW_CONSUMER,
    CLOSE_UNAUTHORIZED,
    Connection,
    QueueState,
    Registry,
    Written,
)

log = logging.getLogger("cardgame.game.ws")

# A flood is refused messages without this many quiet seconds between them.
FLOOD_QUIET = 1.0
# How long a close frame may wait to be written before the socket is dropped.
CLOSE_WRITE_TIMEOUT = 2.0


class Verifier(Protocol):
    async def verify(self, token: str) -> Identity: ...


@dataclass(frozen=True)
class Limits:
    """What one connection may cost: unsent bytes before the server stops reading the client,
    and how long it may stay over that before it is dropped."""

    max_unsent_bytes: int
    slow_consumer_grace: float

    @classmethod
    def of(cls, settings: GameSettings | None = None) -> Limits:
        """From the settings; the configured defaults when none are given."""
        game = settings or GameSettings()
        return cls(game.max_unsent_bytes, game.slow_consumer_grace)


@dataclass(frozen=True)
class Guard:
    """The front door's limits: connects per IP (Redis, every instance) and messages per
    connection (in process), plus the revoked-session check and the cost of a connection."""

    limiter: IpRateLimiter
    keys: Keys
    settings: RateLimitSettings
    limits: Limits = field(default_factory=Limits.of)

    @property
    def connect_rule(self) -> Rule:
        return Rule("ws_connect", self.settings.ws_connects_per_s, self.settings.ws_connect_burst)

    def bucket(self) -> TokenBucket | None:
        if not self.settings.enabled:
            return None
        return TokenBucket(self.settings.ws_messages_per_s, self.settings.ws_message_burst)


async def _close(ws: ServerConnection, code: int, reason: str) -> None:
    """Close with a code the client may read; a client that does not read its socket would
    keep the close frame waiting for ever, so after a short wait the socket is dropped."""
    try:
        await asyncio.wait_for(ws.close(code, reason), CLOSE_WRITE_TIMEOUT)
    except (TimeoutError, ConnectionClosed):
        ws.transport.abort()


async def _refuse(ws: ServerConnection, code: ErrorCode, message: str | None, close: int) -> None:
    metrics.refused(code)
    with contextlib.suppress(ConnectionClosed):
        await ws.send(p.encode(p.error_message(code, message)).decode())
    await _close(ws, close, code.value)


def close_revoked(registry: Registry, session_id: str) -> int:
    """Close every socket of a revoked login session; returns how many."""
    closed = 0
    for session in registry:
        conn = session.conn
        if conn is not None and conn.session_id == session_id:
            conn.send(p.error_message(ErrorCode.TOKEN_REVOKED))
            conn.close(CLOSE_UNAUTHORIZED, ErrorCode.TOKEN_REVOKED.value)
            closed += 1
    return closed


def bearer_token(ws: ServerConnection) -> str | None:
    header = ws.request.headers.get("Authorization", "") if ws.request else ""
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    # Many WebSocket clients (Unity's included) cannot set headers: accept ?token= as well.
    query = parse_qs(urlsplit(ws.request.path).query) if ws.request else {}
    return query.get("token", [None])[-1]


async def serve_socket(
    ws: ServerConnection,
    service: GameService,
    tokens: Verifier,
    max_message_bytes: int,
    guard: Guard | None = None,
) -> None:
    pod = service.pod
    ip: str | None = str(ws.remote_address[0]) if ws.remote_address else None
    if guard is not None:
        forwarded = ws.request.headers.get("X-Forwarded-For") if ws.request else None
        ip = guard.limiter.ip_of(ip, forwarded)
        decision = await guard.limiter.check(guard.connect_rule, ip)
        if not decision.allowed:
            metrics.RATE_LIMITED.labels("ws_connect").inc()
            await _refuse(
                ws,
                ErrorCode.RATE_LIMITED,
                f"too many connections from {ip}; retry after {decision.retry_after:.2f} s",
                CLOSE_RATE_LIMITED,
            )
            return
    token = bearer_token(ws)
    try:
        if not token:
            raise GameError(
                ErrorCode.UNAUTHORIZED, "missing token: use Authorization: Bearer or ?token="
            )
        identity = await tokens.verify(token)
        if (
            guard is not None
            and identity.session_id is not None
            and await pod.redis.exists(guard.keys.revoked_session(identity.session_id))
        ):
            raise GameError(ErrorCode.TOKEN_REVOKED)
    except GameError as exc:
        await _refuse(ws, exc.code, exc.message, CLOSE_UNAUTHORIZED)
        return
    logs.bind(player_id=identity.player_id)  # this socket's task (and its children) only
    if pod.draining:
        await _refuse(ws, ErrorCode.SERVER_DRAINING, None, CLOSE_SERVICE_RESTART)
        return
    limits = guard.limits if guard is not None else Limits.of()
    conn = Connection(limits.max_unsent_bytes)
    conn.session_id = identity.session_id
    session, resumed, missed = await service.resume.connect(identity.player_id, identity.name, conn)
    # The welcome goes first; what reached the session while it was attached follows it.
    conn.open(service.resume.welcome(session, resumed))
    if isinstance(missed, p.BattleResult):
        # The battle marker was still set: no delivery completed, so send it even if marked;
        # unless the live result reached the session while it was being attached.
        if session.state is QueueState.IN_BATTLE and session.match_id == missed.match_id:
            await service.inbox.deliver(session, missed, again=True)
    elif missed is not None:
        conn.send(missed)
    bucket = guard.bucket() if guard is not None else None
    flood_limit = guard.settings.ws_flood_close_after if guard is not None else 0
    receiver = asyncio.create_task(
        _receive_loop(ws, conn, Context(pod, session, ip), max_message_bytes, bucket, flood_limit)
    )
    sender = asyncio.create_task(_send_loop(ws, conn))
    tasks = {receiver, sender}
    watches: set[asyncio.Task[None]] = set()

    def watch_backlog() -> None:
        # One watch at a time: it follows the backlog until it drains. (A finished one is
        # still in the set until its done callback runs: it does not count.)
        if any(not watch.done() for watch in watches):
            return
        watch = asyncio.create_task(_watch_backlog(ws, conn, limits.slow_consumer_grace))
        watches.add(watch)
        watch.add_done_callback(watches.discard)

    conn.on_backlog = watch_backlog
    metrics.CONNECTS.labels("accepted").inc()
    metrics.CONNECTIONS.inc()
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            error = None if task.cancelled() else task.exception()
            if error is not None and not isinstance(error, ConnectionClosed | ConnectionError):
                log.error("socket of %s ended by an error", identity.player_id, exc_info=error)

    finally:
        metrics.CONNECTIONS.dec()
        conn.on_backlog = None
        ending = tasks | watches
        for task in ending:
            task.cancel()
        # Awaited, so no task outlives the socket (and none is destroyed while pending).
        await asyncio.gather(*ending, return_exceptions=True)
        pod.registry.detach(session, conn)


async def _send_loop(ws: ServerConnection, conn: Connection) -> None:
    while True:
        item = await conn.outbox.get()
        if isinstance(item, tuple):
            code, reason = item
            await _close(ws, code, reason)
            return
        data, then = (item.data, item.then) if isinstance(item, Written) else (item, None)
        # Text frames from the encoded bytes as they are (no decode and re-encode); waits
        # while the client's socket is full.
        await ws.send(data, text=True)
        conn.sent(len(data))
        if then is not None:
            then()


async def _discard(ws: ServerConnection) -> None:
    """Read and drop what the client still sends until the socket closes: its reply to our
    close frame comes behind its flood, and an unread socket would hide it."""
    with contextlib.suppress(ConnectionClosed):
        while True:
            await ws.recv()


async def _watch_backlog(ws: ServerConnection, conn: Connection, grace: float) -> None:
    """Started when the connection's unsent replies go above the limit: drop the client if
    they stay there for `grace` seconds. It stopped reading (the receive loop already stopped
    taking its requests), and whatever it is owed would otherwise stay in memory as long as it
    keeps the socket open."""
    while not conn.writable.is_set():  # woken by a drain that a new reply already undid: on
        try:
            await asyncio.wait_for(conn.writable.wait(), grace)
        except TimeoutError:
            metrics.DROPPED.labels(ErrorCode.SLOW_CONSUMER.value).inc()
            log.info("dropping a client that does not read: %d bytes unsent", conn.unsent)
            conn.close(CLOSE_SLOW_CONSUMER, ErrorCode.SLOW_CONSUMER.value)
            await _close(ws, CLOSE_SLOW_CONSUMER, ErrorCode.SLOW_CONSUMER.value)
            return


async def _receive_loop(
    ws: ServerConnection,
    conn: Connection,
    ctx: Context,
    max_message_bytes: int,
    bucket: TokenBucket | None = None,
    flood_limit: int = 0,
) -> None:
    session = ctx.session
    refused = 0  # messages refused by the per-connection limit with no quiet second between
    last_refused = 0.0
    while True:
        # Replies the client has not read yet: take no new request until they drain (TCP then
        # pushes back on the client), or until the backlog watch drops it.
        await conn.writable.wait()
        try:
            frame = await ws.recv()
        except ConnectionClosed:
            return
        if conn.closed:  # replaced by a newer socket of the player: its requests are not ours
            return
        wait = bucket.take() if bucket is not None else 0.0
        if wait and bucket is not None:
            metrics.RATE_LIMITED.labels("ws_message").inc()
            now = time.monotonic()
            refused = refused + 1 if now - last_refused < FLOOD_QUIET else 1
            last_refused = now
            if flood_limit and refused >= flood_limit:
                metrics.DROPPED.labels(ErrorCode.RATE_LIMITED.value).inc()
                session.send_error(ErrorCode.RATE_LIMITED, "message flood: closing")
                conn.close(CLOSE_RATE_LIMITED, ErrorCode.RATE_LIMITED.value)
                await _discard(ws)
                return
            session.send_error(
                ErrorCode.RATE_LIMITED,
                f"message not handled: more than {bucket.rate:g} messages/s;"
                f" retry after {wait:.2f} s",
                _ref_of(frame, max_message_bytes),
            )
            continue
        if len(frame) > max_message_bytes:
            session.send_error(
                ErrorCode.MESSAGE_TOO_LARGE,
                f"message of {len(frame)} bytes; the limit is {max_message_bytes}",
            )
            continue
        try:
            message = p.decode_client(frame)
        except p.ProtocolError as exc:
            # One line per refused frame, no traceback: a client's mistake is not a server error.
            log.info("frame from %s refused: %s %.120s", session.player_id, exc.code, exc.message)
            session.send_error(exc.code, exc.message, exc.ref)
            continue
        except Exception:  # a decoder bug must cost this frame, not the connection
            log.exception("frame from %s could not be decoded", session.player_id)
            session.send_error(ErrorCode.INTERNAL)
            continue
        metrics.message_in(message)
        try:
            await dispatch(ctx, message)
        except GameError as exc:
            session.send_error(exc.code, exc.message, message.id)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("message %s from %s failed", type(message).__name__, session.player_id)
            session.send_error(ErrorCode.INTERNAL, None, message.id)


def _ref_of(frame: str | bytes, max_message_bytes: int) -> str | None:
    """The correlation id of a frame that will not be handled, when it can be read cheaply."""
    if len(frame) > max_message_bytes:
        return None
    try:
        return p.decode_client(frame).id
    except p.ProtocolError as exc:
        return exc.ref
    except Exception:
        return None
