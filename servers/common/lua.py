"""The Lua scripts in `lua/`, registered once and called through typed async wrappers.

redis-py's `register_script` sends EVALSHA and falls back to loading the script on NOSCRIPT, so a
Redis restart or a failover to a replica that never saw the script is handled.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis.commands.core import AsyncScript

from servers.common.keys import GameMode, Keys

LUA_DIR = Path(__file__).resolve().parents[2] / "lua"


def load_source(name: str) -> str:
    return (LUA_DIR / f"{name}.lua").read_text()


@dataclass(frozen=True)
class QueueChange:
    changed: bool  # queued (enqueue) or removed (dequeue)
    queue_size: int


@dataclass(frozen=True)
class Popped:
    player_id: str
    score: int
    ticket: bytes  # empty when the ticket was missing (poisoned entry)


class QueueScripts:
    """Typed access to the queue scripts for one namespace."""

    def __init__(self, redis: Any, keys: Keys) -> None:
        self._keys = keys
        self._enqueue: AsyncScript = redis.register_script(load_source("enqueue"))
        self._dequeue: AsyncScript = redis.register_script(load_source("dequeue"))
        self._pop: AsyncScript = redis.register_script(load_source("try_match_pop"))

    def _mode_keys(self, mode: GameMode) -> list[str]:
        return [self._keys.queue(mode), self._keys.tickets(mode)]

    async def enqueue(self, mode: GameMode, player_id: str, score_ms: int,
                      ticket: bytes) -> QueueChange:
        added, size = await self._enqueue(self._mode_keys(mode), [player_id, score_ms, ticket])
        return QueueChange(bool(added), int(size))

    async def dequeue(self, mode: GameMode, player_id: str) -> QueueChange:
        removed, size = await self._dequeue(self._mode_keys(mode), [player_id])
        return QueueChange(bool(removed), int(size))

    async def pop(self, mode: GameMode, limit: int) -> list[Popped]:
        flat = await self._pop(self._mode_keys(mode), [limit])
        return [
            Popped(_text(flat[i]), int(float(flat[i + 1])), _bytes(flat[i + 2]))
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
