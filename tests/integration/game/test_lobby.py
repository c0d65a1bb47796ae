"""Decks and the battle snapshot: switching the active deck back and forth (found by the
Locust RankedPopulation users), and the snapshot kept with the session."""

from __future__ import annotations

import asyncpg
import msgspec
import redis.asyncio as aioredis

from servers.auth.players import dev_steam_id, find_or_create
from servers.common import protocol as p
from servers.common.keys import Keys
from servers.game import commands, lobby
from servers.game.commands import Context
from servers.game.service import GameService
from servers.game.sessions import Connection
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


async def test_the_battle_snapshot_is_kept_with_the_session(
    redis: aioredis.Redis, pool: asyncpg.Pool, keys: Keys
) -> None:
    """Read once per session, refreshed by battle results, read again after a deck change or a
    new catalogue version (an enqueue then costs no query)."""
    name = unique_name("snap")
    pid = (await find_or_create(pool, dev_steam_id(name), name)).steam_id
    service = GameService.build(redis, pool, keys, "pod-a")
    session, _ = service.registry.attach(str(pid), name, Connection())
    first = await lobby.snapshot_of(pool, session, "pod-a", None)  # no version known: read
    version = first.catalogue_version
    kept = await lobby.snapshot_of(pool, session, "pod-a", version)
    assert kept is first and await lobby.snapshot_of(pool, session, "pod-a", version) is kept
    assert await lobby.snapshot_of(pool, session, "pod-a", None) is not kept  # unknown: read

    # A battle result brings the new level and rating.
    result = p.BattleResult(
        match_id="m1",
        game_mode="normal",
        player_id=str(pid),
        opponent_id="1",
        seed=1,
        winner_id=str(pid),
        turns=3,
        timeline=msgspec.Raw(b"[]"),
        level=7,
        rating=1612.5,
    )
    session.on_battle_result(result)
    after = await lobby.snapshot_of(pool, session, "pod-a", version)
    assert (after.level, after.rating, after.deck) == (7, 1612.5, kept.deck)
    # A result without them (a re-run) drops it.
    session.on_battle_result(msgspec.structs.replace(result, level=None, rating=None))
    assert session.snapshot is None
    kept = await lobby.snapshot_of(pool, session, "pod-a", version)

    # Another deck made active (here with the same cards): read again.
    [starter] = (await lobby.decks(pool, pid)).decks
    other = await lobby.save_deck(pool, pid, p.SaveDeck(name="other", cards=starter.cards))
    ctx = Context(service.pod, session)
    await commands.dispatch(ctx, p.SetActiveDeck(deck_id=other.deck_id))
    assert session.snapshot is None
    assert (await lobby.snapshot_of(pool, session, "pod-a", version)) is not kept

    # A new catalogue version: read again.
    kept = await lobby.snapshot_of(pool, session, "pod-a", version)
    assert await lobby.snapshot_of(pool, session, "pod-a", version + 1) is not kept
