"""Loading the card catalogue into real PostgreSQL, announcing it on real Redis, and a game server
that learns the new version without a restart. Each test gets a fresh database of its own
(migrated and loaded as every database is), so a balance change here touches no other test."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import redis
from websockets.datastructures import Headers
from websockets.http11 import Request

from devtools.embedded import scratch_database
from servers.cli import content_load_cmd
from servers.common import content
from servers.common.config import Settings
from servers.common.keys import Keys
from servers.game.app import GameServer
from tests.support.helpers import eventually

ORIGINAL = content.CARDS_FILE.read_text()
# Goblin Cutpurse (card 4) is a starter common: players own it.
GOBLIN = 'name = "Goblin Cutpurse"\ncost = 2\nattack = 3\n'


@pytest.fixture
async def fresh_db(database_url: str) -> AsyncIterator[str]:
    async with scratch_database(database_url, "cardgame_content") as url:
        await content.migrate_and_load(url)
        yield url


async def state(url: str) -> tuple[list[tuple[int, str]], list[asyncpg.Record], int | None]:
    """(version, hash) of every version, the `cards` rows, the current version."""
    conn = await asyncpg.connect(url)
    try:
        versions = await conn.fetch(
            "SELECT version, content_hash FROM catalogue_versions ORDER BY version"
        )
        cards = await conn.fetch("SELECT * FROM cards ORDER BY card_id")
        return [tuple(v) for v in versions], cards, await content.current_version(conn)
    finally:
        await conn.close()


async def version_cards(url: str, version: int) -> list[tuple[object, ...]]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT card_id, name, cost, attack, health, rarity, starter_copies"
            " FROM catalogue_cards WHERE version = $1 ORDER BY card_id",
            version,
        )
        return [tuple(r) for r in rows]
    finally:
        await conn.close()


def as_tuples(catalogue: content.Catalogue) -> list[tuple[object, ...]]:
    return [
        (c.card_id, c.name, c.cost, c.attack, c.health, c.rarity, c.starter_copies)
        for c in catalogue.cards
    ]


def stronger_goblin() -> content.Catalogue:
    changed = ORIGINAL.replace(GOBLIN, GOBLIN.replace("attack = 3", "attack = 4"))
    assert changed != ORIGINAL
    return content.parse_catalogue(changed, "balance.toml")


async def test_a_fresh_database_has_version_1_equal_to_the_file(fresh_db: str) -> None:
    versions, cards, current = await state(fresh_db)
    file = content.read_catalogue()
    assert versions == [(1, file.content_hash)]
    assert current == 1
    assert await version_cards(fresh_db, 1) == as_tuples(file)
    assert [tuple(r) for r in cards] == as_tuples(file)


async def test_loading_the_same_content_twice_creates_one_version(fresh_db: str) -> None:
    again = await content.load_url(fresh_db, content.read_catalogue())
    assert str(again) == "unchanged: version 1"
    versions, _, current = await state(fresh_db)
    assert len(versions) == 1 and current == 1


async def test_a_balance_change_is_version_2_and_version_1_stays(fresh_db: str) -> None:
    before = await version_cards(fresh_db, 1)
    outcome = await content.load_url(fresh_db, stronger_goblin())
    assert str(outcome) == "loaded: version 2"
    versions, cards, current = await state(fresh_db)
    assert [v for v, _ in versions] == [1, 2] and current == 2
    assert await version_cards(fresh_db, 1) == before  # the old version intact
    goblin = next(r for r in cards if r["card_id"] == 4)
    assert goblin["attack"] == 4
    assert next(c for c in await version_cards(fresh_db, 2) if c[0] == 4)[3] == 4
    # Rolling back makes version 1 current again, without a copy of it.
    back = await content.load_url(fresh_db, content.read_catalogue())
    assert str(back) == "restored: version 1"
    versions, cards, current = await state(fresh_db)
    assert len(versions) == 2 and current == 1
    assert [tuple(r) for r in cards] == before


async def test_names_may_be_swapped_and_unused_cards_dropped(fresh_db: str) -> None:
    text = (
        ORIGINAL.replace('"Ember Sprite"', '"TMP"')
        .replace('"Mossback Toad"', '"Ember Sprite"')
        .replace('"TMP"', '"Mossback Toad"')
    )
    text = text[: text.index("[[cards]]\ncard_id = 40\n")]  # no player holds card 40 here
    outcome = await content.load_url(fresh_db, content.parse_catalogue(text, "swap.toml"))
    assert outcome.status == "loaded"
    _, cards, _ = await state(fresh_db)
    assert len(cards) == 39
    assert [(r["card_id"], r["name"]) for r in cards[:2]] == [
        (1, "Mossback Toad"),
        (2, "Ember Sprite"),
    ]


async def test_dropping_a_card_players_hold_is_refused_and_writes_nothing(fresh_db: str) -> None:
    conn = await asyncpg.connect(fresh_db)
    try:
        await conn.execute("INSERT INTO players (steam_id, display_name) VALUES (77, 'p')")
        await conn.execute(
            "INSERT INTO player_card_collection (player_id, card_id, count) VALUES (77, 4, 2)"
        )
    finally:
        await conn.close()
    start = ORIGINAL.index("[[cards]]\ncard_id = 4\n")
    end = ORIGINAL.index("[[cards]]\ncard_id = 5\n")
    without = ORIGINAL[:start] + ORIGINAL[end:]
    before = await state(fresh_db)
    with pytest.raises(content.ContentError) as caught:
        await content.load_url(fresh_db, content.parse_catalogue(without, "drop.toml"))
    assert "drop.toml: card 4 (Goblin Cutpurse) missing" in str(caught.value)
    assert await state(fresh_db) == before


def test_content_load_refuses_bad_files_with_exit_2_and_writes_nothing(
    fresh_db: str, settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mine = settings.replace(database={"url": fresh_db})
    before = asyncio.run(state(fresh_db))
    bad = tmp_path / "cards.toml"
    cases = {
        ORIGINAL.replace(GOBLIN, GOBLIN.replace("attack = 3", "attack = -3")): (
            "card 4 (Goblin Cutpurse): attack: -3 is less than the minimum of 0"
        ),
        ORIGINAL.replace("card_id = 5\n", "card_id = 4\n"): (
            "card 4 (Shieldbearer Recruit): duplicate id"
        ),
        ORIGINAL + "[[cards]\n": "not valid TOML",
    }
    for text, says in cases.items():
        bad.write_text(text)
        assert content_load_cmd(mine, bad) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"refused: {bad}: ") and says in err, err
    assert content_load_cmd(mine, tmp_path / "missing.toml") == 2
    assert f"{tmp_path / 'missing.toml'}: cannot read it" in capsys.readouterr().err
    assert asyncio.run(state(fresh_db)) == before


def test_content_load_announces_the_current_version(
    fresh_db: str, settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = Keys(f"{settings.redis.namespace}-c{uuid.uuid4().hex[:6]}")
    mine = settings.replace(database={"url": fresh_db}, redis={"namespace": keys.namespace})
    client = redis.Redis.from_url(settings.redis.url)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    try:
        pubsub.subscribe(keys.catalogue_channel)
        pubsub.get_message(timeout=1)  # the subscription's confirmation
        file = tmp_path / "cards.toml"
        file.write_text(ORIGINAL.replace(GOBLIN, GOBLIN.replace("attack = 3", "attack = 4")))
        assert content_load_cmd(mine, file) == 0
        assert capsys.readouterr().out == "loaded: version 2\n"
        message = pubsub.get_message(timeout=5)
        assert message is not None and message["data"] == b"2"
        assert content_load_cmd(mine, file) == 0
        assert capsys.readouterr().out == "unchanged: version 2\n"
        # Announced again: a run repeated after a Redis failure tells the servers.
        message = pubsub.get_message(timeout=5)
        assert message is not None and message["data"] == b"2"
    finally:
        pubsub.close()
        client.close()


async def test_a_game_server_learns_the_announced_version_without_a_restart(
    fresh_db: str, settings: Settings
) -> None:
    suffix = uuid.uuid4().hex[:6]
    mine = settings.replace(
        database={"url": fresh_db},
        redis={"namespace": f"{settings.redis.namespace}-g{suffix}"},
        pod_id=f"pod-c{suffix}",
    )
    server = await GameServer.start(mine)
    try:

        async def health() -> dict[str, object]:
            response = await server.http(None, Request("/health", Headers()))  # type: ignore[arg-type]
            assert response is not None and response.body is not None
            body: dict[str, object] = json.loads(response.body)
            return body

        assert (await health())["catalogue_version"] == 1
        outcome = await content.load_url(fresh_db, stronger_goblin())
        await content.announce(server.redis, server.keys, outcome.version)

        async def learned() -> bool:
            return (await health())["catalogue_version"] == 2

        await eventually(learned, what="the game server reports catalogue version 2")
    finally:
        await server.close()
