"""PvE: a battle against an AI deck chosen by difficulty, on the player's own game
server, with no matchmaking; recorded in match history like any battle (unranked).

The AI opponents are players 1, 2 and 3 (migration 0004), so history and replays need nothing
special. Their decks are built from the card catalogue by pure rules below.
"""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence

import asyncpg

from servers.common import protocol as p
from servers.common.decks import DECK_SIZE, MAX_COPIES, starter_deck
from servers.common.errors import ErrorCode, GameError
from servers.common.keys import PVE_MODE
from servers.common.lua import Busy, StaleEpoch
from servers.common.models import BattleSnapshot, CardSnapshot
from servers.common.players import busy_error
from servers.game import lobby
from servers.game.pod import Pod
from servers.game.sessions import QueueState, Session

log = logging.getLogger("cardgame.game.pve")

AI_PLAYERS = {"easy": "1", "normal": "2", "hard": "3"}
AI_LEVELS = {"easy": 1, "normal": 5, "hard": 10}


def _value(card: tuple[int, str, int, int, int, int]) -> int:
    _id, _name, cost, attack, health, _starter = card
    return attack + health - 2 * cost  # stats above the vanilla curve


Card = tuple[int, str, int, int, int, int]  # card_id, name, cost, attack, health, starter copies


def ai_deck(cards: Sequence[Card], difficulty: str) -> list[Card]:
    """The AI's 20 cards, in a fixed order (a pure function of the catalogue).

    easy: the least efficient cheap cards; normal: the starter deck every player gets; hard:
    the most efficient cards costing up to 6."""
    per_card = DECK_SIZE // MAX_COPIES
    if difficulty == "normal":
        chosen = starter_deck([(c[0], c[2], c[5]) for c in cards if c[5] > 0])
        by_id = {c[0]: c for c in cards}
        return [by_id[card_id] for card_id in sorted(chosen) for _ in range(chosen[card_id])]
    if difficulty == "easy":
        pool = sorted((c for c in cards if c[2] <= 4), key=lambda c: (_value(c), c[2], c[0]))
    elif difficulty == "hard":
        pool = sorted((c for c in cards if c[2] <= 6), key=lambda c: (-_value(c), c[2], c[0]))
    else:
        raise ValueError(f"unknown difficulty {difficulty!r}")
    picked = sorted(pool[:per_card], key=lambda c: (c[2], c[0]))
    return [c for c in picked for _ in range(MAX_COPIES)]


async def ai_snapshot(pool: asyncpg.Pool, difficulty: str, pod_id: str) -> BattleSnapshot:
    rows = await pool.fetch(
        "SELECT card_id, name, cost, attack, health, starter_copies,"
        f" ({lobby.CURRENT_VERSION}) AS v FROM cards ORDER BY card_id"
    )
    cards = [
        (r["card_id"], r["name"], r["cost"], r["attack"], r["health"], r["starter_copies"])
        for r in rows
    ]
    deck = tuple(
        CardSnapshot(card_id=c[0], name=c[1], cost=c[2], attack=c[3], health=c[4])
        for c in ai_deck(cards, difficulty)
    )
    return BattleSnapshot(
        player_id=AI_PLAYERS[difficulty],
        name=f"AI ({difficulty})",
        level=AI_LEVELS[difficulty],
        rating=1500.0,
        deck=deck,
        pod_id=pod_id,
        catalogue_version=(rows[0]["v"] or 0) if rows else 0,
    )


async def start(pod: Pod, session: Session, difficulty: str, ref: str | None) -> None:
    """A battle against the AI on this game server: MatchFound now, the result as for any
    battle (recorded once, delivered once). The player's record says "pve" from the moment the
    battle is decided: a queue entry or another battle is refused from then on, on every pod."""
    if pod.draining:
        raise GameError(ErrorCode.SERVER_DRAINING)
    session.ensure_idle()
    if pod.run_battle is None:
        raise GameError(ErrorCode.INTERNAL, "this server runs no battles")
    if pod.limits is not None:  # before any database work: a refusal costs one script
        await pod.limits.pve(session.player_id)
    me = await lobby.snapshot_of(pod.pool, session, pod.pod_id, pod.catalogue_version)
    ai = await ai_snapshot(pod.pool, difficulty, pod.pod_id)
    if session.state is not QueueState.IDLE:  # changed while we read the database
        raise GameError(ErrorCode.REQUEST_IN_PROGRESS)
    now = int(time.time() * 1000)
    match_id = str(uuid.uuid4())
    try:
        await pod.players.begin_pve(
            session.player_id, session.epoch, match_id, now + pod.battle_deadline_ms, PVE_MODE
        )
    except StaleEpoch:
        raise GameError(ErrorCode.SESSION_REPLACED) from None
    except Busy as busy:
        refusal = busy_error(busy)
        session.follow(busy.standing)
        raise GameError(refusal.code, refusal.message) from None
    request = p.BattleRequest(
        match_id=match_id,
        game_mode=PVE_MODE,
        seed=secrets.randbits(63),
        player1=p.PlayerCandidate(
            player_id=me.player_id, score=now, pod_id=pod.pod_id, metadata=me
        ),
        player2=p.PlayerCandidate(
            player_id=ai.player_id, score=now, pod_id=pod.pod_id, metadata=ai
        ),
        formed_at_ms=now,
    )
    session.resume_battle(request.match_id)
    session.send(
        p.MatchFound(
            id=ref,
            match_id=request.match_id,
            mode=PVE_MODE,
            opponent_id=ai.player_id,
            opponent_name=ai.name,
        )
    )
    # Owned by the pod, not by this request: a socket that closes now must not cancel the
    # battle half-way (it is recorded and its result kept for the reconnect).
    pod.spawn(_play(pod.run_battle, request))


async def _play(
    run: Callable[[p.BattleRequest], Awaitable[None]], request: p.BattleRequest
) -> None:
    try:
        await run(request)
    except Exception:  # the runner ended the battle for the player: they were told battle_failed
        log.exception("PvE battle %s failed", request.match_id)
