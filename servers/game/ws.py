"""The player's WebSocket: authenticate, attach to the session, then receive and send loops."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Protocol

from quart import websocket

from servers.common import logs
from servers.common import protocol as p
from servers.common.config import RateLimitSettings
from servers.common.errors import ErrorCode, GameError
from servers.common.keys import GameMode, Keys
from servers.common.ratelimit import IpRateLimiter, Rule, TokenBucket
from servers.common.tokens import Identity
from servers.game import history, lobby, metrics
from servers.game.parties import message as party_message
from servers.game.relay import Relay
from servers.game.sessions import (
    CLOSE_RATE_LIMITED,
    CLOSE_SERVICE_RESTART,
    CLOSE_UNAUTHORIZED,
    Connection,
    QueueState,
    Registry,
    Session,
)

log = logging.getLogger("cardgame.game.ws")

# A flood is refused messages without this many quiet seconds between them.
FLOOD_QUIET = 1.0


class Verifier(Protocol):
    async def verify(self, token: str) -> Identity: ...


@dataclass(frozen=True)
class Guard:
    """The front door's limits: connects per IP (Redis, every instance) and messages per
    connection (in process), plus the revoked-session check."""

    limiter: IpRateLimiter
    keys: Keys
    settings: RateLimitSettings

    @property
    def connect_rule(self) -> Rule:
        return Rule("ws_connect", self.settings.ws_connects_per_s, self.settings.ws_connect_burst)

    def bucket(self) -> TokenBucket | None:
        if not self.settings.enabled:
            return None
        return TokenBucket(self.settings.ws_messages_per_s, self.settings.ws_message_burst)


async def _refuse(code: ErrorCode, message: str | None, close_code: int) -> None:
    metrics.refused(code)
    await websocket.accept()
    await websocket.send(p.encode(p.error_message(code, message)).decode())
    await websocket.close(close_code, code.value)


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


def bearer_token() -> str | None:
    header = websocket.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    # Many WebSocket clients (Unity's included) cannot set headers: accept ?token= as well.
    return websocket.args.get("token")


async def serve_socket(
    relay: Relay, tokens: Verifier, max_message_bytes: int, guard: Guard | None = None
) -> None:
    ip = websocket.remote_addr
    if guard is not None:
        ip = guard.limiter.ip_of(websocket.remote_addr, websocket.headers.get("X-Forwarded-For"))
        decision = await guard.limiter.check(guard.connect_rule, ip)
        if not decision.allowed:
            metrics.RATE_LIMITED.labels("ws_connect").inc()
            await _refuse(
                ErrorCode.RATE_LIMITED,
                f"too many connections from {ip}; retry after {decision.retry_after:.2f} s",
                CLOSE_RATE_LIMITED,
            )
            return
    token = bearer_token()
    try:
        if not token:
            raise GameError(
                ErrorCode.UNAUTHORIZED, "missing token: use Authorization: Bearer or ?token="
            )
        identity = await tokens.verify(token)
        if (
            guard is not None
            and identity.session_id is not None
            and await relay.redis.exists(guard.keys.revoked_session(identity.session_id))
        ):
            raise GameError(ErrorCode.TOKEN_REVOKED)
    except GameError as exc:
        await _refuse(exc.code, exc.message, CLOSE_UNAUTHORIZED)
        return
    logs.bind(player_id=identity.player_id)  # this socket's task (and its children) only
    await websocket.accept()
    if relay.draining:
        metrics.refused(ErrorCode.SERVER_DRAINING)
        await websocket.send(p.encode(p.error_message(ErrorCode.SERVER_DRAINING)).decode())
        await websocket.close(CLOSE_SERVICE_RESTART, ErrorCode.SERVER_DRAINING.value)
        return
    conn = Connection()
    conn.session_id = identity.session_id
    session, resumed, missed = await relay.connect(identity.player_id, identity.name, conn)
    conn.send(relay.welcome(session, resumed))
    if isinstance(missed, p.BattleResult):
        # The battle marker was still set: no delivery completed, so send it even if marked.
        await relay.deliver(session, missed, again=True)
    elif missed is not None:
        conn.send(missed)
    bucket = guard.bucket() if guard is not None else None
    flood_limit = guard.settings.ws_flood_close_after if guard is not None else 0
    receiver = asyncio.create_task(
        _receive_loop(relay, session, max_message_bytes, bucket, flood_limit, ip)
    )
    sender = asyncio.create_task(_send_loop(conn))
    metrics.CONNECTS.labels("accepted").inc()
    metrics.CONNECTIONS.inc()
    try:
        done, _ = await asyncio.wait({receiver, sender}, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if (
                not task.cancelled()
                and task.exception() is not None
                and not isinstance(task.exception(), ConnectionError)
            ):
                log.error(
                    "socket of %s ended by an error", identity.player_id, exc_info=task.exception()
                )
        if receiver in done and conn.closed and not sender.done():
            # The receiver decided to close (a flood): let the sender flush and send the close.
            await asyncio.wait({sender}, timeout=5)
    finally:
        metrics.CONNECTIONS.dec()
        receiver.cancel()
        sender.cancel()
        relay.registry.detach(session, conn)


async def _send_loop(conn: Connection) -> None:
    while True:
        item = await conn.outbox.get()
        if isinstance(item, tuple):
            code, reason = item
            await websocket.close(code, reason)
            return
        await websocket.send(item.decode())


async def _receive_loop(
    relay: Relay,
    session: Session,
    max_message_bytes: int,
    bucket: TokenBucket | None = None,
    flood_limit: int = 0,
    ip: str | None = None,
) -> None:
    refused = 0  # messages refused by the per-connection limit with no quiet second between
    last_refused = 0.0
    while True:
        frame = await websocket.receive()
        if frame is None:  # found by the fuzzer: Quart hands an empty binary frame over as None
            frame = b""
        wait = bucket.take() if bucket is not None else 0.0
        if wait and bucket is not None:
            metrics.RATE_LIMITED.labels("ws_message").inc()
            now = time.monotonic()
            refused = refused + 1 if now - last_refused < FLOOD_QUIET else 1
            last_refused = now
            if flood_limit and refused >= flood_limit:
                session.send_error(ErrorCode.RATE_LIMITED, "message flood: closing")
                if session.conn is not None:
                    session.conn.close(CLOSE_RATE_LIMITED, ErrorCode.RATE_LIMITED.value)
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
            await handle(relay, session, message, ip)
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


async def handle(relay: Relay, session: Session, msg: Any, ip: str | None = None) -> None:
    """One client message; `ip` is the client's address, for limits per address."""
    player = int(session.player_id)
    pool = relay.pool
    match msg:
        case p.Ping():
            session.send(p.Pong(id=msg.id))
        case p.GetProfile():
            profile = await lobby.profile(pool, player)
            profile.id = msg.id
            session.send(profile)
        case p.GetCollection():
            collection = await lobby.collection(pool, player)
            collection.id = msg.id
            session.send(collection)
        case p.GetDecks():
            decks = await lobby.decks(pool, player)
            decks.id = msg.id
            session.send(decks)
        case p.SaveDeck():
            deck = await lobby.save_deck(pool, player, msg)
            session.send(p.DeckSaved(id=msg.id, deck=deck))
        case p.SetActiveDeck():
            await lobby.set_active_deck(pool, player, msg.deck_id)
            session.send(p.ActiveDeckSet(id=msg.id, deck_id=msg.deck_id))
        case p.Enqueue():
            await session.request_enqueue(msg.mode, msg.id)
        case p.Dequeue():
            await session.request_dequeue(msg.id)
        case p.SetOptions():
            session.timeline_gzip = msg.timeline_gzip
            session.send(
                p.Options(
                    id=msg.id,
                    timeline_gzip=session.timeline_gzip,
                    gzip_threshold=session.gzip_threshold,
                )
            )
        case p.CreateParty() | p.JoinParty() | p.LeaveParty() | p.GetParty():
            await _handle_party(relay, session, msg, ip)
        case p.StartPve():
            await relay.start_pve(session, msg.difficulty, msg.id)
        case p.GetHistory():
            limit = max(1, min(msg.limit, relay.history_limit))
            matches = await history.history(pool, player, limit)
            matches.id = msg.id
            session.send(matches)
        case p.GetReplay():
            replay = await history.replay(pool, player, msg.match_id)
            replay.id = msg.id
            replay.timeline, replay.timeline_gzip = session.pack_timeline(replay.timeline)
            session.send(replay)
        case _:
            raise GameError(ErrorCode.UNKNOWN_MESSAGE)


