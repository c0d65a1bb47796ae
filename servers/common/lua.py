"""The Lua scripts in `lua/`, registered once and called through typed async wrappers.

redis-py's `register_script` sends EVALSHA and falls back to loading the script on NOSCRIPT, so a
Redis restart or a failover to a replica that never saw the script is handled.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis.commands.core import AsyncScript

from servers.common.keys import GameMode, Keys

LUA_DIR = Path(__file__).resolve().parents[2] / "lua"
BATTLE_STREAM_MAXLEN = 100_000


def load_source(name: str) -> str:
    return (LUA_DIR / f"{name}.lua").read_text()


@dataclass(frozen=True)
class QueueChange:
    changed: bool  # queued (enqueue) or removed (dequeue)
    queue_size: int


class Dequeued(enum.Enum):
    REMOVED = 1
    NOT_QUEUED = 0
    OTHER_POD = 2  # the player reconnected elsewhere: their place stays


@dataclass(frozen=True)
class Popped:
    player_id: str
    score: int
    ticket: bytes  # empty when the ticket was missing (poisoned entry)
    pod_id: str


@dataclass(frozen=True)
class PairToCommit:
    match_id: str
    player1: str
    player2: str
    request: bytes  # BattleRequest JSON


class QueueScripts:
    """Typed access to the queue scripts for one namespace."""

    def __init__(self, redis: Any, keys: Keys) -> None:
        self._keys = keys
        self._scripts: dict[str, AsyncScript] = {
            name: redis.register_script(load_source(name))
            for name in (
                "enqueue",
                "dequeue",
                "try_match_pop",
                "commit_match",
                "reap",
                "repoint",
                "try_match_pop_exclusive",
                "expire",
            )
        }

    async def enqueue(
        self, mode: GameMode, player_id: str, score_ms: int, ticket: bytes, pod_id: str
    ) -> QueueChange:
        k = self._keys
        added, size = await self._scripts["enqueue"](
            [k.queue(mode), k.tickets(mode), k.ticket_pods(mode), k.inflight(mode)],
            [player_id, score_ms, ticket, pod_id],
        )
        return QueueChange(bool(added), int(size))

    async def dequeue(
        self, mode: GameMode, player_id: str, only_pod: str = ""
    ) -> tuple[Dequeued, int]:
        k = self._keys
        status, size = await self._scripts["dequeue"](
            [k.queue(mode), k.tickets(mode), k.ticket_pods(mode)], [player_id, only_pod]
        )
        return Dequeued(int(status)), int(size)

    async def pop(self, mode: GameMode, limit: int, lease_deadline_ms: int) -> list[Popped]:
        k = self._keys
        flat = await self._scripts["try_match_pop"](
            [
                k.queue(mode),
                k.tickets(mode),
                k.ticket_pods(mode),
                k.inflight(mode),
                k.inflight_scores(mode),
            ],
            [limit, lease_deadline_ms],
        )
        return [
            Popped(_text(flat[i]), int(float(flat[i + 1])), _bytes(flat[i + 2]), _text(flat[i + 3]))
            for i in range(0, len(flat), 4)
        ]

    async def commit(
        self,
        mode: GameMode,
        pairs: Sequence[PairToCommit],
        leftover: Sequence[str],
        dropped: Sequence[str],
    ) -> set[str]:
        """Returns the match ids committed to the battle stream."""
        k = self._keys
        args: list[Any] = [len(pairs), len(leftover), len(dropped), BATTLE_STREAM_MAXLEN]
        for pair in pairs:
            args += [pair.match_id, pair.player1, pair.player2, pair.request]
        args += [*leftover, *dropped]
        committed = await self._scripts["commit_match"](
            [
                k.queue(mode),
                k.tickets(mode),
                k.ticket_pods(mode),
                k.inflight(mode),
                k.inflight_scores(mode),
                k.battles(mode),
            ],
            args,
        )
        return {_text(m) for m in committed}

    async def reap(self, mode: GameMode, now_ms: int, limit: int = 1000) -> int:
        k = self._keys
        return int(
            await self._scripts["reap"](
                [k.queue(mode), k.inflight(mode), k.inflight_scores(mode)], [now_ms, limit]
            )
        )

    async def repoint(self, mode: GameMode, player_id: str, pod_id: str) -> bool:
        k = self._keys
        return bool(
            await self._scripts["repoint"](
                [k.queue(mode), k.ticket_pods(mode), k.inflight(mode)], [player_id, pod_id]
            )
        )

    async def pop_exclusive(
        self, mode: GameMode, limit: int, lease_deadline_ms: int, pass_interval_ms: int
    ) -> list[Popped]:
        """Pop the whole queue (up to `limit`) unless another match server is pairing it or
        paired it less than `pass_interval_ms` ago (then nothing)."""
        k = self._keys
        flat = await self._scripts["try_match_pop_exclusive"](
            [
                k.queue(mode),
                k.tickets(mode),
                k.ticket_pods(mode),
                k.inflight(mode),
                k.inflight_scores(mode),
                k.pairing_pass(mode),
            ],
            [limit, lease_deadline_ms, max(1, pass_interval_ms)],
        )
        return [
            Popped(_text(flat[i]), int(float(flat[i + 1])), _bytes(flat[i + 2]), _text(flat[i + 3]))
            for i in range(0, len(flat), 4)
        ]

    async def expire(
        self, mode: GameMode, cutoff_ms: int, limit: int = 1000
    ) -> list[tuple[str, str]]:
        """Remove tickets enqueued at or before `cutoff_ms`; returns (player id, pod id)."""
        k = self._keys
        flat = await self._scripts["expire"](
            [k.queue(mode), k.tickets(mode), k.ticket_pods(mode)], [cutoff_ms, limit]
        )
        return [(_text(flat[i]), _text(flat[i + 1])) for i in range(0, len(flat), 2)]


@dataclass(frozen=True)
class PartyReply:
    status: str  # "ok" or the reason nothing was written (see the scripts' headers)
    party: bytes  # the party JSON ("" when none)


@dataclass(frozen=True)
class PartyLeft:
    left: bool  # False: the player was in no party
    party: bytes  # the party after ("" when deleted)
    other: str  # the remaining member ("" when none)
    other_dequeued_pod: str  # that member's pod when they were taken out of the queue


@dataclass(frozen=True)
class PartyExpired:
    player_id: str
    code: str
    dequeued_pod: str  # the pod to tell when the member was waiting in the party queue


class PartyScripts:
    """Typed access to the party scripts; every key is in the `{party}` slot."""

    def __init__(self, redis: Any, keys: Keys) -> None:
        self._keys = keys
        self._scripts: dict[str, AsyncScript] = {
            name: redis.register_script(load_source(name))
            for name in ("party_create", "party_join", "party_leave", "party_sweep")
        }

    def _party_keys(self) -> list[str]:
        k = self._keys
        return [k.parties, k.party_members, k.party_expiry]

    def _queue_keys(self) -> list[str]:
        k, mode = self._keys, GameMode.PARTY
        return [k.queue(mode), k.tickets(mode), k.ticket_pods(mode)]

    async def create(self, code: str, player_id: str, now_ms: int, expires_ms: int) -> PartyReply:
        status, party = await self._scripts["party_create"](
            self._party_keys(), [code, player_id, now_ms, expires_ms]
        )
        return PartyReply(_text(status), _bytes(party))

    async def join(self, code: str, player_id: str, now_ms: int) -> PartyReply:
        status, party = await self._scripts["party_join"](
            self._party_keys(), [code, player_id, now_ms]
        )
        return PartyReply(_text(status), _bytes(party))

    async def leave(self, player_id: str) -> PartyLeft:
        reply = await self._scripts["party_leave"](
            self._party_keys() + self._queue_keys(), [player_id]
        )
        if _text(reply[0]) != "ok":
            return PartyLeft(False, b"", "", "")
        return PartyLeft(True, _bytes(reply[1]), _text(reply[2]), _text(reply[3]))

    async def sweep(self, now_ms: int, limit: int = 500) -> list[PartyExpired]:
        flat = await self._scripts["party_sweep"](
            self._party_keys() + self._queue_keys(), [now_ms, limit]
        )
        return [
            PartyExpired(_text(flat[i]), _text(flat[i + 1]), _text(flat[i + 2]))
            for i in range(0, len(flat), 3)
        ]


class PublishScript:
    """Many PUBLISH commands as one script call: one round trip and one reply instead of one per
    message, which is what a tick's MatchFound and BattleRequest messages cost otherwise."""

    def __init__(self, redis: Any) -> None:
        self._publish: AsyncScript = redis.register_script(load_source("publish_batch"))

    async def publish_many(self, messages: list[tuple[str, bytes]]) -> int:
        """Publish (channel, message) pairs in order; returns the receivers summed."""
        if not messages:
            return 0
        return int(await self._publish([], [part for pair in messages for part in pair]))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _bytes(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else value


@dataclass(frozen=True)
class LimitDecision:
    allowed: bool
    retry_after: float  # seconds until one more request would be allowed (0 when allowed)
    remaining: int  # requests left in the burst after this one


class RateLimitScript:
    """Typed access to `lua/rate_limit.lua` (GCRA). Keys come from Keys.rate_limit."""

    def __init__(self, redis: Any) -> None:
        self._script: AsyncScript = redis.register_script(load_source("rate_limit"))

    async def hit(self, key: str, per_second: float, burst: int, cost: int = 1) -> LimitDecision:
        if per_second <= 0 or burst < 1:
            raise ValueError("a rate limit needs per_second > 0 and burst >= 1")
        allowed, retry_ms, remaining = await self._script(
            [key], [1_000_000 / per_second, burst, cost]
        )
        return LimitDecision(bool(allowed), int(retry_ms) / 1000, int(remaining))
