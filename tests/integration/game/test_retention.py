"""Match records partitioned by month, recorded once per match id, and pruned by whole months;
the migration that partitions them converts the rows recorded before it. Each test here has a
database of its own (prune drops partitions; the migration test starts from the old schema)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from devtools.embedded import scratch_database
from servers.common import protocol as p
from servers.common import retention
from servers.common.config import load_settings
from servers.common.db import MIGRATIONS_DIR, create_pool, migrate, migration_files
from servers.game.history import history, replay
from servers.game.persistence import load_result, record_match
from servers.game.pve import ai_snapshot
from tests.support.match_servers import snapshot

NewDatabase = Callable[[], Awaitable[str]]


@pytest.fixture
async def new_database(database_url: str) -> AsyncIterator[NewDatabase]:
    """Makes empty databases next to the run's; drops them afterwards."""
    async with contextlib.AsyncExitStack() as stack:

        async def make() -> str:
            return await stack.enter_async_context(scratch_database(database_url, "cardgame_ret"))

        yield make


@pytest.fixture
async def own_pool(new_database: NewDatabase) -> AsyncIterator[asyncpg.Pool]:
    url = await new_database()
    await migrate(url)
    pool = await create_pool(url, 1, 3)
    yield pool
    await pool.close()


ONE, TWO = "76561198000000001", "76561198000000002"


async def add_players(pool: asyncpg.Pool) -> None:
    for pid in (ONE, TWO):
        await pool.execute(
            "INSERT INTO players (steam_id, display_name) VALUES ($1, $2)", int(pid), f"p{pid}"
        )
        await pool.execute(
            "INSERT INTO player_profiles (player_id, rating) VALUES ($1, 1612.5)", int(pid)
        )
        deck = await pool.fetchval(
            "INSERT INTO player_decks (player_id, name, is_active) VALUES ($1, 'd', true)"
            " RETURNING deck_id",
            int(pid),
        )
        await pool.execute("INSERT INTO deck_cards VALUES ($1, 1, 2)", deck)
        await pool.execute("INSERT INTO player_card_collection VALUES ($1, 1, 2)", int(pid))


def request(formed: datetime | None, mode: str = "normal") -> p.BattleRequest:
    return p.BattleRequest(
        match_id=str(uuid.uuid4()),
        game_mode=mode,
        seed=7,
        player1=p.PlayerCandidate(player_id=ONE, score=0, pod_id="x", metadata=snapshot(ONE, "x")),
        player2=p.PlayerCandidate(player_id=TWO, score=0, pod_id="x", metadata=snapshot(TWO, "x")),
        formed_at_ms=int(formed.timestamp() * 1000) if formed else 0,
    )


async def record(pool: asyncpg.Pool, req: p.BattleRequest, started: datetime) -> bool:
    """True when this call recorded the match (None from record_match: recorded before)."""
    recorded = await record_match(
        pool,
        req,
        winner_id=ONE,
        end_reason="hp_zero",
        turns=3,
        pod_id="x",
        started_at=started,
    )
    return recorded is not None


async def where(pool: asyncpg.Pool, match_id: str) -> list[tuple[str, str]]:
    """(history partition, participants partition) of each stored copy of the match."""
    rows = await pool.fetch(
        "SELECT h.tableoid::regclass::text AS h, m.tableoid::regclass::text AS m"
        " FROM match_history h JOIN match_participants m USING (match_id, formed_at)"
        " WHERE h.match_id = $1::uuid",
        match_id,
    )
    return [(r["h"], r["m"]) for r in rows]


async def test_a_rerun_of_a_battle_is_recorded_once(own_pool: asyncpg.Pool) -> None:
    await add_players(own_pool)
    now = datetime.now(UTC)
    req = request(now - timedelta(seconds=5))
    assert await record(own_pool, req, now) is True
    # A re-run after a crash starts later (another started_at) but carries the same formation
    # time: nothing is stored twice and the counters move once.
    assert await record(own_pool, req, now + timedelta(minutes=1)) is False
    month = now.strftime("%Y%m")
    assert (
        await where(own_pool, req.match_id)
        == [(f"match_history_p{month}", f"match_participants_p{month}")] * 2
    )  # two participants, one match
    wins = await own_pool.fetchval(
        "SELECT wins FROM player_profiles WHERE player_id = $1", int(ONE)
    )
    assert wins == 1

    # A request from a sender that predates formed_at_ms: each run's start is its key, yet the
    # match id is found wherever it is, so it is recorded once too.
    old = request(None)
    assert await record(own_pool, old, now - timedelta(days=40)) is True
    assert await record(own_pool, old, now) is False
    assert len(await where(own_pool, old.match_id)) == 2

    # What the players read still works: history, replay, the result for a reconnect.
    found = await history(own_pool, int(ONE), 10)
    assert {m.match_id for m in found.matches} == {req.match_id, old.match_id}
    shown = await replay(own_pool, int(TWO), req.match_id)
    assert [pl.player_id for pl in shown.players] == [ONE, TWO]
    result = await load_result(own_pool, req.match_id, TWO)
    assert result is not None and result.opponent_id == ONE and result.winner_id == ONE


