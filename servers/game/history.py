"""Match history and replays, read from PostgreSQL.

A replay's timeline is simulated again from the match's inputs (its participants' snapshots,
seed and engine version: `persistence.timeline`), byte for byte the one the players were sent;
a match recorded before the inputs-only format keeps its stored timeline (JSON, not JSONB: the
exact bytes), served as it is. `resimulate` proves either can be produced again.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

import asyncpg
import msgspec

from servers.common import protocol as p
from servers.common.errors import ErrorCode, GameError
from servers.game import persistence
from servers.game.battle import engines


async def history(pool: asyncpg.Pool, player_id: int, limit: int) -> p.History:
    rows = await pool.fetch(
        "SELECT h.match_id::text AS match_id, h.mode, h.turns,"
        " (extract(epoch FROM h.finished_at) * 1000)::bigint AS finished_ms,"
        " me.result, me.rating_before, me.rating_after, o.player_id AS opponent,"
        " op.display_name AS opponent_name"
        " FROM match_participants me"
        " JOIN match_history h ON h.match_id = me.match_id AND h.formed_at = me.formed_at"
        " JOIN match_participants o ON o.match_id = me.match_id AND o.formed_at = me.formed_at"
        " AND o.player_id <> me.player_id"
        " JOIN players op ON op.steam_id = o.player_id"
        " WHERE me.player_id = $1 ORDER BY h.finished_at DESC, h.match_id LIMIT $2",
        player_id,
        limit,
    )
    return p.History(
        matches=[
            p.HistoryEntry(
                match_id=r["match_id"],
                mode=r["mode"],
                opponent_id=str(r["opponent"]),
                opponent_name=r["opponent_name"],
                result=r["result"],
                turns=r["turns"],
                rating_before=r["rating_before"],
                rating_after=r["rating_after"],
                rating_change=r["rating_after"] - r["rating_before"],
                finished_at_ms=r["finished_ms"],
            )
            for r in rows
        ]
    )


def _match_uuid(match_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(match_id)
    except ValueError:
        raise GameError(ErrorCode.MATCH_NOT_FOUND, "a match id is a UUID") from None


async def replay(pool: asyncpg.Pool, player_id: int, match_id: str) -> p.Replay:
    """The replay of one of the player's matches; someone else's match is refused."""
    key = _match_uuid(match_id)
    async with pool.acquire() as conn:
        match = await conn.fetchrow(
            "SELECT match_id, mode, seed, winner_id, end_reason, turns,"
            " timeline::text AS timeline, formed_at, engine_version FROM match_history"
            " WHERE match_id = $1",
            key,
        )
        if match is None:
            raise GameError(ErrorCode.MATCH_NOT_FOUND)
        players = await conn.fetch(
            "SELECT m.player_id, p.display_name, m.slot, m.result, m.rating_before,"
            " m.rating_after FROM match_participants m JOIN players p ON p.steam_id = m.player_id"
            " WHERE m.match_id = $1 AND m.formed_at = $2 ORDER BY m.slot",
            key,
            match["formed_at"],
        )
        if player_id not in {r["player_id"] for r in players}:
            raise GameError(ErrorCode.NOT_YOUR_MATCH)
        timeline = await persistence.timeline(conn, match)
    return p.Replay(
        match_id=str(key),
        mode=match["mode"],
        seed=match["seed"],
        winner_id=None if match["winner_id"] is None else str(match["winner_id"]),
        end_reason=match["end_reason"],
        turns=match["turns"],
        players=[
            p.ReplayPlayer(
                player_id=str(r["player_id"]),
                name=r["display_name"],
                slot=r["slot"],
                result=r["result"],
                rating_before=r["rating_before"],
                rating_after=r["rating_after"],
            )
            for r in players
        ],
        timeline=msgspec.Raw(timeline),
    )


async def resimulate(
    pool: asyncpg.Pool, match_id: str, registry: Mapping[int, engines.Engine] = engines.ENGINES
) -> tuple[bytes, bytes]:
    """(the timeline a replay serves: the stored one, or for an inputs-only record the one
    re-simulated; the timeline simulated again from the stored inputs by the engine version that
    played the match), both with the engines of `registry`."""
    key = _match_uuid(match_id)
    async with pool.acquire() as conn:
        match = await conn.fetchrow(
            "SELECT match_id, formed_at, seed, engine_version, timeline::text AS timeline"
            " FROM match_history WHERE match_id = $1",
            key,
        )
        if match is None:
            raise GameError(ErrorCode.MATCH_NOT_FOUND)
        served = await persistence.timeline(conn, match, registry)
        return served, await persistence.simulate_again(conn, match, registry)
