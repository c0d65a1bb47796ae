"""Invariants a stack must hold once the load of a chaos run (or the race probe) has stopped.

Checked from outside, from what the servers store and report:

* `double_activity`: two recorded matches of one player whose time windows overlap
  (PostgreSQL `match_history.started_at`..`finished_at`, see `overlapping_activities`);
* `double_queue`: one player in the queue or in-flight set of two modes at once (sampled
  during the run with atomic snapshots, and once more at the end);
* `ghost_tickets`: a player in queue(M) or inflight(M) whose player record (`Keys.player`)
  is missing, or does not say `act=queued` with `mode=M` (sampled too, and at the end);
* `phantom_queued`: a record saying `queued` in M for a player in neither queue(M) nor
  inflight(M);
* `leftover_tickets`: any ticket left once every client is gone and the reconnect grace has
  passed (nobody is left to hold one);
* `registry_not_empty`: a game server whose `/health` still counts sessions or connected
  players after every client disconnected;
* `resources`: a game server whose open file descriptors or RSS did not come back near the
  baseline taken after warm-up (see `resource_findings` for the thresholds).

The pure parts (overlaps, ticket classification, resource thresholds) are separate from the
reads, so they are unit-tested and the reads can be used alone (`check_tickets`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import psutil
import redis.asyncio as aioredis

from servers.common.keys import GameMode, Keys

MODES = tuple(GameMode)

# Resource thresholds (see resource_findings): sockets and files a game server may keep open
# above its warm-up baseline (listeners, Redis and PostgreSQL pools that grew), and RSS growth
# allowed (allocator caches and pools reach a plateau; a leak per player keeps growing).
FD_MARGIN = 20
RSS_FACTOR = 2.0
RSS_MARGIN = 100 * 1024 * 1024

VIOLATION_NAMES = (
    "double_activity",
    "double_queue",
    "ghost_tickets",
    "phantom_queued",
    "leftover_tickets",
    "registry_not_empty",
    "resources",
)


# ---------------------------------------------------------------- pure: overlapping activities
@dataclass(frozen=True)
class Activity:
    """One recorded match of one player, as a time window (epoch seconds)."""

    player_id: str
    match_id: str
    mode: str
    start: float
    end: float


def overlapping_activities(activities: Iterable[Activity]) -> list[tuple[Activity, Activity]]:
    """Pairs of activities of the same player whose windows overlap (touching ends do not).

    Per player, sorted by start: an activity that starts before the latest end seen so far
    overlaps the activity that ends last. A window that ends before it starts (clocks of two
    hosts) is taken as an instant."""
    by_player: dict[str, list[Activity]] = {}
    for activity in activities:
        by_player.setdefault(activity.player_id, []).append(activity)
    found: list[tuple[Activity, Activity]] = []
    for items in by_player.values():
        items.sort(key=lambda a: (a.start, a.end))
        latest: Activity | None = None
        for activity in items:
            if latest is not None and activity.start < max(latest.start, latest.end):
                found.append((latest, activity))
            if latest is None or max(activity.start, activity.end) > max(latest.start, latest.end):
                latest = activity
    return found


# ---------------------------------------------------------------- pure: tickets and records
@dataclass
class TicketView:
    """Who is in which queue and in-flight set, and the player records, read together."""

    queued: dict[str, set[str]] = field(default_factory=dict)  # mode -> player ids
    inflight: dict[str, set[str]] = field(default_factory=dict)  # mode -> player ids
    records: dict[str, dict[str, str]] = field(default_factory=dict)  # player -> fields

    def presence(self) -> dict[str, set[str]]:
        """player id -> the modes whose queue or in-flight set holds them."""
        modes: dict[str, set[str]] = {}
        for source in (self.queued, self.inflight):
            for mode, players in source.items():
                for player in players:
                    modes.setdefault(player, set()).add(mode)
        return modes

    def tickets(self) -> int:
        return sum(len(modes) for modes in self.presence().values())


@dataclass(frozen=True)
class Finding:
    kind: str  # a name of VIOLATION_NAMES
    player_id: str
    detail: str
    mode: str = ""  # the mode concerned, when one is

    @property
    def key(self) -> tuple[str, str, str]:
        """Findings with the same key are one violation (seen in several snapshots)."""
        return (self.kind, self.player_id, self.mode or self.detail)

    def __str__(self) -> str:
        if self.player_id == "-":  # about a server, not a player
            return f"{self.kind}: {self.detail}"
        return f"{self.kind}: player {self.player_id}: {self.detail}"


def double_queued(view: TicketView) -> list[Finding]:
    """Players holding tickets in two modes at once."""
    return [
        Finding("double_queue", player, f"in {', '.join(sorted(modes))}", ",".join(sorted(modes)))
        for player, modes in sorted(view.presence().items())
        if len(modes) > 1
    ]


def ticket_findings(view: TicketView) -> list[Finding]:
    """Ghost tickets (a ticket the player's record does not account for) and phantom queued
    players (a record saying queued with no ticket behind it). A missing `act` is idle."""
    found: list[Finding] = []
    presence = view.presence()
    for player, modes in sorted(presence.items()):
        record = view.records.get(player) or {}
        act = record.get("act", "idle")
        for mode in sorted(modes):
            if not record:
                why = "no player record"
            elif act != "queued":
                why = f"record act={act}"
            elif record.get("mode") != mode:
                why = f"record mode={record.get('mode', '')!r}"
            else:
                continue
            found.append(Finding("ghost_tickets", player, f"ticket in {mode}, {why}", mode))
    for player, record in sorted(view.records.items()):
        if record.get("act") == "queued":
            mode = record.get("mode", "")
            if mode not in presence.get(player, set()):
                found.append(
                    Finding("phantom_queued", player, f"record queued in {mode!r}, no ticket", mode)
                )
    return found


def leftover_findings(view: TicketView) -> list[Finding]:
    """Every ticket still held: once all clients are gone and the grace passed, none may be."""
    return [
        Finding("leftover_tickets", player, f"ticket in {', '.join(sorted(modes))}")
        for player, modes in sorted(view.presence().items())
    ]


# ---------------------------------------------------------------- pure: health and resources
def registry_findings(health: dict[str, dict[str, Any] | None]) -> list[Finding]:
    """Game servers whose registry still holds sessions or connected players (or that did not
    answer /health)."""
    found: list[Finding] = []
    for url, body in sorted(health.items()):
        if body is None:
            found.append(Finding("registry_not_empty", "-", f"{url}: /health did not answer"))
            continue
        sessions, connected = body.get("sessions"), body.get("connected")
        if sessions != 0 or connected != 0:
            found.append(
                Finding(
                    "registry_not_empty",
                    "-",
                    f"{url}: sessions={sessions} connected={connected}",
                )
            )
    return found


@dataclass(frozen=True)
class Usage:
    """Open file descriptors and resident memory of one server process."""

    name: str
    pid: int
    fds: int
    rss: int


def rss_limit(baseline: int) -> int:
    return max(int(baseline * RSS_FACTOR), baseline + RSS_MARGIN)


def resource_findings(baseline: dict[str, Usage], final: dict[str, Usage]) -> list[Finding]:
    """A process whose fds exceed baseline + FD_MARGIN, or whose RSS exceeds
    max(RSS_FACTOR x baseline, baseline + RSS_MARGIN). A process restarted since the baseline
    (another pid) is held to its predecessor's baseline; one not measurable is reported."""
    found: list[Finding] = []
    for name, base in sorted(baseline.items()):
        end = final.get(name)
        if end is None:
            found.append(Finding("resources", "-", f"{name}: not running at the end"))
            continue
        restarted = " (restarted)" if end.pid != base.pid else ""
        if end.fds > base.fds + FD_MARGIN:
            found.append(
                Finding("resources", "-", f"{name}{restarted}: fds {base.fds} -> {end.fds}")
            )
        if end.rss > rss_limit(base.rss):
            found.append(
                Finding(
                    "resources",
                    "-",
                    f"{name}{restarted}: RSS {base.rss >> 20} MiB -> {end.rss >> 20} MiB",
                )
            )
    return found


# ---------------------------------------------------------------- reads
def as_text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def read_view(
    redis: aioredis.Redis, keys: Keys, player_ids: Sequence[str] = ()
) -> TicketView:
    """Every mode's queue and in-flight set and the records of `player_ids`, in one MULTI (all
    of them live in the one `{mm}` slot), so the snapshot is consistent. Records of players
    found in a set but not in `player_ids` are read right after (not in the same snapshot)."""
    async with redis.pipeline(transaction=True) as pipe:
        for mode in MODES:
            pipe.zrange(keys.queue(mode), 0, -1)
            pipe.zrange(keys.inflight(mode), 0, -1)
        for player in player_ids:
            pipe.hgetall(keys.player(player))
        replies = await pipe.execute()
    view = TicketView()
    for i, mode in enumerate(MODES):
        view.queued[mode.value] = {as_text(m) for m in replies[2 * i]}
        view.inflight[mode.value] = {as_text(m) for m in replies[2 * i + 1]}
    for player, record in zip(player_ids, replies[2 * len(MODES) :], strict=True):
        view.records[player] = {as_text(k): as_text(v) for k, v in record.items()}
    others = sorted(set(view.presence()) - set(view.records))
    if others:
        async with redis.pipeline(transaction=False) as pipe:
            for player in others:
                pipe.hgetall(keys.player(player))
            for player, record in zip(others, await pipe.execute(), strict=True):
                view.records[player] = {as_text(k): as_text(v) for k, v in record.items()}
    return view


async def recorded_players(redis: aioredis.Redis, keys: Keys) -> list[str]:
    """Every player with a record in the namespace (SCAN: for a check run now and then, not
    for a hot path)."""
    prefix = keys.player_prefix
    found = [as_text(key)[len(prefix) :] async for key in redis.scan_iter(f"{prefix}*", 1000)]
    return sorted(found)


async def check_tickets(
    redis: aioredis.Redis, keys: Keys, player_ids: Sequence[str] | None = None
) -> list[Finding]:
    """Double queues, ghost tickets and phantom queued players, now: usable on its own against
    a running stack (`cardgame check-tickets`). Without `player_ids` the records checked for
    phantoms are every record in the namespace (the ghosts need only the queued players')."""
    if player_ids is None:
        player_ids = await recorded_players(redis, keys)
    view = await read_view(redis, keys, player_ids)
    return double_queued(view) + ticket_findings(view)


def health_url(game_url: str) -> str:
    return (
        game_url.replace("ws://", "http://").replace("wss://", "https://").removesuffix("/ws")
        + "/health"
    )


async def read_health(game_urls: Sequence[str]) -> dict[str, dict[str, Any] | None]:
    async with httpx.AsyncClient(timeout=2.0) as http:

        async def one(url: str) -> dict[str, Any] | None:
            try:
                response = await http.get(health_url(url))
                body: dict[str, Any] = response.json()
            except (httpx.HTTPError, ValueError):
                return None
            return body

        answers = await asyncio.gather(*(one(url) for url in game_urls))
    return dict(zip(game_urls, answers, strict=True))


async def recorded_activities(database_url: str, player_ids: Sequence[str]) -> list[Activity]:
    """Every recorded match of these players with its window: `started_at` (the battle runner
    took it) to `finished_at` (its recording). Battles are simulated at once, so a window is
    the time the player's battle really ran, not the time since the match was found: the
    check finds activities run at the same time, not every double booking."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT p.player_id, h.match_id, h.mode,"
            " extract(epoch FROM h.started_at)::float8 AS start_s,"
            " extract(epoch FROM h.finished_at)::float8 AS end_s"
            " FROM match_participants p JOIN match_history h USING (match_id)"
            " WHERE p.player_id = ANY($1::bigint[])",
            [int(player) for player in player_ids],
        )
    finally:
        await conn.close()
    return [
        Activity(str(r["player_id"]), str(r["match_id"]), r["mode"], r["start_s"], r["end_s"])
        for r in rows
    ]


def measure(procs: Iterable[tuple[str, int]]) -> dict[str, Usage]:
    """fds and RSS of (name, pid) processes; a process that is gone is left out."""
    usage: dict[str, Usage] = {}
    for name, pid in procs:
        try:
            process = psutil.Process(pid)
            usage[name] = Usage(name, pid, process.num_fds(), process.memory_info().rss)
        except psutil.Error:
            continue
    return usage


# ---------------------------------------------------------------- quiescence and the report
@dataclass
class Quiescence:
    reached: bool
    waited_s: float
    view: TicketView
    health: dict[str, dict[str, Any] | None]


def _quiet(view: TicketView, health: dict[str, dict[str, Any] | None]) -> bool:
    return view.tickets() == 0 and not registry_findings(health)


async def wait_quiescent(
    redis: aioredis.Redis,
    keys: Keys,
    player_ids: Sequence[str],
    game_urls: Sequence[str],
    timeout: float,
) -> Quiescence:
    """Poll until no ticket is left and every game server's registry is empty, or `timeout`
    seconds pass (the last state read is returned either way)."""
    started = time.monotonic()
    while True:
        view = await read_view(redis, keys, player_ids)
        health = await read_health(game_urls)
        waited = time.monotonic() - started
        if _quiet(view, health) or waited >= timeout:
            return Quiescence(_quiet(view, health), round(waited, 2), view, health)
        await asyncio.sleep(0.2)  # polling pace


@dataclass
class InvariantReport:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(VIOLATION_NAMES, 0))
    details: list[str] = field(default_factory=list)

    seen: set[tuple[str, str, str]] = field(default_factory=set)

    def add(self, findings: Iterable[Finding], limit: int = 50) -> None:
        """Count each violation once, however many snapshots showed it."""
        for finding in findings:
            if finding.key in self.seen:
                continue
            self.seen.add(finding.key)
            self.counts[finding.kind] = self.counts.get(finding.kind, 0) + 1
            if len(self.details) < limit:
                self.details.append(str(finding))

    @property
    def total(self) -> int:
        return sum(self.counts.values())


class LiveSampler:
    """Atomic snapshots (queues, in-flight sets and the records of `player_ids`) taken while the
    load runs. Two invariants hold at every instant, since the scripts that change a queue
    change the player's record in the same step: nobody holds tickets in two modes
    (`double_queue`), and every ticket is one the player's record says (`ghost_tickets`). A
    record saying `queued` without a ticket is only checked at the end (`phantom_queued`): a
    server may mark the player before the match server queues them. Each violation is kept
    once (the first snapshot that showed it)."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        player_ids: Sequence[str],
        interval: float = 0.25,
    ) -> None:
        self.redis, self.keys, self.interval = redis, keys, interval
        self.player_ids = list(player_ids)
        self.found: dict[tuple[str, str, str], Finding] = {}
        self.samples = 0
        self.errors = 0

    async def sample(self) -> None:
        try:
            view = await read_view(self.redis, self.keys, self.player_ids)
        except Exception:  # Redis is shared with the servers; a failed sample is skipped
            self.errors += 1
            return
        self.samples += 1
        live = double_queued(view) + [f for f in ticket_findings(view) if f.kind == "ghost_tickets"]
        for finding in live:
            self.found.setdefault(finding.key, finding)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.sample()
            try:
                await asyncio.wait_for(stop.wait(), self.interval)
            except TimeoutError:
                pass
