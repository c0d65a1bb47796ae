"""PvE: a battle against an AI deck chosen by difficulty, on the player's own game
server, with no matchmaking; recorded in match history like any battle (unranked).

The AI opponents are players 1, 2 and 3 (migration 0004), so history and replays need nothing
special. Their decks are built from the card catalogue by pure rules below.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from servers.common.decks import DECK_SIZE, MAX_COPIES, starter_deck
from servers.common.models import BattleSnapshot, CardSnapshot

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
        "SELECT card_id, name, cost, attack, health, starter_copies FROM cards ORDER BY card_id"
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
    )
