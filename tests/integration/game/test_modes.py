"""End to end through real servers: Ranked with Glicko-2, Party duels, PvE, history,
replays, timeline compression, and the bad input around them."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime

import asyncpg
import msgspec
import pytest
import redis.asyncio as aioredis

from devtools.stack import Stack
from fake_client.client import timeline_problems
from fake_client.modes import run_mode
from fake_client.pvp import run_pvp
from servers.common import glicko2
from servers.common import protocol as p
from servers.common.config import Settings
from servers.common.errors import ErrorCode
from servers.common.keys import Keys
from servers.game.history import resimulate
from servers.game.persistence import record_match, stored_snapshots
from tests.support.helpers import connect, expect_error


async def profile(pool: asyncpg.Pool, player_id: str) -> asyncpg.Record:
    return await pool.fetchrow("SELECT * FROM player_profiles WHERE player_id = $1", int(player_id))


async def test_ranked_match_moves_ratings_by_glicko2_once(stack: Stack, pool: asyncpg.Pool) -> None:
    summary = await run_pvp(
        stack.auth_url,
        stack.game_urls,
        2,
        mode="ranked",
        timeout=20,
        steam_sim_url=stack.steam_sim_url or None,
    )
    assert summary.errors == [] and summary.matches_completed == 2
    rows = await pool.fetch(
        "SELECT m.match_id, m.player_id, m.slot, m.result, m.rating_before, m.rating_after,"
        " m.rd_before, m.rd_after, m.volatility_after, h.winner_id"
        " FROM match_participants m JOIN match_history h USING (match_id)"
        " WHERE m.match_id = (SELECT match_id FROM match_history WHERE mode = 'ranked'"
        "                     ORDER BY finished_at DESC LIMIT 1)"
        " ORDER BY m.slot"
    )
    one, two = rows
    assert one["match_id"] == two["match_id"]
    score = {"win": 1.0, "loss": 0.0, "draw": 0.5}[one["result"]]
    expected = glicko2.rate_match(
        glicko2.Rating(one["rating_before"], one["rd_before"], 0.06),
        glicko2.Rating(two["rating_before"], two["rd_before"], 0.06),
        score,
        tau=0.5,
    )
    for row, want in zip((one, two), expected, strict=True):
        assert row["rating_after"] == pytest.approx(want.rating)
        assert row["rd_after"] == pytest.approx(want.rd)
        assert row["volatility_after"] == pytest.approx(want.volatility)
        now = await profile(pool, str(row["player_id"]))
        assert now["rating"] == pytest.approx(want.rating)
        assert now["rating_deviation"] == pytest.approx(want.rd)
        assert now["rated_at"] is not None
    if score != 0.5:
        assert one["rating_after"] != one["rating_before"]

    # The same battle recorded again (a redelivered request) changes nothing.
    stored = await pool.fetchrow("SELECT * FROM match_history WHERE match_id = $1", one["match_id"])
    a, b = await stored_snapshots(pool, one["match_id"], stored["formed_at"])
    request = p.BattleRequest(
        match_id=str(one["match_id"]),
        game_mode="ranked",
        seed=stored["seed"],
        player1=p.PlayerCandidate(player_id=a.player_id, score=0, pod_id="x", metadata=a),
        player2=p.PlayerCandidate(player_id=b.player_id, score=0, pod_id="x", metadata=b),
    )
    again = await record_match(
        pool,
        request,
        winner_id=None,
        end_reason="turn_limit",
        turns=1,
        pod_id="x",
        started_at=datetime.now(UTC),
    )
    assert again is None  # recorded before: nothing changes
    assert (await profile(pool, str(one["player_id"])))["rating"] == pytest.approx(
        expected[0].rating
    )


async def test_party_duel_end_to_end(stack: Stack, pool: asyncpg.Pool) -> None:
    summary = await run_mode(
        "party",
        stack.auth_url,
        stack.game_urls,
        2,
        timeout=20,
        steam_sim_url=stack.steam_sim_url or None,
    )
    assert summary.errors == [] and summary.completed == 2
    assert await pool.fetchval("SELECT count(*) FROM match_history WHERE mode = 'party'") >= 2


async def test_party_bad_input_and_leaving(stack: Stack, settings: Settings) -> None:
    host, guest, third = [await connect(stack, pod=i % 2) for i in range(3)]
    try:
        with expect_error(ErrorCode.PARTY_NOT_FOUND):
            await guest.request(p.JoinParty(code="ZZZZZZ"))
        with expect_error(ErrorCode.NOT_IN_PARTY):
            await guest.request(p.LeaveParty())
        with expect_error(ErrorCode.NOT_IN_PARTY):
            await guest.request(p.Enqueue(mode="party"))
        with expect_error(ErrorCode.UNKNOWN_MODE):
            await guest.request(p.Enqueue(mode="arena"))

        party = await host.request(p.CreateParty())
        assert isinstance(party, p.Party) and party.members == [host.welcome.player_id]
        with expect_error(ErrorCode.ALREADY_IN_PARTY):
            await host.request(p.CreateParty())
        with expect_error(ErrorCode.PARTY_NOT_READY):
            await host.request(p.Enqueue(mode="party"))
        with expect_error(ErrorCode.IN_PARTY):
            await host.request(p.Enqueue(mode="normal"))

        joined = await guest.request(p.JoinParty(code=party.code.lower()))
        assert isinstance(joined, p.Party) and joined.event == "joined"
        pushed = await host.next_push(p.Party, 5)
        assert pushed.event == "member_joined" and guest.welcome.player_id in pushed.members
        with expect_error(ErrorCode.PARTY_FULL):
            await third.request(p.JoinParty(code=party.code))

        # The guest waits for the duel; the host leaves: the guest is dequeued and told.
        await guest.request(p.Enqueue(mode="party"))
        with expect_error(ErrorCode.ALREADY_QUEUED):
            await guest.request(p.LeaveParty())
        left = await host.request(p.LeaveParty())
        assert isinstance(left, p.PartyLeft) and left.code == party.code
        dequeued = await guest.next_push(p.Dequeued, 5)
        assert dequeued.reason == "party" and dequeued.mode == "party"
        update = await guest.next_push(p.Party, 5)
        assert update.event == "member_left" and update.members == [guest.welcome.player_id]
        await host.request(p.Enqueue(mode="normal"))  # out of the party: may queue again
        await host.request(p.Dequeue())

        # Expiry: a party past its time cannot be joined, and its member is told.
        keys = Keys(settings.redis.namespace)
        client = aioredis.Redis.from_url(settings.redis.url)
        try:
            record = json.loads(await client.hget(keys.parties, party.code))
            record["expires_ms"] = int(time.time() * 1000) - 1
            await client.hset(keys.parties, party.code, json.dumps(record))
            await client.zadd(keys.party_expiry, {party.code: record["expires_ms"]})
        finally:
            await client.aclose()
        # PARTY_NOT_FOUND when the sweep removed the party already.
        with expect_error(ErrorCode.PARTY_EXPIRED, ErrorCode.PARTY_NOT_FOUND):
            await third.request(p.JoinParty(code=party.code))
        expired = await guest.next_push(p.Party, 5)
        assert expired.event == "expired" and expired.code == party.code
        with expect_error(ErrorCode.NOT_IN_PARTY):
            await guest.request(p.GetParty())
    finally:
        for c in (host, guest, third):
            await c.close()


async def test_disconnecting_leaves_the_party_after_the_grace(stack: Stack) -> None:
    host = await connect(stack, pod=0)
    guest = await connect(stack, pod=1)
    try:
        party = await host.request(p.CreateParty())
        assert isinstance(party, p.Party)
        await guest.request(p.JoinParty(code=party.code))
        await host.next_push(p.Party, 5)
        await guest.close()
        update = await host.next_push(p.Party, 5)
        assert update.event == "member_left" and update.members == [host.welcome.player_id]
    finally:
        await host.close()


async def test_pve_history_and_replay(stack: Stack, pool: asyncpg.Pool) -> None:
    me = await connect(stack, pod=1)
    other = await connect(stack, pod=0)
    try:
        found = await me.request(p.StartPve(difficulty="hard"))
        assert isinstance(found, p.MatchFound) and found.mode == "pve"
        assert found.opponent_id == "3" and found.opponent_name == "AI (hard)"
        result = await me.next_push(p.BattleResultMessage, 10)
        assert result.match_id == found.match_id and timeline_problems(result) == []
        await me.send_raw('{"type":"start_pve","difficulty":"godlike","id":"x"}')
        refused = await me.next_push(p.Error, 5)
        assert refused.code == "INVALID_MESSAGE" and refused.id == "x"

        history = await me.request(p.GetHistory(limit=5))
        assert isinstance(history, p.History)
        entry = history.matches[0]
        assert (entry.match_id, entry.mode, entry.opponent_id, entry.result) == (
            found.match_id,
            "pve",
            "3",
            result.outcome,
        )
        assert entry.rating_change == 0

        replay = await me.request(p.GetReplay(match_id=found.match_id))
        assert isinstance(replay, p.Replay)
        assert bytes(replay.timeline) == bytes(result.timeline)
        assert replay.seed == result.seed and [x.player_id for x in replay.players] == [
            me.welcome.player_id,
            "3",
        ]
        stored, again = await resimulate(pool, found.match_id)
        assert stored == again == bytes(result.timeline)

        with expect_error(ErrorCode.NOT_YOUR_MATCH):
            await other.request(p.GetReplay(match_id=found.match_id))
        for bad in (str(uuid.uuid4()), "not-a-uuid"):
            with expect_error(ErrorCode.MATCH_NOT_FOUND):
                await me.request(p.GetReplay(match_id=bad))
    finally:
        await me.close()
        await other.close()


async def test_replays_of_pvp_matches_resimulate_byte_for_byte(
    stack: Stack, pool: asyncpg.Pool
) -> None:
    rows = await pool.fetch(
        "SELECT match_id::text AS m FROM match_history"
        " WHERE mode <> 'pve' ORDER BY finished_at DESC LIMIT 5"
    )
    assert rows
    for row in rows:
        stored, again = await resimulate(pool, row["m"])
        assert stored == again


async def test_timeline_gzip_is_negotiated(stack: Stack) -> None:
    zipped = await connect(stack, pod=0)
    plain = await connect(stack, pod=1)
    try:
        options = await zipped.request(p.SetOptions(timeline_gzip=True))
        assert isinstance(options, p.Options) and options.timeline_gzip
        await zipped.request(p.Enqueue())
        await plain.request(p.Enqueue())
        got_zipped = await zipped.next_push(p.BattleResultMessage, 10)
        got_plain = await plain.next_push(p.BattleResultMessage, 10)
        assert got_plain.timeline_gzip is None
        assert len(bytes(got_plain.timeline)) > options.gzip_threshold  # else nothing to do
        assert got_zipped.timeline_gzip is not None and bytes(got_zipped.timeline) == b"null"
        assert p.timeline_bytes(got_zipped) == bytes(got_plain.timeline)
        assert len(got_zipped.timeline_gzip) < len(bytes(got_plain.timeline)) / 3
        replay = await zipped.request(p.GetReplay(match_id=got_zipped.match_id))
        assert isinstance(replay, p.Replay) and replay.timeline_gzip is not None
        assert p.timeline_bytes(replay) == bytes(got_plain.timeline)
    finally:
        await zipped.close()
        await plain.close()


async def test_fake_client_commands(stack: Stack) -> None:
    """`fake-client party` and `fake-client pve` as a person runs them."""
    args = ["--auth", stack.auth_url, "--game", ",".join(stack.game_urls), "--json"]
    if stack.steam_sim_url:
        args += ["--steam-sim", stack.steam_sim_url]
    else:
        args += ["--login", "dev"]
    for command in (["party", "--battles", "1"], ["pve", "--difficulty", "easy"]):
        process = await asyncio.create_subprocess_exec(
            ".venv/bin/fake-client",
            *command,
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0, err.decode()
        summary = json.loads(out.decode().splitlines()[-1])
        assert summary["failed"] == 0 and summary["completed"] == summary["battles"]


async def test_history_limit_is_bounded(stack: Stack) -> None:
    client = await connect(stack)
    try:
        history = await client.request(p.GetHistory(limit=100000))
        assert isinstance(history, p.History) and history.matches == []
    finally:
        await client.close()


async def test_a_match_replays_with_the_engine_that_played_it_after_a_rules_change(
    stack: Stack, pool: asyncpg.Pool
) -> None:
    """An engine bump (new rules, here: every timeline reversed) changes new battles only: a
    match recorded before replays, byte for byte, with the engine version it was played with."""
    from servers.game.battle import engines
    from servers.game.battle.sim import BattleOutcome

    row = await pool.fetchrow(
        "SELECT match_id::text AS m, engine_version AS v FROM match_history"
        " WHERE mode <> 'pve' ORDER BY finished_at DESC LIMIT 1"
    )
    assert row is not None and row["v"] == engines.CURRENT == 1

    def reversed_rules(one: p.BattleSnapshot, two: p.BattleSnapshot, seed: int) -> BattleOutcome:
        outcome = engines.ENGINES[1](one, two, seed)
        return msgspec.structs.replace(outcome, events=list(reversed(outcome.events)))

    bumped = {**engines.ENGINES, 2: reversed_rules}
    stored, _ = await resimulate(pool, row["m"])
    served, again = await resimulate(pool, row["m"], bumped)
    assert stored == served == again  # still engine 1: the old rules
    await pool.execute(
        "UPDATE match_history SET engine_version = 2 WHERE match_id = $1::uuid", row["m"]
    )
    try:
        _, under_new_rules = await resimulate(pool, row["m"], bumped)
        assert under_new_rules != stored  # the version decides which rules replay it
        with expect_error(ErrorCode.INTERNAL):  # a version this server does not have
            await resimulate(pool, row["m"])
    finally:
        await pool.execute(
            "UPDATE match_history SET engine_version = 1 WHERE match_id = $1::uuid", row["m"]
        )
