"""`cardgame bench matchmaking`: Ranked match quality of the real matchmaker on a real Redis.

A population of N players with a realistic rating spread (normal, mean 1500, SD 300, clipped to
600..2800: the shape of a mature Glicko ladder) arrives into the Ranked queue as a Poisson
process of R players per second for S seconds; each arrival is a random player who is not
queued at the moment (a matched player is free again at once). K match servers
(`Matchmaking`, the code the match server runs, with the configured windows and tick) pair them;
the benchmark reads every pair from the Ranked battle stream and reports:

* wait: enqueue to pairing, median and p95 (players still waiting at the end are reported apart);
* |rating difference| of the pairs: mean and p95;
* the best possible pairing of the same paired players (sorted neighbours: the minimum mean
  difference any matchmaker could reach with all of them at once, ignoring time) and the ratio;
* the same bound per pass: the players one pairing pass paired (one commit: the pairs whose
  stream ids share a millisecond), best paired among themselves. This is the fair reference
  for the pairing rule itself; the whole-run bound also charges for not waiting for partners
  who arrive later.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
import uuid
from typing import Any

import msgspec

from devtools.bench.procs import machine
from devtools.embedded import ensure_redis
from servers.common import bus
from servers.common import protocol as p
from servers.common.config import load_settings
from servers.common.keys import GameMode, Keys
from servers.common.models import BattleSnapshot, CardSnapshot
from servers.match.app import matchmaking_for
from servers.match.matchmakers.ranked import best_possible_mean_diff
from servers.match.metrics import MatchMetrics

FIRST_ID = 76561197960265729
MODE = GameMode.RANKED
_request = msgspec.json.Decoder(p.BattleRequest)
DECK = tuple(
    CardSnapshot(
        card_id=1 + i // 2,
        name=f"Card {1 + i // 2}",
        cost=1 + i % 7,
        attack=1 + i % 5,
        health=2 + i % 4,
    )
    for i in range(20)
)


async def stop_tasks(tasks: list[asyncio.Task[None]], rounds: int = 20) -> None:
    """Cancel until every task ended (a cancel can be lost in a client library on 3.11)."""
    for _ in range(rounds):
        pending = [t for t in tasks if not t.done()]
        if not pending:
            return
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=0.5)


def population(players: int, seed: int) -> dict[str, float]:
    rng = random.Random(seed)
    return {
        str(FIRST_ID + i): min(2800.0, max(600.0, rng.gauss(1500.0, 300.0))) for i in range(players)
    }


def _pct(values: list[float], q: int) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 1)
    return round(statistics.quantiles(sorted(values), n=100, method="inclusive")[q - 1], 1)


async def simulate(
    url: str, players: int, rate: float, duration: float, servers: int, seed: int
) -> dict[str, Any]:
    settings = load_settings()
    keys = Keys(f"bench-mq-{uuid.uuid4().hex[:6]}")
    redis = bus.connect_redis(url)
    ratings = population(players, seed)
    idle = list(ratings)
    rng = random.Random(seed + 1)
    queued: dict[str, int] = {}
    waits: list[float] = []
    diffs: list[float] = []
    paired_ratings: list[float] = []
    passes: dict[str, list[float]] = {}
    arrivals = skipped = 0
    mms = [matchmaking_for(redis, keys, settings, MatchMetrics()) for _ in range(servers)]
    ticks = [asyncio.create_task(mm.run_ticks(settings.match.tick_interval)) for mm in mms]
    stop = asyncio.Event()

    async def read_pairs() -> None:
        last: bytes | str = "0-0"
        while not stop.is_set() or queued:
            reply = await redis.xread({keys.battles(MODE): last}, count=1000, block=100)
            now = int(time.time() * 1000)
            for entry_id, fields in bus.stream_entries(reply):
                last = entry_id
                request = _request.decode(fields[b"m"])
                pair = (request.player1, request.player2)
                # The battle "ends" at once: the players are free to queue again.
                await mms[0].players.finish(request.match_id, [c.player_id for c in pair])
                for c in pair:
                    waits.append((now - c.score) / 1000)
                    queued.pop(c.player_id, None)
                    idle.append(c.player_id)
                    paired_ratings.append(c.metadata.rating)
                diffs.append(abs(pair[0].metadata.rating - pair[1].metadata.rating))
                ms = bus.text(entry_id)
                passes.setdefault(ms.split("-")[0], []).extend(c.metadata.rating for c in pair)
            if stop.is_set() and not reply:
                return

    reader = asyncio.create_task(read_pairs())
    started = time.monotonic()
    try:
        next_at = started
        while time.monotonic() - started < duration:
            next_at += rng.expovariate(rate)
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            arrivals += 1
            if not idle:
                skipped += 1
                continue
            player = idle.pop(rng.randrange(len(idle)))
            now = int(time.time() * 1000)
            queued[player] = now
            snap = BattleSnapshot(
                player_id=player,
                name=f"P{player[-6:]}",
                level=1,
                rating=ratings[player],
                deck=DECK,
                pod_id="bench",
            )
            # The player's connection takes them, then queues them (as a game server does).
            attached = await mms[0].players.attach(player, "bench", now)
            await mms[0].scripts.enqueue(MODE, player, now, p.encode(snap), attached.epoch)
        stop.set()
        # Those still queued at the end keep waiting; count them, do not wait for them.
        await asyncio.sleep(settings.match.tick_interval * 3)
        still = dict(queued)
        queued.clear()
        await asyncio.wait_for(reader, 10)
    finally:
        await stop_tasks([*ticks, reader])
        await redis.delete(
            keys.queue(MODE),
            keys.tickets(MODE),
            keys.ticket_pods(MODE),
            keys.inflight(MODE),
            keys.inflight_scores(MODE),
            keys.battles(MODE),
            keys.pairing_pass(MODE),
            keys.deadlines,
        )
        async with redis.pipeline(transaction=False) as pipe:
            for player in ratings:
                pipe.unlink(keys.player(player))
            await pipe.execute()
        await redis.aclose()
    end_ms = int(time.time() * 1000)
    best = best_possible_mean_diff(paired_ratings)
    per_pass = [best_possible_mean_diff(r) * len(r) / 2 for r in passes.values()]
    best_pass = sum(per_pass) / len(diffs) if diffs else 0.0
    mean = statistics.fmean(diffs) if diffs else None
    m = settings.match
    return {
        "players": players,
        "arrival_rate": rate,
        "duration_s": duration,
        "servers": servers,
        "seed": seed,
        "tick_s": m.tick_interval,
        "window": {
            "start": m.ranked_window_start,
            "growth_per_s": m.ranked_window_growth,
            "max": m.ranked_window_max,
        },
        "arrivals": arrivals,
        "arrivals_skipped_nobody_idle": skipped,
        "pairs": len(diffs),
        "wait_s": {
            "median": _pct(waits, 50),
            "p95": _pct(waits, 95),
            "max": round(max(waits), 1) if waits else None,
        },
        "still_waiting": {
            "players": len(still),
            "longest_s": round(max((end_ms - t) / 1000 for t in still.values()), 1)
            if still
            else None,
        },
        "rating_diff": {
            "mean": round(mean, 1) if mean is not None else None,
            "p95": _pct(diffs, 95),
            "max": round(max(diffs), 1) if diffs else None,
        },
        "best_possible_mean_diff": round(best, 1),
        "mean_diff_vs_best": round(mean / best, 2) if mean is not None and best else None,
        "passes": len(passes),
        "best_possible_per_pass_mean_diff": round(best_pass, 1),
        "mean_diff_vs_best_per_pass": round(mean / best_pass, 2)
        if mean is not None and best_pass
        else None,
    }


def bench_matchmaking(
    players: int, rate: float, duration: float, servers: int = 1, seed: int = 1
) -> dict[str, Any]:
    settings = load_settings()
    service = ensure_redis(settings.redis.url or None)
    try:
        result = asyncio.run(simulate(service.url, players, rate, duration, servers, seed))
    finally:
        service.stop()
    result["machine"] = machine()
    return result


def print_matchmaking(result: dict[str, Any]) -> None:
    w, d, s = result["wait_s"], result["rating_diff"], result["still_waiting"]
    print(
        f"ranked matchmaking: {result['players']} players, {result['arrival_rate']}/s for"
        f" {result['duration_s']} s, {result['servers']} match server(s),"
        f" window {result['window']}"
    )
    print(
        f"  pairs                {result['pairs']}  (arrivals {result['arrivals']},"
        f" still waiting {s['players']}, longest {s['longest_s']} s)"
    )
    print(f"  wait                 median {w['median']} s  p95 {w['p95']} s  max {w['max']} s")
    print(f"  |rating diff|        mean {d['mean']}  p95 {d['p95']}  max {d['max']}")
    print(
        f"  best possible mean   {result['best_possible_mean_diff']}"
        f"  (ratio {result['mean_diff_vs_best']}; whole run, ignoring time)"
    )
    print(
        f"  best per pass        {result['best_possible_per_pass_mean_diff']}"
        f"  (ratio {result['mean_diff_vs_best_per_pass']}; {result['passes']} passes)"
    )
