"""End to end: players on two pods play each other; battles are persisted exactly once."""

from __future__ import annotations

import asyncpg

from devtools.stack import Stack
from fake_client.client import timeline_problems
from fake_client.pvp import run_pvp
from tests.support.pvp import play_across_pods


async def test_two_players_on_different_pods_play_each_other(
    stack: Stack, pool: asyncpg.Pool
) -> None:
    match = await play_across_pods(stack)
    alice, bob = match.player_ids
    found_a, found_b = match.found
    assert found_a.opponent_id == bob
    assert found_b.opponent_id == alice
    result_a, result_b = match.results
    assert result_a.match_id == result_b.match_id == found_a.match_id
    assert bytes(result_a.timeline) == bytes(result_b.timeline)
    assert timeline_problems(result_a) == [] and timeline_problems(result_b) == []
    outcomes = {result_a.outcome, result_b.outcome}
    assert outcomes in ({"win", "loss"}, {"draw"})

    row = await pool.fetchrow(
        "SELECT * FROM match_history WHERE match_id = $1::uuid", found_a.match_id
    )
    assert row is not None and row["mode"] == "normal"
    assert row["pod_id"] in ("pod-1", "pod-2")  # any game server may run a battle
    assert row["turns"] == result_a.turns
    participants = await pool.fetch(
        "SELECT player_id, slot, result FROM match_participants WHERE match_id = $1::uuid"
        " ORDER BY slot",
        found_a.match_id,
    )
    assert [str(r["player_id"]) for r in participants] == [alice, bob]
    assert {r["result"] for r in participants} == outcomes or len(participants) == 2


async def test_many_pairs_across_pods_all_complete(stack: Stack, pool: asyncpg.Pool) -> None:
    before = await pool.fetchval("SELECT count(*) FROM match_history")
    summary = await run_pvp(stack.auth_url, stack.game_urls, 20, timeout=20)
    assert summary.errors == []
    assert summary.matches_completed == 20 and summary.players_failed == 0
    assert summary.cross_pod_matches > 0
    assert await pool.fetchval("SELECT count(*) FROM match_history") == before + 20
    # Exactly two participants per recorded match.
    lonely = await pool.fetchval(
        "SELECT count(*) FROM (SELECT match_id FROM match_participants GROUP BY match_id"
        " HAVING count(*) <> 2) x"
    )
    assert lonely == 0
