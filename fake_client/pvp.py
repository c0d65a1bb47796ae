"""Scripted PvP: 2 x pairs players log in, spread over the game servers, queue, battle."""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from fake_client.client import GameClient, login_dev, login_steam, timeline_problems
from servers.common import protocol as p
from servers.common.protocol import ServerError


@dataclass
class PlayerRun:
    name: str
    game_url: str
    pod_id: str = ""
    player_id: str = ""
    match_id: str = ""
    opponent_id: str = ""
    to_match_ms: float | None = None
    to_result_ms: float | None = None
    winner_id: str | None = None
    error: str = ""


def percentiles(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "p99": None, "max": None}
    ordered = sorted(values)
    if len(ordered) == 1:
        ordered = ordered * 2
    q = statistics.quantiles(ordered, n=100, method="inclusive")
    return {
        "p50": round(q[49], 1),
        "p95": round(q[94], 1),
        "p99": round(q[98], 1),
        "max": round(ordered[-1], 1),
    }


@dataclass
class Summary:
    pairs: int
    players: int
    matches_completed: int
    matches_failed: int
    cross_pod_matches: int
    players_failed: int
    enqueue_to_match_found_ms: dict[str, float | None]
    enqueue_to_battle_result_ms: dict[str, float | None]
    duration_s: float
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


async def play_one(
    http: httpx.AsyncClient,
    auth_url: str,
    run: PlayerRun,
    mode: str,
    timeout: float,
    steam_sim_url: str | None = None,
) -> None:
    client = None
    try:
        login = (
            await login_steam(http, auth_url, steam_sim_url, run.name)
            if steam_sim_url
            else await login_dev(http, auth_url, run.name)
        )
        run.player_id = login.player_id
        client = await GameClient.connect(run.game_url, login.access_token)
        run.pod_id = client.welcome.pod_id
        decks = await client.request(p.GetDecks())
        assert isinstance(decks, p.Decks)
        legal = [d for d in decks.decks if d.legal]
        if not legal:
            raise RuntimeError("no legal deck")
        if not any(d.active for d in legal):
            await client.request(p.SetActiveDeck(deck_id=legal[0].deck_id))
        started = time.perf_counter()
        await client.request(p.Enqueue(mode=mode), timeout=timeout)
        found = await client.next_push(p.MatchFound, timeout)
        run.to_match_ms = (time.perf_counter() - started) * 1000
        run.match_id, run.opponent_id = found.match_id, found.opponent_id
        result = await client.next_push(p.BattleResultMessage, timeout)
        run.to_result_ms = (time.perf_counter() - started) * 1000
        if result.match_id != found.match_id:
            raise RuntimeError(f"result for {result.match_id}, matched in {found.match_id}")
        problems = timeline_problems(result)
        if problems:
            raise RuntimeError("; ".join(problems))
        run.winner_id = result.winner_id
    except ServerError as exc:
        run.error = f"{exc.code}: {exc.message}"
    except TimeoutError:
        run.error = "timed out"
    except Exception as exc:  # the summary reports every failure, whatever it was
        run.error = f"{type(exc).__name__}: {exc}"
    finally:
        if client is not None:
            await client.close()


async def run_pvp(
    auth_url: str,
    game_urls: Sequence[str],
    pairs: int,
    *,
    mode: str = "normal",
    timeout: float = 60.0,
    concurrency: int = 200,
    progress: Callable[[int, int], None] | None = None,
    steam_sim_url: str | None = None,
) -> Summary:
    """Play `pairs` matches; the two halves of the players sit on alternating game servers.
    Players log in through Steam (tickets from the simulator at `steam_sim_url`), or with the
    development login when it is None."""
    tag = uuid.uuid4().hex[:6]
    runs = [PlayerRun(f"fc-{tag}-{i}", game_urls[i % len(game_urls)]) for i in range(pairs * 2)]
    limit = asyncio.Semaphore(concurrency)
    done = 0
    began = time.perf_counter()

    async def one(run: PlayerRun) -> None:
        nonlocal done
        async with limit:
            await play_one(http, auth_url, run, mode, timeout, steam_sim_url)
        done += 1
        if progress:
            progress(done, len(runs))

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(timeout=timeout, limits=limits) as http:
        await asyncio.gather(*(one(run) for run in runs))
    return summarise(runs, pairs, time.perf_counter() - began)


def summarise(runs: list[PlayerRun], pairs: int, duration: float) -> Summary:
    by_match: dict[str, list[PlayerRun]] = {}
    for run in runs:
        if run.match_id:
            by_match.setdefault(run.match_id, []).append(run)
    completed = cross = 0
    for players in by_match.values():
        if (
            len(players) == 2
            and not any(r.error for r in players)
            and players[0].winner_id == players[1].winner_id
        ):
            completed += 1
            cross += players[0].pod_id != players[1].pod_id
    failed_players = [r for r in runs if r.error]
    return Summary(
        pairs=pairs,
        players=len(runs),
        matches_completed=completed,
        matches_failed=pairs - completed,
        cross_pod_matches=cross,
        players_failed=len(failed_players),
        enqueue_to_match_found_ms=percentiles([r.to_match_ms for r in runs if r.to_match_ms]),
        enqueue_to_battle_result_ms=percentiles(
            [r.to_result_ms for r in runs if r.to_result_ms and not r.error]
        ),
        duration_s=round(duration, 2),
        errors=sorted({f"{r.name}: {r.error}" for r in failed_players})[:20],
    )


def print_summary(summary: Summary, out: Any = sys.stdout) -> None:
    m, r = summary.enqueue_to_match_found_ms, summary.enqueue_to_battle_result_ms
    print(
        f"matches completed   {summary.matches_completed}/{summary.pairs}"
        f"  (failed {summary.matches_failed}, cross-pod {summary.cross_pod_matches})",
        file=out,
    )
    print(f"players             {summary.players} (failed {summary.players_failed})", file=out)
    print(f"enqueue->match      p50 {m['p50']} ms  p95 {m['p95']} ms  p99 {m['p99']} ms", file=out)
    print(f"enqueue->result     p50 {r['p50']} ms  p95 {r['p95']} ms  p99 {r['p99']} ms", file=out)
    print(f"duration            {summary.duration_s} s", file=out)
    for error in summary.errors:
        print(f"error               {error}", file=out)