async def test_matches_of_two_months_land_in_two_partitions(own_pool: asyncpg.Pool) -> None:
    await add_players(own_pool)
    jan, feb = datetime(2025, 1, 31, 23, 59, tzinfo=UTC), datetime(2025, 2, 1, tzinfo=UTC)
    for month in (jan, feb):
        assert await own_pool.fetchval("SELECT match_partitions_create($1)", month) is True
    a, b = request(jan), request(feb)
    # Started long after they were formed (a re-run days later): the formation time decides.
    for req in (a, b):
        assert await record(own_pool, req, datetime(2025, 3, 5, tzinfo=UTC)) is True
    assert (
        await where(own_pool, a.match_id)
        == [("match_history_p202501", "match_participants_p202501")] * 2
    )
    assert (
        await where(own_pool, b.match_id)
        == [("match_history_p202502", "match_participants_p202502")] * 2
    )

    # A month without partitions goes to DEFAULT; making the month's partitions moves it there.
    lost = request(datetime(2024, 6, 3, tzinfo=UTC))
    assert await record(own_pool, lost, datetime.now(UTC)) is True
    assert (
        await where(own_pool, lost.match_id)
        == [("match_history_default", "match_participants_default")] * 2
    )
    made = await own_pool.fetchval("SELECT match_partitions_create('2024-06-01+00')")
    assert made is True
    assert (
        await where(own_pool, lost.match_id)
        == [("match_history_p202406", "match_participants_p202406")] * 2
    )
    assert await own_pool.fetchval("SELECT count(*) FROM match_history_default") == 0


async def test_prune_drops_exactly_the_old_months(own_pool: asyncpg.Pool) -> None:
    await add_players(own_pool)
    now = datetime(2026, 12, 15, 12, tzinfo=UTC)
    formed = [
        datetime(2025, 10, 10, tzinfo=UTC),
        datetime(2026, 5, 20, tzinfo=UTC),
        datetime(2026, 6, 20, tzinfo=UTC),  # its month ends after the cutoff (2026-06-18)
        datetime(2026, 12, 1, tzinfo=UTC),
    ]
    ids = []
    for when in formed:
        await own_pool.fetchval("SELECT match_partitions_create($1)", when)
        req = request(when, mode="ranked")
        assert await record(own_pool, req, when)
        ids.append(req.match_id)
    keep_tables = (
        "players",
        "player_profiles",
        "player_decks",
        "deck_cards",
        "player_card_collection",
        "cards",
    )
    before = {t: await own_pool.fetch(f"SELECT * FROM {t} ORDER BY 1") for t in keep_tables}

    dry = await retention.prune(own_pool, timedelta(days=180), dry_run=True, now=now)
    assert [part.label for part in dry.dropped] == ["2025-10", "2026-05"]
    assert await own_pool.fetchval("SELECT count(*) FROM match_history") == 4

    report = await retention.prune(own_pool, timedelta(days=180), now=now)
    assert report.cutoff == now - timedelta(days=180)
    assert [(p.label, p.history_rows, p.participant_rows) for p in report.dropped] == [
        ("2025-10", 1, 2),
        ("2026-05", 1, 2),
    ]
    assert "2026-06" in [part.label for part in report.kept]
    left = await own_pool.fetch("SELECT match_id::text AS m FROM match_history")
    assert {r["m"] for r in left} == set(ids[2:])
    assert await own_pool.fetchval("SELECT count(*) FROM match_participants") == 4
    tables = {
        r["t"]
        for r in await own_pool.fetch(
            "SELECT tablename AS t FROM pg_tables WHERE tablename LIKE 'match_%'"
        )
    }
    assert not tables & {
        "match_history_p202510",
        "match_participants_p202510",
        "match_history_p202605",
        "match_participants_p202605",
    }
    assert {"match_history_p202612", "match_history_p202701"} <= tables  # made ahead
    for table, rows in before.items():
        assert await own_pool.fetch(f"SELECT * FROM {table} ORDER BY 1") == rows, table
    assert [line for line in retention.describe(report) if line.startswith("dropped 2025-10")]

    again = await retention.prune(own_pool, timedelta(days=180), now=now)
    assert again.dropped == []


