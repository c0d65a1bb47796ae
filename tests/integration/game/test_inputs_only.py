"""Inputs-only match records: a match is stored as seed, engine version and snapshots by
reference to a catalogue version; its replay and the result for a reconnecting player are
simulated again, byte for byte, even after the cards' numbers changed. Rows recorded with their
timeline (before this format) are served from it. A database of its own: it loads a catalogue
version."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import msgspec
import pytest

from devtools.embedded import scratch_database
from servers.common import content
from servers.common import protocol as p
from servers.common.db import create_pool
from servers.common.models import BattleSnapshot
from servers.common.timeline import encode_timeline
from servers.game import lobby
from servers.game.battle import engines
from servers.game.history import replay, resimulate
from servers.game.persistence import load_result, record_match, stored_snapshots
from tests.support.match_servers import snapshot

ONE, TWO = "76561198000000011", "76561198000000012"


@pytest.fixture
async def own_pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    async with scratch_database(database_url, "cardgame_inp") as url:
        await content.migrate_and_load(url)
        pool = await create_pool(url, 1, 3)
        try:
            yield pool
        finally:
            await pool.close()


async def add_players(pool: asyncpg.Pool) -> None:
    """Both players with an active deck of cards 1 to 10, two copies each."""
    for pid in (ONE, TWO):
        await pool.execute(
            "INSERT INTO players (steam_id, display_name) VALUES ($1, $2)", int(pid), f"p{pid}"
        )
        await pool.execute("INSERT INTO player_profiles (player_id) VALUES ($1)", int(pid))
        deck = await pool.fetchval(
            "INSERT INTO player_decks (player_id, name, is_active) VALUES ($1, 'd', true)"
            " RETURNING deck_id",
            int(pid),
        )
        for card in range(1, 11):
            await pool.execute("INSERT INTO deck_cards VALUES ($1, $2, 2)", deck, card)
            await pool.execute(
                "INSERT INTO player_card_collection VALUES ($1, $2, 2)", int(pid), card
            )


async def play_and_record(
    pool: asyncpg.Pool, one: BattleSnapshot, two: BattleSnapshot, seed: int
) -> tuple[str, bytes]:
    """A battle as the runner plays and records it: (match id, the timeline sent live)."""
    request = p.BattleRequest(
        match_id=str(uuid.uuid4()),
        game_mode="normal",
        seed=seed,
        player1=p.PlayerCandidate(player_id=one.player_id, score=0, pod_id="x", metadata=one),
        player2=p.PlayerCandidate(player_id=two.player_id, score=0, pod_id="x", metadata=two),
        formed_at_ms=int(datetime.now(UTC).timestamp() * 1000),
    )
    outcome = engines.engine(engines.CURRENT)(one, two, seed)
    assert await record_match(
        pool,
        request,
        winner_id=outcome.winner_id,
        end_reason=outcome.reason,
        turns=outcome.turns,
        pod_id="x",
        started_at=datetime.now(UTC),
        engine_version=engines.CURRENT,
    )
    return request.match_id, encode_timeline(outcome.events)


async def served(pool: asyncpg.Pool, match_id: str) -> tuple[bytes, bytes, bytes]:
    """(replay timeline, reconnect result timeline, timeline simulated again)."""
    shown = await replay(pool, int(ONE), match_id)
    result = await load_result(pool, match_id, ONE)
    assert result is not None
    kept, again = await resimulate(pool, match_id)
    assert kept == again
    return bytes(shown.timeline), bytes(result.timeline), again


async def test_replay_is_exact_after_the_cards_numbers_change(own_pool: asyncpg.Pool) -> None:
    await add_players(own_pool)
    v1 = await content.current_version(own_pool)
    one = await lobby.battle_snapshot(own_pool, int(ONE), "x")
    two = await lobby.battle_snapshot(own_pool, int(TWO), "x")
    assert one.catalogue_version == two.catalogue_version == v1
    old_match, old_live = await play_and_record(own_pool, one, two, 42)

    # Inputs only: no timeline, no cards' numbers; the reference is small.
    row = await own_pool.fetchrow(
        "SELECT timeline IS NULL AS no_timeline, seed, engine_version FROM match_history"
        " WHERE match_id = $1::uuid",
        old_match,
    )
    assert row["no_timeline"] and row["seed"] == 42 and row["engine_version"] == engines.CURRENT
    refs = await own_pool.fetch(
        "SELECT snapshot, snapshot_ref::text AS ref FROM match_participants"
        " WHERE match_id = $1::uuid ORDER BY slot",
        old_match,
    )
    assert [r["snapshot"] for r in refs] == [None, None]
    assert all(r["ref"].startswith(f'{{"v":{v1},') and len(r["ref"]) < 160 for r in refs)

    # Card 1 hits harder from now on: a new catalogue version.
    text = content.CARDS_FILE.read_text()
    before = 'card_id = 1\nname = "Ember Sprite"\ncost = 1\nattack = 2\n'
    assert before in text
    changed = content.parse_catalogue(text.replace(before, before[:-2] + "5\n"), "test")
    async with own_pool.acquire() as conn:
        outcome = await content.load(conn, changed)
    assert outcome.status == "loaded" and outcome.version != v1

    # The old match replays with the numbers it was played with, byte for byte.
    assert await served(own_pool, old_match) == (old_live, old_live, old_live)
    formed = await own_pool.fetchval(
        "SELECT formed_at FROM match_history WHERE match_id = $1::uuid", old_match
    )
    resolved = await stored_snapshots(own_pool, uuid.UUID(old_match), formed)
    assert [c.attack for c in resolved[0].deck if c.card_id == 1] == [2, 2]

    # A new match uses the new numbers, and replays exactly too.
    new_one = await lobby.battle_snapshot(own_pool, int(ONE), "x")
    new_two = await lobby.battle_snapshot(own_pool, int(TWO), "x")
    assert new_one.catalogue_version == outcome.version
    assert [c.attack for c in new_one.deck if c.card_id == 1] == [5, 5]
    new_match, new_live = await play_and_record(own_pool, new_one, new_two, 42)
    assert new_live != old_live  # same seed and players: only the numbers differ
    assert await served(own_pool, new_match) == (new_live, new_live, new_live)


async def test_a_snapshot_not_from_its_version_is_kept_whole(own_pool: asyncpg.Pool) -> None:
    """Numbers that are not the catalogue version's (or no version): the record keeps the
    whole snapshot, so the match still replays exactly."""
    await add_players(own_pool)
    one = snapshot(ONE, "x")  # no catalogue version
    two = await lobby.battle_snapshot(own_pool, int(TWO), "x")
    stronger = msgspec.structs.replace(two.deck[0], attack=two.deck[0].attack + 3)
    two = msgspec.structs.replace(two, deck=(stronger, *two.deck[1:]))
    match_id, live = await play_and_record(own_pool, one, two, 7)
    kinds = await own_pool.fetch(
        "SELECT snapshot IS NOT NULL AS whole FROM match_participants"
        " WHERE match_id = $1::uuid ORDER BY slot",
        match_id,
    )
    assert [r["whole"] for r in kinds] == [True, True]
    assert await served(own_pool, match_id) == (live, live, live)


async def test_a_row_with_its_timeline_is_served_from_it(own_pool: asyncpg.Pool) -> None:
    """A match recorded before the inputs-only format: its stored timeline, as it is."""
    await add_players(own_pool)
    one = await lobby.battle_snapshot(own_pool, int(ONE), "x")
    two = await lobby.battle_snapshot(own_pool, int(TWO), "x")
    match_id = uuid.uuid4()
    live = encode_timeline(engines.engine(1)(one, two, 9).events)
    now = datetime.now(UTC)
    await own_pool.execute(
        "INSERT INTO match_history (match_id, mode, seed, winner_id, end_reason, turns,"
        " timeline, pod_id, started_at, formed_at) VALUES ($1, 'normal', 9, NULL, 'turn_limit',"
        " 3, $2::json, 'x', $3, $3)",
        match_id,
        live.decode(),
        now,
    )
    for slot, snap in ((1, one), (2, two)):
        await own_pool.execute(
            "INSERT INTO match_participants (match_id, player_id, slot, result, rating_before,"
            " rating_after, snapshot, formed_at) VALUES ($1, $2, $3, 'draw', 1500, 1500,"
            " $4::jsonb, $5)",
            match_id,
            int(snap.player_id),
            slot,
            p.encode(snap).decode(),
            now,
        )
    assert await served(own_pool, str(match_id)) == (live, live, live)
