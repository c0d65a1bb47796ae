"""The Lua scripts in `lua/`, registered once and called through typed async wrappers.

redis-py's `register_script` sends EVALSHA and falls back to loading the script on NOSCRIPT, so a
Redis restart or a failover to a replica that never saw the script is handled. The matchmaking
and player-state scripts start with `lua/prelude.lua` (their shared blocks), put there at load.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis.commands.core import AsyncScript

from servers.common.keys import GameMode, Keys

LUA_DIR = Path(__file__).resolve().parents[2] / "lua"
BATTLE_STREAM_MAXLEN = 100_000


# Scripts that use the prelude's blocks (they change player records or queues).
_WITH_PRELUDE = frozenset(
    {
        "attach",
        "begin_pve",
        "clear_queue",
        "commit_match",
        "dequeue",
        "detach",
        "enqueue",
        "expire",
        "finish",
        "overdue",
        "party_leave",
        "party_sweep",
        "try_match_pop",
        "try_match_pop_exclusive",
    }
)


def load_source(name: str) -> str:
    body = (LUA_DIR / f"{name}.lua").read_text()
    if name in _WITH_PRELUDE:
        return (LUA_DIR / "prelude.lua").read_text() + "\n" + body
    return body


class Activity(enum.Enum):
    """What a player's record says they are doing (lua/prelude.lua)."""

    IDLE = "idle"
    QUEUED = "queued"
    BATTLE = "battle"
    PVE = "pve"


@dataclass(frozen=True)
class Standing:
    """Where a player stands in their record: the activity, and its mode and match."""

    activity: Activity
    mode: str = ""
    match_id: str = ""


class StaleEpoch(Exception):
    """The request's connection no longer holds the player (another one took them over, or
    the connection was let go): nothing was changed."""


class Maintenance(Exception):
    """Matchmaking is in maintenance (the flag is set): nobody is queued; nothing was changed."""


class InParty(Exception):
    """The player is in a live party: only the party duel may queue them; nothing changed."""


class Busy(Exception):
    """The player is already doing something (queued or in a battle): nothing was changed."""

    def __init__(self, standing: Standing) -> None:
        super().__init__(f"the player is {standing.activity.value} {standing.mode}".strip())
        self.standing = standing


@dataclass(frozen=True)
class Enqueued:
    queue_size: int
    pod_id: str  # the pod holding the player: where the answer goes


class Dequeued(enum.Enum):
    REMOVED = "removed"
    NOT_QUEUED = "not_queued"
    PAIRING = "pairing"  # being paired: matched in a moment, or back in the queue
    STALE = "stale"  # the fence did not match: the player's place stays


@dataclass(frozen=True)
class Attached:
    epoch: int
    previous_pod: str  # "" when nobody held the player
    standing: Standing
    notice: bytes  # a `dequeued` message kept for this welcome, or b""


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


def _register(redis: Any, names: Sequence[str]) -> dict[str, AsyncScript]:
    return {name: redis.register_script(load_source(name)) for name in names}


def _standing(activity: bytes | str, mode: bytes | str, match_id: bytes | str = b"") -> Standing:
    return Standing(Activity(_text(activity) or "idle"), _text(mode), _text(match_id))


