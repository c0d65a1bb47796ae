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

`clients` picks the load: `normal` (the players above), `adversarial` (misbehaving players
only, devtools/adversary.py: the same player on two pods, two modes at once, enqueue raced with
dequeue, close and PvE, reconnects within the grace, sockets left unread) or `mixed` (both).
Adversarial players have no ledger: every error and close code is expected of them.

Whatever the load, once it stops and the stack is quiet the invariants of devtools/invariants.py
are checked (double activity, double queue, ghost and phantom tickets, leftover tickets, game
server registries, fds and RSS); each is a named count in `violations`, and any makes the command
exit non-zero too.
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
from websockets.protocol import State

from devtools import invariants as inf
from devtools.adversary import (
    Adversary,
    AdversaryStats,
    ignore_orphaned_replies,
)
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
    battle_failed: str | None = None  # the reason, when its battle ended without a result

    @property
    def resolved(self) -> bool:
        return (
            bool(self.match_ids)
            or self.dequeued is not None
            or self.refused is not None
            or self.battle_failed is not None
        )


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
        elif isinstance(message, p.BattleFailed) and ticket is not None:
            ticket.battle_failed = message.reason
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
    battles_failed: int
    duplicates: int
    redelivered: int
    kills: dict[str, int]
    reconnects: int
    client_errors: dict[str, int]
    protocol_violations: int  # frames that broke docs/protocol.md (each also listed in problems)
    problems: list[str]
    clients: str = "normal"
    adversaries: int = 0
    adversarial: dict[str, Any] = field(default_factory=dict)  # scenarios run, what they were told
    violations: dict[str, int] = field(default_factory=dict)  # invariant name -> count
    violation_details: list[str] = field(default_factory=list)
    quiescent: bool = True  # no ticket and empty registries reached within the timeout
    quiescence_s: float = 0.0  # how long that took
    live_samples: int = 0  # atomic snapshots of queues and records taken during the load
    resources: list[dict[str, Any]] = field(default_factory=list)  # per game server

    @property
    def failed(self) -> bool:
        return bool(self.lost or self.duplicates or self.problems or sum(self.violations.values()))

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


CLIENT_KINDS = ("normal", "adversarial", "mixed")
ADVERSARY_STOP = 5.0  # seconds adversaries get to end their scenario once the load stops


@dataclass
class Load:
    """What ran: the normal players' ledgers, the adversaries' stats, the double-queue sampler
    and the game servers' usage after warm-up."""

    ledgers: list[PlayerLedger]
    adversaries: list[Adversary]
    sampler: inf.LiveSampler
    baseline: dict[str, inf.Usage]

    @property
    def player_ids(self) -> list[str]:
        return [led.login.player_id for led in self.ledgers] + [
            a.login.player_id for a in self.adversaries
        ]


def _game_procs(stack: Stack) -> list[tuple[str, int]]:
    return [
        (proc.name, proc.popen.pid)
        for proc in stack.procs
        if proc.name.startswith("game-") and proc.popen is not None and proc.alive()
    ]


