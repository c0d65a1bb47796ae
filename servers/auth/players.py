"""Players in PostgreSQL: find or create by SteamID64, with a starter collection and deck."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import asyncpg

from servers.common import db
from servers.common.decks import starter_deck

# SteamID64 of individual accounts: this base plus the 32-bit account id.
STEAM_ID64_BASE = 76561197960265728
STEAM_ID64_MAX = STEAM_ID64_BASE + 0xFFFFFFFF


@dataclass(frozen=True)
class Player:
    steam_id: int
    display_name: str
    created: bool


def is_steam_id64(value: int) -> bool:
    return STEAM_ID64_BASE < value <= STEAM_ID64_MAX


def dev_steam_id(name: str) -> int:
    """A stable SteamID64 for a development login by name (same name, same player)."""
    digest = hashlib.sha256(name.encode()).digest()
    return STEAM_ID64_BASE + 1 + int.from_bytes(digest[:4], "big") % 0xFFFFFFFE


async def find_or_create(pool: asyncpg.Pool, steam_id: int, display_name: str) -> Player:
    """Look the player up or create them, all in one transaction (no half-created player)."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "INSERT INTO players (steam_id, display_name) VALUES ($1, $2)"
            " ON CONFLICT (steam_id) DO UPDATE SET last_login_at = now()"
            " RETURNING display_name, (xmax = 0) AS created",
            steam_id,
            display_name,
        )
        assert row is not None
        if row["created"]:
            await _grant_starter_kit(conn, steam_id)
        return Player(steam_id, row["display_name"], bool(row["created"]))


async def _grant_starter_kit(conn: db.Connection, steam_id: int) -> None:
    await conn.execute("INSERT INTO player_profiles (player_id) VALUES ($1)", steam_id)
    starters = await conn.fetch(
        "SELECT card_id, cost, starter_copies FROM cards WHERE starter_copies > 0"
    )
    await conn.executemany(
        "INSERT INTO player_card_collection (player_id, card_id, count) VALUES ($1, $2, $3)",
        [(steam_id, r["card_id"], r["starter_copies"]) for r in starters],
    )
    deck = starter_deck([(r["card_id"], r["cost"], r["starter_copies"]) for r in starters])
    deck_id = await conn.fetchval(
        "INSERT INTO player_decks (player_id, name, is_active) VALUES ($1, 'Starter deck', true)"
        " RETURNING deck_id",
        steam_id,
    )
    await conn.executemany(
        "INSERT INTO deck_cards (deck_id, card_id, count) VALUES ($1, $2, $3)",
        [(deck_id, card_id, count) for card_id, count in deck.items()],
    )
