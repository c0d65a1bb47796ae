"""Recording finished battles in PostgreSQL, exactly once per match id."""

from __future__ import annotations

from datetime import datetime

import asyncpg
import msgspec

from servers.common import protocol as p

EXPERIENCE = {"win": 30, "draw": 15, "loss": 10}


def result_of(player_id: str, winner_id: str | None) -> str:
    if winner_id is None:
        return "draw"
    return "win" if winner_id == player_id else "loss"


async def record_match(pool: asyncpg.Pool, request: p.BattleRequest, *, winner_id: str | None,
                       end_reason: str, turns: int, timeline: bytes, pod_id: str,
                       started_at: datetime) -> bool:
    """Store the match, its participants and their profile counters in one transaction.

    Returns False (and changes nothing) when this match id was recorded before, so a battle
    request delivered twice is persisted once.
    """
    async with pool.acquire() as conn, conn.transaction():
        inserted = await conn.fetchval(
            "INSERT INTO match_history (match_id, mode, seed, winner_id, end_reason, turns,"
            " timeline, pod_id, started_at) VALUES ($1, $2, $3, $4, $5, $6, $7::json, $8, $9)"
            " ON CONFLICT (match_id) DO NOTHING RETURNING true",
            request.match_id, request.game_mode, request.seed,
            int(winner_id) if winner_id is not None else None, end_reason, turns,
            timeline.decode(), pod_id, started_at,
        )
        if not inserted:
            return False
        rows = []
        for slot, candidate in ((1, request.player1), (2, request.player2)):
            snap = candidate.metadata
            rows.append((request.match_id, int(snap.player_id), slot,
                         result_of(snap.player_id, winner_id), snap.rating, snap.rating,
                         p.encode(snap).decode()))
        await conn.executemany(
            "INSERT INTO match_participants (match_id, player_id, slot, result, rating_before,"
            " rating_after, snapshot) VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)",
            rows,
        )
        await conn.executemany(
            "UPDATE player_profiles SET wins = wins + ($2 = 'win')::int,"
            " losses = losses + ($2 = 'loss')::int, draws = draws + ($2 = 'draw')::int,"
            " experience = experience + $3, level = 1 + (experience + $3) / 100,"
            " updated_at = now() WHERE player_id = $1",
            [(row[1], row[3], EXPERIENCE[row[3]]) for row in rows],
        )
        return True


async def load_result(pool: asyncpg.Pool, match_id: str, player_id: str) -> p.BattleResult | None:
    """A recorded match's result as one player receives it, or None if not recorded (yet)."""
    row = await pool.fetchrow(
        "SELECT h.mode, h.seed, h.winner_id, h.turns, h.timeline::text AS timeline,"
        " o.player_id AS opponent FROM match_history h"
        " JOIN match_participants me ON me.match_id = h.match_id AND me.player_id = $2"
        " JOIN match_participants o ON o.match_id = h.match_id AND o.player_id <> $2"
        " WHERE h.match_id = $1::uuid",
        match_id, int(player_id))
    if row is None:
        return None
    return p.BattleResult(
        match_id=match_id, game_mode=row["mode"], player_id=player_id,
        opponent_id=str(row["opponent"]), seed=row["seed"],
        winner_id=None if row["winner_id"] is None else str(row["winner_id"]),
        turns=row["turns"], timeline=msgspec.Raw(row["timeline"].encode()))