async def _run_load(
    stack: Stack,
    rng: random.Random,
    counts: tuple[int, int],
    timing: tuple[float, float, float],
    kill: tuple[tuple[float, float], Counter[str], tuple[str, ...]],
) -> Load:
    """Warm up, take the baseline, kill servers for `duration` while the clients play, stop
    the clients (normal ones finish their open ticket within `settle`)."""
    (normal, adversarial), (duration, settle, warmup) = counts, timing
    ignore_orphaned_replies()
    interval, kills, kinds = kill
    tag = uuid.uuid4().hex[:6]
    logins = await _login_all(stack, normal + adversarial, tag)
    ledgers = [PlayerLedger(login) for login in logins[:normal]]
    clients = [
        ChaosPlayer(ledger, stack.game_urls, random.Random(rng.random())) for ledger in ledgers
    ]
    grace = stack.settings.game.reconnect_grace
    adversaries = [
        Adversary(login, stack.game_urls, random.Random(rng.random()), grace)
        for login in logins[normal:]
    ]
    redis = connect_redis(stack.settings.redis.url, decode_responses=True)
    sampler = inf.LiveSampler(
        redis, Keys(stack.settings.redis.namespace), [login.player_id for login in logins]
    )
    sampling = asyncio.Event()
    sampler_task = asyncio.create_task(sampler.run(sampling))
    stop_at = time.monotonic() + warmup + duration
    tasks = [asyncio.create_task(c.run()) for c in clients]
    bad = [asyncio.create_task(a.run(stop_at)) for a in adversaries]
    try:
        await asyncio.sleep(warmup)  # load before the baseline: pools and caches filled
        baseline = inf.measure(_game_procs(stack))
        await asyncio.to_thread(_killer, stack, stop_at, rng, interval, kills, kinds)
        for client in clients:
            client.stopping = True
        await _finish(tasks, settle)
        # Adversaries stop at stop_at; one still inside a scenario a little later is cancelled
        # (its sockets close at once: one more abrupt disconnect).
        await _finish(bad, ADVERSARY_STOP)
        # A task cancelled inside a close or a handshake can leave its socket open: drop them.
        for adversary in adversaries:
            adversary.abort_all()
        for client in clients:
            if client.client is not None and client.client.ws.state is not State.CLOSED:
                client.client.ws.transport.abort()
    finally:
        sampling.set()
        await sampler_task
        await redis.aclose()
    return Load(ledgers, adversaries, sampler, baseline)


async def _finish(tasks: list[asyncio.Task[None]], timeout: float) -> None:
    """Wait for the tasks up to `timeout` seconds, then cancel the rest."""
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=timeout)
    for task in pending:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _check_invariants(
    stack: Stack, load: Load, quiesce_timeout: float
) -> tuple[inf.InvariantReport, inf.Quiescence, dict[str, inf.Usage]]:
    """Once the clients are gone: wait (polling, bounded) for no ticket and empty registries,
    then check every invariant on what is left."""
    keys = Keys(stack.settings.redis.namespace)
    players = load.player_ids
    report = inf.InvariantReport()
    redis = connect_redis(stack.settings.redis.url, decode_responses=True)
    try:
        quiet = await inf.wait_quiescent(redis, keys, players, stack.game_urls, quiesce_timeout)
    finally:
        await redis.aclose()
    final = inf.measure(_game_procs(stack))
    activities = await inf.recorded_activities(stack.settings.database.url, players)
    report.add(
        inf.Finding("double_activity", a.player_id, f"matches {a.match_id} and {b.match_id}")
        for a, b in inf.overlapping_activities(activities)
    )
    report.add(load.sampler.found.values())  # seen during the load
    report.add(inf.double_queued(quiet.view))
    report.add(inf.ticket_findings(quiet.view))
    report.add(inf.leftover_findings(quiet.view))
    report.add(inf.registry_findings(quiet.health))
    report.add(inf.resource_findings(load.baseline, final))
    return report, quiet, final


def _resources(base: dict[str, inf.Usage], final: dict[str, inf.Usage]) -> list[dict[str, Any]]:
    rows = []
    for name in sorted(set(base) | set(final)):
        b, f = base.get(name), final.get(name)
        rows.append(
            {
                "name": name,
                "restarted": b is not None and f is not None and b.pid != f.pid,
                "fds_baseline": b.fds if b else None,
                "fds_final": f.fds if f else None,
                "rss_mib_baseline": round(b.rss / 2**20, 1) if b else None,
                "rss_mib_final": round(f.rss / 2**20, 1) if f else None,
            }
        )
    return rows