async def test_prune_command(
    own_pool: asyncpg.Pool, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from servers.cli import prune_cmd

    url = await own_pool.fetchval("SELECT current_database()")
    settings = load_settings({}).replace(
        database={"url": urlunsplit(urlsplit(database_url)._replace(path=f"/{url}"))}
    )
    await own_pool.fetchval("SELECT match_partitions_create('2020-01-01+00')")
    assert prune_cmd(settings, "abc", dry_run=False) == 2
    assert "not an age" in capsys.readouterr().err
    # The command runs its own event loop (asyncio.run): off this test's loop, in a thread.
    code = await asyncio.to_thread(prune_cmd, settings, "180d", True)
    assert code == 0
    out = capsys.readouterr().out
    assert "would drop 2020-01: match_history_p202001 (0 matches)" in out
    assert await own_pool.fetchval("SELECT to_regclass('match_history_p202001')") is not None
    code = await asyncio.to_thread(prune_cmd, settings, "180d", False)
    assert code == 0
    assert "dropped 2020-01" in capsys.readouterr().out
    assert await own_pool.fetchval("SELECT to_regclass('match_history_p202001')") is None


async def test_the_migration_converts_existing_rows(
    new_database: NewDatabase, tmp_path: Path
) -> None:
    url = await new_database()
    before = tmp_path / "before"
    before.mkdir()
    for version, path in migration_files():
        if version < 6:
            shutil.copy(path, before / path.name)
    await migrate(url, before)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "INSERT INTO players (steam_id, display_name) VALUES ($1, 'one'), ($2, 'two')",
            int(ONE),
            int(TWO),
        )
        await conn.execute(
            "INSERT INTO player_profiles (player_id) VALUES ($1), ($2)", int(ONE), int(TWO)
        )
        rows = [
            (uuid.uuid4(), datetime(2025, 11, 3, tzinfo=UTC), int(ONE)),
            (uuid.uuid4(), datetime(2025, 12, 31, 23, 59, tzinfo=UTC), None),
            (uuid.uuid4(), datetime(2026, 2, 14, tzinfo=UTC), 1),
        ]
        for match_id, started, winner in rows:
            await conn.execute(
                "INSERT INTO match_history (match_id, mode, seed, winner_id, end_reason, turns,"
                " timeline, pod_id, started_at) VALUES ($1, 'normal', 1, $2, 'hp_zero', 3,"
                " '[]', 'x', $3)",
                match_id,
                winner,
                started,
            )
            two = 1 if winner == 1 else int(TWO)  # the PvE match is against the AI (id 1)
            for slot, player in ((1, int(ONE)), (2, two)):
                await conn.execute(
                    "INSERT INTO match_participants (match_id, player_id, slot, result,"
                    " rating_before, rating_after, snapshot) VALUES ($1, $2, $3, 'draw', 1500,"
                    " 1500, '{}')",
                    match_id,
                    player,
                    slot,
                )
    finally:
        await conn.close()

    applied = await migrate(url)
    assert "0006_match_partitions.sql" in applied
    assert applied == [path.name for v, path in migration_files(MIGRATIONS_DIR) if v >= 6]
    conn = await asyncpg.connect(url)
    try:
        stored = await conn.fetch(
            "SELECT match_id, formed_at, started_at, tableoid::regclass::text AS part"
            " FROM match_history ORDER BY formed_at"
        )
        assert [(r["match_id"], r["formed_at"], r["part"]) for r in stored] == [
            (m, started, f"match_history_p{started:%Y%m}") for m, started, _ in rows
        ]
        parts = await conn.fetch(
            "SELECT tableoid::regclass::text AS part, count(*) AS n FROM match_participants"
            " GROUP BY 1 ORDER BY 1"
        )
        assert [(r["part"], r["n"]) for r in parts] == [
            ("match_participants_p202511", 2),
            ("match_participants_p202512", 2),
            ("match_participants_p202602", 2),
        ]
        assert await conn.fetchval("SELECT count(*) FROM match_history_default") == 0
        this_month = datetime.now(UTC)
        assert await conn.fetchval(
            "SELECT to_regclass($1) IS NOT NULL", f"match_history_p{this_month:%Y%m}"
        )
        # The foreign keys hold: a participant of an unknown match is refused.
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await conn.execute(
                "INSERT INTO match_participants (match_id, player_id, slot, result,"
                " rating_before, rating_after, snapshot, formed_at) VALUES ($1, $2, 1, 'win',"
                " 1, 1, '{}', now())",
                uuid.uuid4(),
                int(ONE),
            )
    finally:
        await conn.close()
    pool = await create_pool(url, 1, 2)
    try:
        found = await history(pool, int(ONE), 10)
        assert len(found.matches) == 3
        shown = await replay(pool, int(ONE), str(rows[0][0]))
        assert shown.winner_id == ONE
        result = await load_result(pool, str(rows[2][0]), ONE)
        assert result is not None and result.opponent_id == "1"
    finally:
        await pool.close()


async def test_ai_players_still_record(own_pool: asyncpg.Pool) -> None:
    """PvE requests carry their start as formation time too."""
    await add_players(own_pool)
    ai = await ai_snapshot(own_pool, "easy", "x")
    now = datetime.now(UTC)
    req = p.BattleRequest(
        match_id=str(uuid.uuid4()),
        game_mode="pve",
        seed=1,
        player1=p.PlayerCandidate(player_id=ONE, score=0, pod_id="x", metadata=snapshot(ONE, "x")),
        player2=p.PlayerCandidate(player_id=ai.player_id, score=0, pod_id="x", metadata=ai),
        formed_at_ms=int(now.timestamp() * 1000),
    )
    assert await record(own_pool, req, now)
    assert len(await where(own_pool, req.match_id)) == 2
