"""Switching the active deck back and forth (found by the Locust RankedPopulation users)."""

from __future__ import annotations

import asyncpg

from servers.auth.players import dev_steam_id, find_or_create
from servers.common import protocol as p
from servers.game import lobby
from tests.support.helpers import unique_name


async def test_switching_active_deck_repeatedly(pool: asyncpg.Pool) -> None:
    name = unique_name("deck")
    player = await find_or_create(pool, dev_steam_id(name), name)
    pid = player.steam_id
    [starter] = (await lobby.decks(pool, pid)).decks
    other = await lobby.save_deck(pool, pid, p.SaveDeck(name="copy", cards=starter.cards))
    for deck_id in [other.deck_id, starter.deck_id] * 5 + [other.deck_id]:
        await lobby.set_active_deck(pool, pid, deck_id)
        active = [d.deck_id for d in (await lobby.decks(pool, pid)).decks if d.active]
        assert active == [deck_id]
