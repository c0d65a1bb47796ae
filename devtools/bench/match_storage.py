"""Bytes per recorded match: N simulated battles recorded through `persistence.record_match`
into a fresh database, then the size of match_history and match_participants (every partition:
heap, TOAST and indexes) divided by N. Matches are recorded as the servers record them now:
inputs only (seed, engine version, snapshots by reference to the catalogue version), no
timeline.

    .venv/bin/python -m devtools.bench.match_storage --database postgresql://USER@HOST/DB \
        [--matches 10000] [--concurrency 8] [--json]

The named database is only used to create (and afterwards drop) a database of the run's own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec

from devtools.embedded import scratch_database
from servers.common import protocol as p
from servers.common.content import migrate_and_load
from servers.common.db import create_pool
from servers.game.battle.sim import simulate
from servers.game.persistence import record_match
from servers.game.pve import AI_PLAYERS, ai_snapshot

FIRST_ID = 76561198100000000
_SIZES = (
    "SELECT t.parent, sum(pg_relation_size(t.relid)) AS heap,"
    " sum(pg_total_relation_size(t.relid) - pg_relation_size(t.relid)"
    " - pg_indexes_size(t.relid)) AS toast, sum(pg_indexes_size(t.relid)) AS indexes,"
    " sum(pg_total_relation_size(t.relid)) AS total"
    " FROM (SELECT 'match_history' AS parent, relid FROM pg_partition_tree('match_history')"
    " WHERE isleaf UNION ALL SELECT 'match_participants', relid"
    " FROM pg_partition_tree('match_participants') WHERE isleaf) t GROUP BY t.parent"
)


async def _players(pool: asyncpg.Pool, count: int) -> list[int]:
    ids = [FIRST_ID + i for i in range(count)]
    await pool.executemany(
        "INSERT INTO players (steam_id, display_name) VALUES ($1, $2)",
        [(i, f"bench{i}") for i in ids],
    )
    await pool.executemany(
        "INSERT INTO player_profiles (player_id) VALUES ($1)", [(i,) for i in ids]
    )
    return ids


async def run(url: str, matches: int, concurrency: int, seed: int) -> dict[str, Any]:
    pool = await create_pool(url, 1, concurrency)
    try:
        rng = random.Random(seed)
        ids = await _players(pool, 200)
        decks = [await ai_snapshot(pool, level, "bench") for level in AI_PLAYERS]
        todo: asyncio.Queue[int] = asyncio.Queue()
        for n in range(matches):
            todo.put_nowait(n)

        async def worker() -> None:
            while not todo.empty():
                n = todo.get_nowait()
                one, two = rng.sample(ids, 2)
                snaps = [
                    msgspec.structs.replace(rng.choice(decks), player_id=str(pid), name=f"b{pid}")
                    for pid in (one, two)
                ]
                request = p.BattleRequest(
                    match_id=str(uuid.uuid4()),
                    game_mode="ranked" if n % 2 else "normal",
                    seed=rng.getrandbits(63),
                    player1=p.PlayerCandidate(
                        player_id=str(one), score=0, pod_id="bench", metadata=snaps[0]
                    ),
                    player2=p.PlayerCandidate(
                        player_id=str(two), score=0, pod_id="bench", metadata=snaps[1]
                    ),
                    formed_at_ms=int(time.time() * 1000),
                )
                outcome = simulate(snaps[0], snaps[1], request.seed)
                await record_match(
                    pool,
                    request,
                    winner_id=outcome.winner_id,
                    end_reason=outcome.reason,
                    turns=outcome.turns,
                    pod_id="bench",
                    started_at=datetime.now(UTC),
                )

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - began
        await pool.execute("VACUUM ANALYZE match_history")
        await pool.execute("VACUUM ANALYZE match_participants")
        stored = await pool.fetchval("SELECT count(*) FROM match_history")
        sizes = {r["parent"]: dict(r) for r in await pool.fetch(_SIZES)}
        timelines = await pool.fetchval("SELECT count(timeline) FROM match_history")
        ref = await pool.fetchval("SELECT avg(length(snapshot_ref::text)) FROM match_participants")
    finally:
        await pool.close()
    total = sum(int(s["total"]) for s in sizes.values())
    return {
        "matches": stored,
        "record_seconds": round(seconds, 2),
        "matches_per_second": round(stored / seconds, 1),
        "timelines_stored": timelines,
        "avg_snapshot_ref_chars": round(float(ref or 0), 1),
        "tables": {
            name: {k: int(v) for k, v in s.items() if k != "parent"} for name, s in sizes.items()
        },
        "total_bytes": total,
        "bytes_per_match": round(total / stored, 1),
    }


async def _with_database(admin_url: str, work: Any) -> dict[str, Any]:
    async with scratch_database(admin_url, "cardgame_bench") as url:
        await migrate_and_load(url)  # a catalogue version for the snapshots to refer to
        result: dict[str, Any] = await work(url)
        return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", required=True, help="a PostgreSQL URL to create one in")
    parser.add_argument("--matches", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print the JSON result last")
    args = parser.parse_args(argv)
    result = asyncio.run(
        _with_database(
            args.database, lambda url: run(url, args.matches, args.concurrency, args.seed)
        )
    )
    print(f"matches recorded     {result['matches']} in {result['record_seconds']} s")
    for name, size in sorted(result["tables"].items()):
        print(
            f"{name:<20} heap {size['heap']:>11,} B  toast {size['toast']:>9,} B"
            f"  indexes {size['indexes']:>10,} B"
        )
    print(f"timelines stored     {result['timelines_stored']}")
    print(f"average snapshot_ref {result['avg_snapshot_ref_chars']} characters")
    print(f"bytes per match      {result['bytes_per_match']:,}  (tables + indexes / matches)")
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
