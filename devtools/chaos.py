"""`cardgame chaos`: play under steady load while servers are SIGKILLed and restarted, then
check that no player was lost or duplicated.

Every enqueue a player makes is a ticket in a ledger. When the run ends (after a settle period
without kills) every acknowledged ticket must be resolved in exactly one way:
* matched: the player received the battle result, and the match is recorded in PostgreSQL;
* dequeued with a notice (a `dequeued` message, directly or after a reconnect's welcome);
* still queued (the queue says so at the end).
Anything else is a lost player. A player matched twice for one ticket (two different
matches) is a duplicate. A result whose delivery could not be confirmed (its pod died while
sending) is sent again after the reconnect with the same match id; those are counted apart.
The command exits non-zero on any lost or duplicate.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import websockets

from devtools.stack import Stack
from fake_client.client import GameClient, Login, ProtocolViolation, login_steam
from servers.common import protocol as p
from servers.common.bus import connect_redis
from servers.common.config import Settings
from servers.common.keys import GameMode, Keys
from servers.common.protocol import ServerError


@dataclass
class Ticket:
    sent_at: float
    acked: bool = False
    match_ids: list[str] = field(default_factory=list)
    dequeued: str | None = None  # the reason, when dequeued with a notice
    refused: str | None = None  # the error code, when the enqueue was refused or timed out

    @property
    def resolved(self) -> bool:
        return bool(self.match_ids) or self.dequeued is not None or self.refused is not None


@dataclass
class PlayerLedger:
    login: Login
    tickets: list[Ticket] = field(default_factory=list)
    results: Counter[str] = field(default_factory=Counter)  # match id -> times received
    reconnects: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    anomalies: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)  # broken protocol promises
    last_welcome: str = ""
    redelivered: int = 0

    @property
    def open_ticket(self) -> Ticket | None:
        last = self.tickets[-1] if self.tickets else None
        return last if last is not None and not last.resolved else None


class ChaosPlayer:
    """A client that keeps playing: on a dropped socket it reconnects to a random game server
    and carries on from what the welcome says."""

    def __init__(self, ledger: PlayerLedger, game_urls: list[str], rng: random.Random) -> None:
        self.ledger, self.game_urls, self.rng = ledger, game_urls, rng
        self.client: GameClient | None = None
        self.stopping = False

    async def connect(self) -> GameClient:
        delay = 0.1
        client: GameClient | None = None
        while client is None:
            url = self.rng.choice(self.game_urls)
            try:
                client = await GameClient.connect(
                    url, self.ledger.login.access_token, open_timeout=3
                )
            except ProtocolViolation as exc:  # a server bug: counted and reported, play goes on
                self.ledger.violations.append(f"{url}: {exc}")
                await asyncio.sleep(delay)
            except (OSError, websockets.WebSocketException, ServerError, TimeoutError) as exc:
                self.ledger.errors[type(exc).__name__] += 1
                await asyncio.sleep(delay)
                delay = min(1.0, delay * 2)
        welcome = client.welcome
        self.ledger.last_welcome = f"{welcome.pod_id}:{welcome.state}:{welcome.match_id}"
        ticket = self.ledger.open_ticket
        if ticket is not None:
            current = welcome.state == "queued" or (
                welcome.state == "in_battle" and welcome.match_id not in self.ledger.results
            )
            if current:
                ticket.acked = True  # the server holds the ticket even if the ack was lost
            elif not ticket.acked:
                # The enqueue never got an answer and the server holds nothing for it (an
                # in_battle for a match already received is a re-sent result coming): forget
                # it; a new one is sent, and a late one only earns an ALREADY_QUEUED.
                self.ledger.tickets.pop()
        return client

    def on_push(self, message: p.AnyServerMessage) -> None:
        ticket = self.ledger.open_ticket
        if isinstance(message, p.BattleResultMessage):
            self.ledger.results[message.match_id] += 1
            if self.ledger.results[message.match_id] > 1:
                # Sent again after a reconnect because its delivery could not be confirmed:
                # the same match (at-least-once delivery), not a second one.
                self.ledger.redelivered += 1
                return
            # A refused or timed-out enqueue may still have been queued by a match server
            # that answered late: its match belongs to that ticket.
            target = ticket or next(
                (t for t in reversed(self.ledger.tickets) if t.refused and not t.match_ids), None
            )
            if target is None:
                self.ledger.anomalies.append(f"result of {message.match_id} for no ticket")
                return
            target.match_ids.append(message.match_id)
            target.acked = True
        elif isinstance(message, p.Dequeued) and ticket is not None:
            ticket.dequeued = message.reason
        elif isinstance(message, p.Enqueued) and ticket is not None:
            ticket.acked = True
        elif isinstance(message, p.MatchFound) and ticket is not None:
            ticket.acked = True

    async def run(self) -> None:
        while not self.stopping or self.ledger.open_ticket is not None:
            self.client = await self.connect()
            try:
                await self.play(self.client)
            except (websockets.ConnectionClosed, ConnectionError, OSError):
                pass
            finally:
                await self.client.close()
            if self.stopping and self.ledger.open_ticket is None:
                return
            self.ledger.reconnects += 1

    async def play(self, client: GameClient) -> None:
        while True:
            if self.ledger.open_ticket is None:
                if self.stopping:
                    return
                self.ledger.tickets.append(Ticket(sent_at=time.monotonic()))
                await client.send_raw(p.encode(p.Enqueue(mode=GameMode.NORMAL.value)))
            get = asyncio.ensure_future(client.pushes.get())
            done, _ = await asyncio.wait(
                {get, client._reader},
                timeout=1.0,  # noqa: SLF001
                return_when=asyncio.FIRST_COMPLETED,
            )
            if get in done:
                message = get.result()
                if isinstance(message, p.Error):
                    self.on_error(message)
                else:
                    self.on_push(message)
                continue
            get.cancel()
            if client._reader.done():  # noqa: SLF001  the socket closed
                raise ConnectionError("socket closed")

    def on_error(self, error: p.Error) -> None:
        self.ledger.errors[error.code] += 1
        ticket = self.ledger.open_ticket
        if ticket is None or ticket.acked:
            return
        if error.code in ("ALREADY_QUEUED", "IN_BATTLE"):
            ticket.acked = True  # the server already holds a ticket for this player
        else:  # refused (maintenance, draining, unavailable): no ticket was acknowledged
            ticket.refused = error.code


@dataclass
class ChaosReport:
    pods: int
    duration_s: float
    players: int
    tickets: int
    tickets_acked: int
    matches_completed: int
    matches_recorded: int
    dequeued_with_notice: int
    refused: int
    still_queued: int
    lost: int
    duplicates: int
    redelivered: int
    kills: dict[str, int]
    reconnects: int
    client_errors: dict[str, int]
    violations: int  # frames that broke docs/protocol.md (each also listed in problems)
    problems: list[str]

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


async def _login_all(stack: Stack, count: int, tag: str) -> list[Login]:
    async with httpx.AsyncClient(timeout=30) as http:
        sem = asyncio.Semaphore(20)

        async def one(i: int) -> Login:
            async with sem:
                assert stack.steam_sim_url
                return await login_steam(
                    http, stack.auth_url, stack.steam_sim_url, f"chaos-{tag}-{i}"
                )

        return list(await asyncio.gather(*(one(i) for i in range(count))))


KILLABLE = ("auth", "game", "match")  # the servers a chaos run kills


def _killer(
    stack: Stack,
    stop: float,
    rng: random.Random,
    interval: tuple[float, float],
    kills: Counter[str],
    kinds: tuple[str, ...] = KILLABLE,
) -> None:
    """SIGKILL a random server of `kinds` now and then, restarting it after a short pause."""
    victims = [proc for proc in stack.procs if proc.name.split("-")[0] in kinds]
    while time.monotonic() < stop:
        time.sleep(rng.uniform(*interval))
        if time.monotonic() >= stop:
            return
        victim = rng.choice(victims)
        victim.kill()
        kills[victim.name.split("-")[0]] += 1
        time.sleep(rng.uniform(0.3, 1.5))
        victim.start()
        victim.wait_healthy(30)


async def _final_checks(
    stack: Stack, ledgers: list[PlayerLedger]
) -> tuple[int, int, int, list[str]]:
    keys = Keys(stack.settings.redis.namespace)
    redis = connect_redis(stack.settings.redis.url)
    problems: list[str] = []
    still_queued = 0
    try:
        for ledger in ledgers:
            ticket = ledger.open_ticket
            if (
                ticket is not None
                and ticket.acked
                and await redis.zscore(keys.queue(GameMode.NORMAL), ledger.login.player_id)
                is not None
            ):
                ticket.dequeued = None
                still_queued += 1
                ledger.tickets.pop()  # resolved as "still queued"
    finally:
        await redis.aclose()
    received = {m for ledger in ledgers for m in ledger.results}
    conn = await asyncpg.connect(stack.settings.database.url)
    try:
        recorded = {
            str(r["match_id"])
            for r in await conn.fetch(
                "SELECT match_id FROM match_history WHERE match_id = ANY($1::uuid[])",
                list(received),
            )
        }
        mine = [int(ledger.login.player_id) for ledger in ledgers]
        all_recorded = await conn.fetchval(
            "SELECT count(DISTINCT match_id) FROM match_participants"
            " WHERE player_id = ANY($1::bigint[])",
            mine,
        )
    finally:
        await conn.close()
    for match_id in sorted(received - recorded):
        problems.append(f"result of match {match_id} delivered but not recorded")
    return still_queued, len(recorded), int(all_recorded), problems


def run_chaos(
    settings: Settings,
    pods: int = 3,
    duration: float = 60.0,
    players: int = 60,
    kill_interval: tuple[float, float] = (3.0, 8.0),
    settle: float = 25.0,
    seed: int | None = None,
    kinds: tuple[str, ...] = KILLABLE,
) -> ChaosReport:
    rng = random.Random(seed)
    settings = settings.replace(redis={"namespace": f"chaos-{uuid.uuid4().hex[:6]}"})
    kills: Counter[str] = Counter()
    with Stack(settings, pods=pods) as stack:
        started = time.monotonic()

        async def main() -> list[PlayerLedger]:
            logins = await _login_all(stack, players, uuid.uuid4().hex[:6])
            ledgers = [PlayerLedger(login) for login in logins]
            clients = [
                ChaosPlayer(ledger, stack.game_urls, random.Random(rng.random()))
                for ledger in ledgers
            ]
            tasks = [asyncio.create_task(c.run()) for c in clients]
            stop_at = time.monotonic() + duration
            await asyncio.to_thread(_killer, stack, stop_at, rng, kill_interval, kills, kinds)
            for client in clients:
                client.stopping = True
            try:
                await asyncio.wait_for(asyncio.gather(*tasks), settle)
            except TimeoutError:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            return ledgers

        ledgers = asyncio.run(main())
        still_queued, recorded, all_recorded, problems = asyncio.run(_final_checks(stack, ledgers))
        elapsed = time.monotonic() - started

    tickets = [t for ledger in ledgers for t in ledger.tickets]
    lost = [t for t in tickets if t.acked and not t.resolved]
    anomalies = [f"{ledger.login.player_id}: {a}" for ledger in ledgers for a in ledger.anomalies]
    duplicates = len(anomalies)
    problems.extend(anomalies)
    violations = [f"{ledger.login.player_id}: {v}" for ledger in ledgers for v in ledger.violations]
    problems.extend(f"protocol violation: {v}" for v in violations)
    seen_by: Counter[str] = Counter(m for ledger in ledgers for m in ledger.results)
    matches = {m for m, players_seen in seen_by.items() if players_seen == 2}
    for ledger in ledgers:
        for t in ledger.tickets:
            if t.acked and not t.resolved:
                problems.append(
                    f"lost: player {ledger.login.player_id}, ticket sent "
                    f"{time.monotonic() - t.sent_at:.1f} s before the end, "
                    f"reconnects {ledger.reconnects}, last welcome "
                    f"{ledger.last_welcome}"
                )
    errors: Counter[str] = Counter()
    for ledger in ledgers:
        errors.update(ledger.errors)
    return ChaosReport(
        pods=pods,
        duration_s=round(elapsed, 1),
        players=players,
        tickets=len(tickets) + still_queued,
        tickets_acked=sum(t.acked for t in tickets) + still_queued,
        matches_completed=len(matches),
        matches_recorded=all_recorded,
        dequeued_with_notice=sum(t.dequeued is not None for t in tickets),
        refused=sum(t.refused is not None and not t.match_ids for t in tickets),
        still_queued=still_queued,
        lost=len(lost),
        duplicates=duplicates,
        redelivered=sum(ledger.redelivered for ledger in ledgers),
        kills=dict(kills),
        reconnects=sum(ledger.reconnects for ledger in ledgers),
        client_errors=dict(errors),
        violations=len(violations),
        problems=problems[:20],
    )


def print_report(report: ChaosReport) -> None:
    print(f"pods {report.pods}, players {report.players}, {report.duration_s} s")
    print(f"kills               {report.kills}")
    print(f"tickets             {report.tickets} (acknowledged {report.tickets_acked})")
    print(f"matches completed   {report.matches_completed} (recorded {report.matches_recorded})")
    print(f"dequeued w/ notice  {report.dequeued_with_notice}")
    print(f"enqueue refused     {report.refused}")
    print(f"still queued        {report.still_queued}")
    print(f"lost players        {report.lost}")
    print(f"duplicates          {report.duplicates}")
    print(f"results re-sent     {report.redelivered} (same match id, after a reconnect)")
    print(f"reconnects          {report.reconnects}")
    print(f"protocol violations {report.violations}")
    for problem in report.problems:
        print(f"problem             {problem}")
