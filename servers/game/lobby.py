"""Lobby data in PostgreSQL: profile, collection, decks, and the battle snapshot for queueing."""

from __future__ import annotations

import time

import asyncpg

from servers.common import db
from servers.common import protocol as p
from servers.common.decks import deck_problems
from servers.common.errors import ErrorCode, GameError
from servers.common.models import BattleSnapshot, CardSnapshot
from servers.game.sessions import Session

MAX_DECKS = 20
# The version `cards` holds (content.current_version), as a subquery: read in the statement that
# reads `cards`, it is the version of the numbers read (a load changes both in one transaction).
CURRENT_VERSION = "SELECT version FROM catalogue_activations ORDER BY activation_id DESC LIMIT 1"


async def profile(pool: asyncpg.Pool, player_id: int) -> p.Profile:
    row = await pool.fetchrow(
        "SELECT p.display_name, f.* FROM players p"
        " JOIN player_profiles f ON f.player_id = p.steam_id WHERE p.steam_id = $1",
        player_id,
    )
    if row is None:
        raise GameError(ErrorCode.UNAUTHORIZED, "no such player")
    return p.Profile(
        player_id=str(player_id),
        name=row["display_name"],
        level=row["level"],
        experience=row["experience"],
        rating=row["rating"],
        rating_deviation=row["rating_deviation"],
        wins=row["wins"],
        losses=row["losses"],
        draws=row["draws"],
    )


async def collection(pool: asyncpg.Pool, player_id: int) -> p.Collection:
    rows = await pool.fetch(
        "SELECT c.card_id, c.name, c.cost, c.attack, c.health, c.rarity, o.count"
        " FROM player_card_collection o JOIN cards c USING (card_id)"
        " WHERE o.player_id = $1 ORDER BY c.cost, c.card_id",
        player_id,
    )
    return p.Collection(cards=[p.OwnedCard(**dict(r)) for r in rows])


async def _owned(conn: db.Connection | asyncpg.Pool, player_id: int) -> dict[int, int]:
    rows = await conn.fetch(
        "SELECT card_id, count FROM player_card_collection WHERE player_id = $1", player_id
    )
    return {r["card_id"]: r["count"] for r in rows}


async def decks(pool: asyncpg.Pool, player_id: int) -> p.Decks:
    rows = await pool.fetch(
        "SELECT d.deck_id, d.name, d.is_active, c.card_id, c.count"
        " FROM player_decks d LEFT JOIN deck_cards c USING (deck_id)"
        " WHERE d.player_id = $1 ORDER BY d.deck_id, c.card_id",
        player_id,
    )
    owned = await _owned(pool, player_id)
    by_id: dict[int, p.DeckInfo] = {}
    for r in rows:
        deck = by_id.setdefault(
            r["deck_id"],
            p.DeckInfo(
                deck_id=r["deck_id"], name=r["name"], active=r["is_active"], legal=False, cards=[]
            ),
        )
        if r["card_id"] is not None:
            deck.cards.append(p.DeckCard(card_id=r["card_id"], count=r["count"]))
    for deck in by_id.values():
        deck.legal = not deck_problems({c.card_id: c.count for c in deck.cards}, owned)
    return p.Decks(decks=list(by_id.values()))


async def save_deck(pool: asyncpg.Pool, player_id: int, msg: p.SaveDeck) -> p.DeckInfo:
    """Create or replace a deck; only legal decks are stored, in one transaction."""
    name = msg.name.strip()
    if not 1 <= len(name) <= 64:
        raise GameError(ErrorCode.INVALID_DECK, "deck name must be 1 to 64 characters")
    cards: dict[int, int] = {}
    for card in msg.cards:
        cards[card.card_id] = cards.get(card.card_id, 0) + card.count
    async with pool.acquire() as conn, conn.transaction():
        problems = deck_problems(cards, await _owned(conn, player_id))
        if problems:
            raise GameError(ErrorCode.INVALID_DECK, "; ".join(problems))
        if msg.deck_id is None:
            count = await conn.fetchval(
                "SELECT count(*) FROM player_decks WHERE player_id = $1", player_id
            )
            if count >= MAX_DECKS:
                raise GameError(ErrorCode.INVALID_DECK, f"at most {MAX_DECKS} decks")
            deck_id = await conn.fetchval(
                "INSERT INTO player_decks (player_id, name) VALUES ($1, $2) RETURNING deck_id",
                player_id,
                name,
            )
        else:
            deck_id = await conn.fetchval(
                "UPDATE player_decks SET name = $3, updated_at = now()"
                " WHERE deck_id = $1 AND player_id = $2 RETURNING deck_id",
                msg.deck_id,
                player_id,
                name,
            )
            if deck_id is None:
                raise GameError(ErrorCode.DECK_NOT_FOUND)
            await conn.execute("DELETE FROM deck_cards WHERE deck_id = $1", deck_id)
        await conn.executemany(
            "INSERT INTO deck_cards (deck_id, card_id, count) VALUES ($1, $2, $3)",
            [(deck_id, card_id, count) for card_id, count in sorted(cards.items())],
        )
        active = await conn.fetchval(
            "SELECT is_active FROM player_decks WHERE deck_id = $1", deck_id
        )
    return p.DeckInfo(
        deck_id=deck_id,
        name=name,
        active=active,
        legal=True,
        cards=[p.DeckCard(card_id=c, count=n) for c, n in sorted(cards.items())],
    )


