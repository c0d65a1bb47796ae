"""The client's commands: one handler per message type of the protocol, in one table.

`dispatch` looks the message's type up in `HANDLERS` (filled by `@command`); every client
message type has a handler (a test holds the table to the protocol). A handler raises GameError
to refuse; the socket turns it into an `error` frame for that message's id.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from servers.common import protocol as p
from servers.common.errors import ErrorCode, GameError
from servers.common.keys import GameMode
from servers.game import history, lobby, pve
from servers.game.parties import message as party_message
from servers.game.pod import Pod
from servers.game.sessions import QueueState, Session


@dataclass(frozen=True)
class Context:
    """Who asks: the pod serving them, their session, their address (limits per address)."""

    pod: Pod
    session: Session
    ip: str | None = None

    @property
    def player(self) -> int:
        return int(self.session.player_id)


M = TypeVar("M", bound=p.ClientMessage)
Handler = Callable[[Context, M], Awaitable[None]]
HANDLERS: dict[type[p.ClientMessage], Handler[Any]] = {}


def command(kind: type[M]) -> Callable[[Handler[M]], Handler[M]]:
    """Register the handler of one client message type."""

    def register(handler: Handler[M]) -> Handler[M]:
        HANDLERS[kind] = handler
        return handler

    return register


async def dispatch(ctx: Context, message: p.ClientMessage) -> None:
    handler = HANDLERS.get(type(message))
    if handler is None:
        raise GameError(ErrorCode.UNKNOWN_MESSAGE)
    await handler(ctx, message)


# ---------------------------------------------------------------- lobby
@command(p.Ping)
async def ping(ctx: Context, msg: p.Ping) -> None:
    ctx.session.send(p.Pong(id=msg.id))


@command(p.GetProfile)
async def get_profile(ctx: Context, msg: p.GetProfile) -> None:
    profile = await lobby.profile(ctx.pod.pool, ctx.player)
    profile.id = msg.id
    ctx.session.send(profile)


@command(p.GetCollection)
async def get_collection(ctx: Context, msg: p.GetCollection) -> None:
    collection = await lobby.collection(ctx.pod.pool, ctx.player)
    collection.id = msg.id
    ctx.session.send(collection)


@command(p.GetDecks)
async def get_decks(ctx: Context, msg: p.GetDecks) -> None:
    decks = await lobby.decks(ctx.pod.pool, ctx.player)
    decks.id = msg.id
    ctx.session.send(decks)


@command(p.SaveDeck)
async def save_deck(ctx: Context, msg: p.SaveDeck) -> None:
    deck = await lobby.save_deck(ctx.pod.pool, ctx.player, msg)
    ctx.session.snapshot = None  # it may be the active deck
    ctx.session.send(p.DeckSaved(id=msg.id, deck=deck))


@command(p.SetActiveDeck)
async def set_active_deck(ctx: Context, msg: p.SetActiveDeck) -> None:
    await lobby.set_active_deck(ctx.pod.pool, ctx.player, msg.deck_id)
    ctx.session.snapshot = None
    ctx.session.send(p.ActiveDeckSet(id=msg.id, deck_id=msg.deck_id))


@command(p.SetOptions)
async def set_options(ctx: Context, msg: p.SetOptions) -> None:
    session = ctx.session
    session.timeline_gzip = msg.timeline_gzip
    session.send(
        p.Options(
            id=msg.id, timeline_gzip=session.timeline_gzip, gzip_threshold=session.gzip_threshold
        )
    )


@command(p.GetHistory)
async def get_history(ctx: Context, msg: p.GetHistory) -> None:
    limit = max(1, min(msg.limit, ctx.pod.settings.history_limit))
    matches = await history.history(ctx.pod.pool, ctx.player, limit)
    matches.id = msg.id
    ctx.session.send(matches)


@command(p.GetReplay)
async def get_replay(ctx: Context, msg: p.GetReplay) -> None:
    replay = await history.replay(ctx.pod.pool, ctx.player, msg.match_id)
    replay.id = msg.id
    replay.timeline, replay.timeline_gzip = ctx.session.pack_timeline(replay.timeline)
    ctx.session.send(replay)


# ---------------------------------------------------------------- queue and battles
@command(p.Enqueue)
async def enqueue(ctx: Context, msg: p.Enqueue) -> None:
    await ctx.session.request_enqueue(msg.mode, msg.id)


@command(p.Dequeue)
async def dequeue(ctx: Context, msg: p.Dequeue) -> None:
    await ctx.session.request_dequeue(msg.id)


@command(p.StartPve)
async def start_pve(ctx: Context, msg: p.StartPve) -> None:
    await pve.start(ctx.pod, ctx.session, msg.difficulty, msg.id)


# ---------------------------------------------------------------- parties
@command(p.CreateParty)
async def create_party(ctx: Context, msg: p.CreateParty) -> None:
    ctx.session.ensure_idle("leave the queue first")
    party = await ctx.pod.parties.create(ctx.session.player_id)
    ctx.session.send(party_message(party, "created", msg.id))


@command(p.JoinParty)
async def join_party(ctx: Context, msg: p.JoinParty) -> None:
    ctx.session.ensure_idle("leave the queue first")
    if ctx.pod.limits is not None:  # every attempt is a guess at someone's invite code
        await ctx.pod.limits.party_join(ctx.session.player_id, ctx.ip)
    party = await ctx.pod.parties.join(ctx.session.player_id, msg.code)
    ctx.session.send(party_message(party, "joined", msg.id))


@command(p.LeaveParty)
async def leave_party(ctx: Context, msg: p.LeaveParty) -> None:
    # Refused while the player waits for the duel: the script checks the player's record; an
    # enqueue still on its way to a match server is known here only.
    if ctx.session.state is QueueState.ENQUEUING and ctx.session.mode is GameMode.PARTY:
        raise GameError(ErrorCode.ALREADY_QUEUED, "dequeue from the party duel first")
    code = await ctx.pod.parties.leave(ctx.session.player_id)
    ctx.session.send(p.PartyLeft(id=msg.id, code=code))


@command(p.GetParty)
async def get_party(ctx: Context, msg: p.GetParty) -> None:
    record = await ctx.pod.parties.current(ctx.session.player_id)
    if record is None:
        raise GameError(ErrorCode.NOT_IN_PARTY)
    ctx.session.send(party_message(record, "state", msg.id))
