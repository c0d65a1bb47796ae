"""The player's WebSocket: authenticate, attach to the session, then receive and send loops."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from quart import websocket

from servers.common import protocol as p
from servers.common.errors import ErrorCode, GameError
from servers.common.tokens import TokenService
from servers.game import lobby
from servers.game.relay import Relay
from servers.game.sessions import (
    CLOSE_SERVICE_RESTART,
    CLOSE_UNAUTHORIZED,
    Connection,
    Session,
)

log = logging.getLogger("cardgame.game.ws")


def bearer_token() -> str | None:
    header = websocket.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    # Many WebSocket clients (Unity's included) cannot set headers: accept ?token= as well.
    return websocket.args.get("token")


async def serve_socket(relay: Relay, tokens: TokenService, max_message_bytes: int) -> None:
    token = bearer_token()
    try:
        if not token:
            raise GameError(ErrorCode.UNAUTHORIZED, "missing token: use Authorization: Bearer"
                                                    " or ?token=")
        identity = tokens.verify(token)
    except GameError as exc:
        await websocket.accept()
        await websocket.send(p.encode(p.error_message(exc.code, exc.message)).decode())
        await websocket.close(CLOSE_UNAUTHORIZED, exc.code.value)
        return
    await websocket.accept()
    if relay.draining:
        await websocket.send(p.encode(p.error_message(ErrorCode.SERVER_DRAINING)).decode())
        await websocket.close(CLOSE_SERVICE_RESTART, ErrorCode.SERVER_DRAINING.value)
        return
    conn = Connection()
    session, resumed, missed = await relay.connect(identity.player_id, identity.name, conn)
    conn.send(relay.welcome(session, resumed))
    if missed is not None:
        await relay.deliver(session, missed)
    receiver = asyncio.create_task(_receive_loop(relay, session, max_message_bytes))
    sender = asyncio.create_task(_send_loop(conn))
    try:
        await asyncio.wait({receiver, sender}, return_when=asyncio.FIRST_COMPLETED)
    finally:
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


async def _receive_loop(relay: Relay, session: Session, max_message_bytes: int) -> None:
    while True:
        frame = await websocket.receive()
        if len(frame) > max_message_bytes:
            session.send_error(ErrorCode.MESSAGE_TOO_LARGE,
                               f"message of {len(frame)} bytes; the limit is {max_message_bytes}")
            continue
        try:
            message = p.decode_client(frame)
        except p.ProtocolError as exc:
            session.send_error(exc.code, exc.message, exc.ref)
            continue
        try:
            await handle(relay, session, message)
        except GameError as exc:
            session.send_error(exc.code, exc.message, message.id)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("message %s from %s failed", type(message).__name__, session.player_id)
            session.send_error(ErrorCode.INTERNAL, None, message.id)


async def handle(relay: Relay, session: Session, msg: Any) -> None:
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
        case _:
            raise GameError(ErrorCode.UNKNOWN_MESSAGE)