class QueueScripts:
    """Typed access to the queue scripts for one namespace."""

    def __init__(self, redis: Any, keys: Keys) -> None:
        self._keys = keys
        self._scripts = _register(
            redis,
            (
                "enqueue",
                "dequeue",
                "try_match_pop",
                "commit_match",
                "reap",
                "try_match_pop_exclusive",
                "expire",
                "clear_queue",
            ),
        )

    async def enqueue(
        self, mode: GameMode, player_id: str, score_ms: int, ticket: bytes, epoch: int
    ) -> Enqueued:
        """Queue the player for the connection holding epoch `epoch`; raises StaleEpoch when
        another connection holds the player, Busy when they are doing something already,
        Maintenance while matchmaking is in maintenance, InParty for a party member (unless
        `mode` is the party duel)."""
        k = self._keys
        status, size, pod, activity, act_mode, match_id = await self._scripts["enqueue"](
            [
                k.queue(mode),
                k.tickets(mode),
                k.ticket_pods(mode),
                k.inflight(mode),
                k.player(player_id),
                k.maintenance_flag,
                k.party_members,
                k.parties,
            ],
            [
                player_id,
                score_ms,
                ticket,
                epoch,
                mode.value,
                "" if mode is GameMode.PARTY else "solo",
            ],
        )
        status = _text(status)
        if status == "maintenance":
            raise Maintenance()
        if status == "in_party":
            raise InParty()
        if status == "stale":
            raise StaleEpoch()
        if status == "busy":
            raise Busy(_standing(activity, act_mode, match_id))
        return Enqueued(int(size), _text(pod))

    async def dequeue(
        self,
        mode: GameMode,
        player_id: str,
        *,
        epoch: int | None = None,
        only_pod: str = "",
        notice: bytes = b"",
    ) -> tuple[Dequeued, int]:
        """Take the player out of the mode's queue, if the record still holds `epoch` (None:
        any) and is held by `only_pod` ("": any); `notice` is kept for their next welcome.
        Raises Busy when the player is in a battle already (matched before the dequeue)."""
        k = self._keys
        reply = await self._scripts["dequeue"](
            [
                k.queue(mode),
                k.tickets(mode),
                k.ticket_pods(mode),
                k.player(player_id),
                k.deadlines,
                k.inflight(mode),
            ],
            [player_id, "" if epoch is None else epoch, only_pod, notice],
        )
        status, size = _text(reply[0]), int(reply[1])
        if status == "busy":
            raise Busy(_standing(reply[2], reply[3], reply[4]))
        return Dequeued(status), size

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
        return _popped(flat)

    async def commit(
        self,
        mode: GameMode,
        pairs: Sequence[PairToCommit],
        leftover: Sequence[str],
        dropped: Sequence[str],
        battle_deadline_ms: int,
    ) -> dict[str, tuple[str, str]]:
        """Returns match id -> (pod holding player 1, pod holding player 2) of the pairs
        committed to the battle stream ("" = nobody holds the player); their players' records
        say "battle" until `battle_deadline_ms` at the latest."""
        k = self._keys
        args: list[Any] = [
            len(pairs),
            len(leftover),
            len(dropped),
            BATTLE_STREAM_MAXLEN,
            k.player_prefix,
            battle_deadline_ms,
            mode.value,
        ]
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
                k.deadlines,
            ],
            args,
        )
        return {
            _text(committed[i]): (_text(committed[i + 1]), _text(committed[i + 2]))
            for i in range(0, len(committed), 3)
        }

    async def reap(self, mode: GameMode, now_ms: int, limit: int = 1000) -> int:
        k = self._keys
        return int(
            await self._scripts["reap"](
                [k.queue(mode), k.inflight(mode), k.inflight_scores(mode)], [now_ms, limit]
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
        return _popped(flat)

    async def expire(
        self, mode: GameMode, cutoff_ms: int, notice: bytes, limit: int = 1000
    ) -> list[tuple[str, str]]:
        """Remove tickets enqueued at or before `cutoff_ms`; returns (player id, pod holding
        them, "" for nobody: they get `notice` at their next welcome)."""
        k = self._keys
        flat = await self._scripts["expire"](
            [k.queue(mode), k.tickets(mode), k.ticket_pods(mode), k.deadlines],
            [cutoff_ms, limit, k.player_prefix, mode.value, notice],
        )
        return _player_pods(flat)

    async def clear(self, mode: GameMode, notice: bytes) -> list[tuple[str, str]]:
        """Empty the mode's queue; returns (player id, pod holding them) of those removed."""
        k = self._keys
        flat = await self._scripts["clear_queue"](
            [k.queue(mode), k.tickets(mode), k.ticket_pods(mode), k.deadlines],
            [k.player_prefix, mode.value, notice],
        )
        return _player_pods(flat)


@dataclass(frozen=True)
class Overdue:
    player_id: str
    match_id: str
    pod_id: str  # "" when nobody holds the player


class PlayerScripts:
    """Typed access to the scripts that change a player's record outside the queues."""

    def __init__(self, redis: Any, keys: Keys) -> None:
        self._redis, self._keys = redis, keys
        self._scripts = _register(
            redis,
            (
                "attach",
                "detach",
                "begin_pve",
                "finish",
                "overdue",
                "deliver",
                "clear_marker",
                "mark_battle",
            ),
        )

    async def mark_battle(self, player_ids: Sequence[str], match_id: str, ttl: int) -> None:
        """Mark each player as owed this match's result, unless it reached them before. Each
        player's keys are in their own slot (maybe on another cluster node): one script call
        per player, at once."""
        keys, mark = self._keys, self._scripts["mark_battle"]
        await asyncio.gather(
            *(
                mark([keys.player_match(player), keys.delivered(player, match_id)], [match_id, ttl])
                for player in player_ids
            )
        )

    async def deliver(self, player_id: str, match_id: str, ttl: int) -> bool:
        """Note that the match's result is being sent to the player; True the first time."""
        first = await self._scripts["deliver"]([self._keys.delivered(player_id, match_id)], [ttl])
        return bool(first)

    async def clear_marker(self, player_id: str, match_id: str) -> None:
        """The result went out: the player is owed this match no more (a newer one stays)."""
        await self._scripts["clear_marker"]([self._keys.player_match(player_id)], [match_id])

    async def pods(self, player_ids: Sequence[str]) -> list[str]:
        """The pod holding each player now ("" = nobody): where a message for them goes. The
        one place that routes to a player (their records share a slot: one pipeline)."""
        if not player_ids:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for player_id in player_ids:
                pipe.hget(self._keys.player(player_id), "pod")
            replies = await pipe.execute()
        return [_text(pod) if pod else "" for pod in replies]

    async def standing(self, player_id: str) -> Standing:
        """What the player's record says they are doing now (a read; nothing changes)."""
        activity, mode, match_id = await self._redis.hmget(
            self._keys.player(player_id), ["act", "mode", "match"]
        )
        return _standing(activity or b"idle", mode or b"", match_id or b"")

    async def hold_match(self, match_id: str, player_ids: Sequence[str]) -> bool:
        """Whether the players' records still hold this match (a battle or PvE of theirs not
        ended since); players without a record (the AI of a PvE battle) do not count."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for player_id in player_ids:
                pipe.hmget(self._keys.player(player_id), ["act", "match"])
            replies = await pipe.execute()
        held = [
            _text(act) in ("battle", "pve") and _text(match or b"") == match_id
            for act, match in replies
            if act is not None
        ]
        return bool(held) and all(held)

    async def attach(self, player_id: str, pod_id: str, now_ms: int) -> Attached:
        """This pod's new connection takes the player; returns its epoch and where the player
        stands (a queued player's ticket now points here)."""
        k = self._keys
        keys = [k.player(player_id), k.deadlines]
        for mode in GameMode:
            keys += [k.queue(mode), k.inflight(mode), k.ticket_pods(mode)]
        epoch, previous, activity, mode_name, match_id, notice = await self._scripts["attach"](
            keys, [player_id, pod_id, now_ms, *(m.value for m in GameMode)]
        )
        return Attached(
            int(epoch), _text(previous), _standing(activity, mode_name, match_id), _bytes(notice)
        )

    async def detach(
        self, player_id: str, epoch: int, notices: dict[GameMode, bytes]
    ) -> GameMode | None:
        """Let the player go (the connection holding `epoch` is gone for good): nobody holds
        them, and a queued player (waiting or being paired) is dequeued with the mode's notice
        kept for them. Returns
        the mode they were dequeued from, if any. Nothing changes for a stale epoch."""
        k = self._keys
        keys = [k.player(player_id), k.deadlines]
        args: list[Any] = [player_id, epoch]
        for mode in GameMode:
            keys += [
                k.queue(mode),
                k.tickets(mode),
                k.ticket_pods(mode),
                k.inflight(mode),
                k.inflight_scores(mode),
            ]
            args += [mode.value, notices[mode]]
        _status, mode_name = await self._scripts["detach"](keys, args)
        return GameMode(_text(mode_name)) if mode_name else None

    async def begin_pve(
        self, player_id: str, epoch: int, match_id: str, deadline_ms: int, mode: str
    ) -> None:
        """Record a PvE battle; raises StaleEpoch or Busy (nothing changed)."""
        k = self._keys
        status, activity, act_mode, held_match = await self._scripts["begin_pve"](
            [k.player(player_id), k.deadlines], [player_id, epoch, match_id, deadline_ms, mode]
        )
        status = _text(status)
        if status == "stale":
            raise StaleEpoch()
        if status == "busy":
            raise Busy(_standing(activity, act_mode, held_match))

    async def finish(self, match_id: str, players: Sequence[str]) -> list[str]:
        """The battle ended: its players are idle again (unless they moved on). Returns the pod
        holding each player now ("" = nobody), in order."""
        k = self._keys
        pods = await self._scripts["finish"]([k.deadlines], [k.player_prefix, match_id, *players])
        return [_text(pod) for pod in pods]

    async def overdue(self, now_ms: int, limit: int = 500) -> list[Overdue]:
        """End the battles past their deadline; returns who was freed and where they are."""
        k = self._keys
        flat = await self._scripts["overdue"]([k.deadlines], [k.player_prefix, now_ms, limit])
        return [
            Overdue(_text(flat[i]), _text(flat[i + 1]), _text(flat[i + 2]))
            for i in range(0, len(flat), 3)
        ]


def _popped(flat: list[Any]) -> list[Popped]:
    return [
        Popped(_text(flat[i]), int(float(flat[i + 1])), _bytes(flat[i + 2]), _text(flat[i + 3]))
        for i in range(0, len(flat), 4)
    ]


def _player_pods(flat: list[Any]) -> list[tuple[str, str]]:
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
    dequeued: bool  # the member was waiting in the party queue and was taken out
    pod_id: str  # the pod holding the member ("" = nobody)


class PartyScripts:
    """Typed access to the party scripts; every key is in the `{party}` slot."""

    def __init__(self, redis: Any, keys: Keys) -> None:
        self._keys = keys
        self._scripts = _register(
            redis, ("party_create", "party_join", "party_leave", "party_sweep")
        )

    def _party_keys(self) -> list[str]:
        k = self._keys
        return [k.parties, k.party_members, k.party_expiry]

    def _queue_keys(self) -> list[str]:
        k, mode = self._keys, GameMode.PARTY
        return [k.queue(mode), k.tickets(mode), k.ticket_pods(mode), k.deadlines]

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

    async def leave(self, player_id: str, *, only_unheld: bool = False) -> PartyLeft:
        """Leave the party; `only_unheld`: only if nobody holds the player (a disconnected
        player let go, who may have reconnected meanwhile: then nothing changes)."""
        reply = await self._scripts["party_leave"](
            self._party_keys() + self._queue_keys(),
            [
                player_id,
                self._keys.player_prefix,
                GameMode.PARTY.value,
                "unheld" if only_unheld else "",
            ],
        )
        status = _text(reply[0])
        if status == "queued":
            raise Busy(Standing(Activity.QUEUED, GameMode.PARTY.value))
        if status != "ok":
            return PartyLeft(False, b"", "", "")
        return PartyLeft(True, _bytes(reply[1]), _text(reply[2]), _text(reply[3]))

    async def sweep(self, now_ms: int, limit: int = 500) -> list[PartyExpired]:
        flat = await self._scripts["party_sweep"](
            self._party_keys() + self._queue_keys(),
            [now_ms, limit, self._keys.player_prefix, GameMode.PARTY.value],
        )
        return [
            PartyExpired(_text(flat[i]), _text(flat[i + 1]), bool(flat[i + 2]), _text(flat[i + 3]))
            for i in range(0, len(flat), 4)
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