def run_chaos(
    settings: Settings,
    pods: int = 3,
    duration: float = 60.0,
    players: int = 60,
    kill_interval: tuple[float, float] = (3.0, 8.0),
    settle: float = 25.0,
    seed: int | None = None,
    kinds: tuple[str, ...] = KILLABLE,
    clients: str = "normal",
    adversaries: int | None = None,
    warmup: float = 2.0,
    quiesce_timeout: float | None = None,
) -> ChaosReport:
    """`players` normal players (none with clients=adversarial), and `adversaries` misbehaving
    ones (default: `players` with clients=adversarial, a quarter of them with mixed)."""
    if clients not in CLIENT_KINDS:
        raise ValueError(f"clients must be one of {CLIENT_KINDS}, not {clients!r}")
    normal = 0 if clients == "adversarial" else players
    if adversaries is None:
        adversaries = {"normal": 0, "adversarial": players, "mixed": max(2, players // 4)}[clients]
    elif clients == "normal":
        adversaries = 0
    rng = random.Random(seed)
    settings = settings.replace(redis={"namespace": f"chaos-{uuid.uuid4().hex[:6]}"})
    kills: Counter[str] = Counter()
    game = settings.game
    if quiesce_timeout is None:
        # Dropped players leave after the grace (after the heartbeat TTL too when their pod
        # died); popped players come back after the lease and are then dequeued.
        quiesce_timeout = (
            2 * game.reconnect_grace
            + settings.match.lease_seconds
            + settings.pods.heartbeat_ttl
            + 10.0
        )
    with Stack(settings, pods=pods) as stack:
        started = time.monotonic()
        load = asyncio.run(
            _run_load(
                stack,
                rng,
                (normal, adversaries),
                (duration, settle, warmup),
                (kill_interval, kills, kinds),
            )
        )
        ledgers = load.ledgers
        still_queued, recorded, all_recorded, problems = asyncio.run(_final_checks(stack, ledgers))
        checked, quiet, final = asyncio.run(_check_invariants(stack, load, quiesce_timeout))
        elapsed = time.monotonic() - started

    stats = AdversaryStats()
    for adversary in load.adversaries:
        stats.merge(adversary.stats)
    tickets = [t for ledger in ledgers for t in ledger.tickets]
    lost = [t for t in tickets if t.acked and not t.resolved]
    anomalies = [f"{ledger.login.player_id}: {a}" for ledger in ledgers for a in ledger.anomalies]
    duplicates = len(anomalies)
    problems.extend(anomalies)
    violations = [f"{ledger.login.player_id}: {v}" for ledger in ledgers for v in ledger.violations]
    violations.extend(stats.protocol_violations)
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
        players=normal,
        tickets=len(tickets) + still_queued,
        tickets_acked=sum(t.acked for t in tickets) + still_queued,
        matches_completed=len(matches),
        matches_recorded=all_recorded,
        dequeued_with_notice=sum(t.dequeued is not None for t in tickets),
        refused=sum(t.refused is not None and not t.match_ids for t in tickets),
        still_queued=still_queued,
        lost=len(lost),
        battles_failed=sum(t.battle_failed is not None for t in tickets),
        duplicates=duplicates,
        redelivered=sum(ledger.redelivered for ledger in ledgers),
        kills=dict(kills),
        reconnects=sum(ledger.reconnects for ledger in ledgers),
        client_errors=dict(errors),
        protocol_violations=len(violations),
        problems=problems[:20],
        clients=clients,
        adversaries=adversaries,
        adversarial=stats.as_dict(),
        violations=checked.counts,
        violation_details=checked.details,
        quiescent=quiet.reached,
        quiescence_s=quiet.waited_s,
        live_samples=load.sampler.samples,
        resources=_resources(load.baseline, final),
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
    print(f"battles failed      {report.battles_failed} (told battle_failed: freed, no result)")
    print(f"duplicates          {report.duplicates}")
    print(f"results re-sent     {report.redelivered} (same match id, after a reconnect)")
    print(f"reconnects          {report.reconnects}")
    print(f"protocol violations {report.protocol_violations}")
    if report.adversaries:
        print(f"adversaries         {report.adversaries}: {report.adversarial.get('scenarios')}")
        told = report.adversarial.get("told", {})
        print(f"adversaries told    {told}")
    print(
        f"quiescence          {'reached' if report.quiescent else 'NOT reached'} after "
        f"{report.quiescence_s} s"
    )
    for row in report.resources:
        print(
            f"resources           {row['name']}{' (restarted)' if row['restarted'] else ''}: "
            f"fds {row['fds_baseline']} -> {row['fds_final']}, "
            f"RSS {row['rss_mib_baseline']} -> {row['rss_mib_final']} MiB"
        )
    print(f"live checks         {report.live_samples} snapshots during the load")
    for name, count in report.violations.items():
        print(f"violation {name:<19} {count}")
    for detail in report.violation_details:
        print(f"violation           {detail}")
    for problem in report.problems:
        print(f"problem             {problem}")