def _require_idle(session: Session) -> None:
    """Only a player who is neither queued nor in a battle creates or joins a party."""
    if session.state is QueueState.IDLE:
        return
    if session.state is QueueState.QUEUED:
        code = ErrorCode.ALREADY_QUEUED
    elif session.state is QueueState.IN_BATTLE:
        code = ErrorCode.IN_BATTLE
    else:
        code = ErrorCode.REQUEST_IN_PROGRESS
    raise GameError(code, "leave the queue first")


async def _handle_party(
    relay: Relay,
    session: Session,
    msg: p.CreateParty | p.JoinParty | p.LeaveParty | p.GetParty,
    ip: str | None,
) -> None:
    match msg:
        case p.CreateParty():
            _require_idle(session)
            session.send(
                party_message(await relay.parties.create(session.player_id), "created", msg.id)
            )
        case p.JoinParty():
            _require_idle(session)
            if relay.limits is not None:  # every attempt is a guess at someone's invite code
                await relay.limits.party_join(session.player_id, ip)
            session.send(
                party_message(
                    await relay.parties.join(session.player_id, msg.code), "joined", msg.id
                )
            )
        case p.LeaveParty():
            if (
                session.state in (QueueState.ENQUEUING, QueueState.QUEUED, QueueState.DEQUEUING)
                and session.mode is GameMode.PARTY
            ):
                raise GameError(ErrorCode.ALREADY_QUEUED, "dequeue from the party duel first")
            code = await relay.parties.leave(session.player_id)
            session.send(p.PartyLeft(id=msg.id, code=code))
        case p.GetParty():
            record = await relay.parties.current(session.player_id)
            if record is None:
                raise GameError(ErrorCode.NOT_IN_PARTY)
            session.send(party_message(record, "state", msg.id))