async def set_active_deck(pool: asyncpg.Pool, player_id: int, deck_id: int) -> None:
    async with pool.acquire() as conn, conn.transaction():
        owner = await conn.fetchval(
            "SELECT player_id FROM player_decks WHERE deck_id = $1", deck_id
        )
        if owner != player_id:
            raise GameError(ErrorCode.DECK_NOT_FOUND)
        # Two statements: the unique index "one active deck per player" is checked row by row,
        # so one UPDATE flipping both rows fails whenever it reaches the new deck first.
        await conn.execute(
            "UPDATE player_decks SET is_active = false"
            " WHERE player_id = $1 AND is_active AND deck_id <> $2",
            player_id,
            deck_id,
        )
        await conn.execute(
            "UPDATE player_decks SET is_active = true WHERE deck_id = $1 AND NOT is_active", deck_id
        )


# A kept snapshot is read again after this long, in case the profile or decks changed in a way
# the session was not told of (another tool writing to the database).
SNAPSHOT_MAX_AGE = 60.0


async def snapshot_of(
    pool: asyncpg.Pool, session: Session, pod_id: str, catalogue_version: int | None
) -> BattleSnapshot:
    """The session's battle snapshot: read once, then kept with the session (each battle
    result brings the new level and rating) until the player edits a deck, the current
    catalogue version changes, or SNAPSHOT_MAX_AGE passes. Saves a query per enqueue."""
    kept = session.snapshot
    if (
        kept is not None
        and catalogue_version is not None
        and kept.catalogue_version == catalogue_version
        and time.monotonic() - session.snapshot_at < SNAPSHOT_MAX_AGE
    ):
        return kept
    snapshot = await battle_snapshot(pool, int(session.player_id), pod_id)
    session.snapshot, session.snapshot_at = snapshot, time.monotonic()
    return snapshot


async def battle_snapshot(pool: asyncpg.Pool, player_id: int, pod_id: str) -> BattleSnapshot:
    """The player's battle snapshot, built only from server-side state; needs a legal deck."""
    # One round trip per enqueue: the copies owned come with the deck's rows, and the current
    # catalogue version from the same statement, so from the same commit as the cards' numbers.
    rows = await pool.fetch(
        "SELECT p.display_name, f.level, f.rating, dc.count, c.card_id, c.name, c.cost,"
        " c.attack, c.health, coalesce(o.count, 0) AS owned, (" + CURRENT_VERSION + ") AS v"
        " FROM players p JOIN player_profiles f ON f.player_id = p.steam_id"
        " JOIN player_decks d ON d.player_id = p.steam_id AND d.is_active"
        " JOIN deck_cards dc ON dc.deck_id = d.deck_id JOIN cards c ON c.card_id = dc.card_id"
        " LEFT JOIN player_card_collection o"
        "   ON o.player_id = p.steam_id AND o.card_id = dc.card_id"
        " WHERE p.steam_id = $1 ORDER BY c.card_id",
        player_id,
    )
    if not rows:
        raise GameError(ErrorCode.NO_LEGAL_DECK, "no active deck: set one first")
    problems = deck_problems(
        {r["card_id"]: r["count"] for r in rows}, {r["card_id"]: r["owned"] for r in rows}
    )
    if problems:
        raise GameError(ErrorCode.NO_LEGAL_DECK, "active deck is not legal: " + "; ".join(problems))
    deck = tuple(
        CardSnapshot(
            card_id=r["card_id"],
            name=r["name"],
            cost=r["cost"],
            attack=r["attack"],
            health=r["health"],
        )
        for r in rows
        for _ in range(r["count"])
    )
    first = rows[0]
    return BattleSnapshot(
        player_id=str(player_id),
        name=first["display_name"],
        level=first["level"],
        rating=first["rating"],
        deck=deck,
        pod_id=pod_id,
        catalogue_version=first["v"] or 0,
    )
