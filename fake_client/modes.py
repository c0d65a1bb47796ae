"""Scripted Party duels and PvE battles, end to end through the real servers."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from fake_client.client import GameClient, login_dev, login_steam, timeline_problems
from servers.common import protocol as p
from servers.common.protocol import ServerError


@dataclass
class ModeSummary:
    mode: str
    battles: int
    completed: int = 0
    failed: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    durations_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        ordered = sorted(self.durations_ms)
        return {
            "mode": self.mode,
            "battles": self.battles,
            "completed": self.completed,
            "failed": self.failed,
            "outcomes": self.outcomes,
            "p50_ms": round(ordered[len(ordered) // 2], 1) if ordered else None,
            "max_ms": round(ordered[-1], 1) if ordered else None,
            "errors": self.errors[:20],
        }


async def connect(
    http: httpx.AsyncClient, auth_url: str, game_url: str, name: str, steam_sim_url: str | None
) -> GameClient:
    login = (
        await login_steam(http, auth_url, steam_sim_url, name)
        if steam_sim_url
        else await login_dev(http, auth_url, name)
    )
    client = await GameClient.connect(game_url, login.access_token)
    decks = await client.request(p.GetDecks())
    assert isinstance(decks, p.Decks)
    legal = [d for d in decks.decks if d.legal]
    if legal and not any(d.active for d in legal):
        await client.request(p.SetActiveDeck(deck_id=legal[0].deck_id))
    return client


def _check(result: p.BattleResultMessage, match_id: str) -> None:
    if result.match_id != match_id:
        raise RuntimeError(f"result for {result.match_id}, matched in {match_id}")
    problems = timeline_problems(result)
    if problems:
        raise RuntimeError("; ".join(problems))


async def party_duel(
    http: httpx.AsyncClient,
    auth_url: str,
    game_urls: Sequence[str],
    timeout: float,
    steam_sim_url: str | None,
) -> list[p.BattleResultMessage]:
    """Host creates a party, guest joins with the code, both queue for the duel."""
    tag = uuid.uuid4().hex[:6]
    host = await connect(http, auth_url, game_urls[0], f"fc-host-{tag}", steam_sim_url)
    guest = await connect(http, auth_url, game_urls[-1], f"fc-guest-{tag}", steam_sim_url)
    try:
        party = await host.request(p.CreateParty())
        assert isinstance(party, p.Party)
        joined = await guest.request(p.JoinParty(code=party.code))
        assert isinstance(joined, p.Party) and len(joined.members) == 2
        await host.request(p.Enqueue(mode="party"), timeout=timeout)
        await guest.request(p.Enqueue(mode="party"), timeout=timeout)
        found = [await c.next_push(p.MatchFound, timeout) for c in (host, guest)]
        if found[0].match_id != found[1].match_id:
            raise RuntimeError("party members were matched with others")
        results = [await c.next_push(p.BattleResultMessage, timeout) for c in (host, guest)]
        for result in results:
            _check(result, found[0].match_id)
        await guest.request(p.LeaveParty())
        await host.request(p.LeaveParty())
        return results
    finally:
        await host.close()
        await guest.close()


async def pve_battle(
    http: httpx.AsyncClient,
    auth_url: str,
    game_url: str,
    difficulty: p.PveDifficulty,
    timeout: float,
    steam_sim_url: str | None,
) -> p.BattleResultMessage:
    client = await connect(
        http, auth_url, game_url, f"fc-pve-{uuid.uuid4().hex[:8]}", steam_sim_url
    )
    try:
        found = await client.request(
            p.StartPve(difficulty=difficulty),
            timeout=timeout,
        )
        assert isinstance(found, p.MatchFound)
        result = await client.next_push(p.BattleResultMessage, timeout)
        _check(result, found.match_id)
        return result
    finally:
        await client.close()


async def run_mode(
    kind: str,
    auth_url: str,
    game_urls: Sequence[str],
    battles: int,
    *,
    difficulty: p.PveDifficulty = "normal",
    timeout: float = 30.0,
    steam_sim_url: str | None = None,
) -> ModeSummary:
    """Play `battles` party duels or PvE battles at once and summarise them."""
    summary = ModeSummary(kind if kind == "party" else f"pve-{difficulty}", battles)

    async def one(i: int) -> None:
        started = time.perf_counter()
        try:
            if kind == "party":
                results = await party_duel(http, auth_url, list(game_urls), timeout, steam_sim_url)
                outcome = results[0].outcome
            else:
                result = await pve_battle(
                    http,
                    auth_url,
                    game_urls[i % len(game_urls)],
                    difficulty,
                    timeout,
                    steam_sim_url,
                )
                outcome = result.outcome
            summary.completed += 1
            summary.outcomes[outcome] = summary.outcomes.get(outcome, 0) + 1
            summary.durations_ms.append((time.perf_counter() - started) * 1000)
        except ServerError as exc:
            summary.failed += 1
            summary.errors.append(f"{exc.code}: {exc.message}")
        except Exception as exc:  # the summary reports every failure, whatever it was
            summary.failed += 1
            summary.errors.append(f"{type(exc).__name__}: {exc}")

    async with httpx.AsyncClient(timeout=timeout) as http:
        await asyncio.gather(*(one(i) for i in range(battles)))
    return summary


def print_mode_summary(summary: ModeSummary, out: Any = None) -> None:
    d = summary.as_dict()
    print(
        f"{d['mode']:<12} completed {d['completed']}/{d['battles']}  outcomes {d['outcomes']}"
        f"  p50 {d['p50_ms']} ms  max {d['max_ms']} ms",
        file=out,
    )
    for error in d["errors"]:
        print(f"error        {error}", file=out)
