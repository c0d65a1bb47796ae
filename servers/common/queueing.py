"""Enqueue and dequeue answered in protocol terms, wherever the request is handled.

The game server holding a player runs these itself (one script call; the answer goes straight
to the session). A match server runs the same functions for what arrives on the request
streams: an operator's dequeue (epoch 0, from the console) and requests written there by game
servers of an older version during a rolling upgrade. The scripts decide everything (fencing,
one activity per player, maintenance) atomically in Redis; this module only names the answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from servers.common import protocol as p
from servers.common.errors import DESCRIPTIONS, ErrorCode
from servers.common.keys import GameMode
from servers.common.lua import Busy, Dequeued, InParty, Maintenance, QueueScripts, StaleEpoch
from servers.common.players import busy_error

STALE = "another connection holds this player now"


@dataclass(frozen=True)
class Answer:
    """A queue request's result, the pod holding the player (where the answer goes: it may
    differ from the pod that asked when the player reconnected meanwhile) and the queue's size
    after it (None when the request never reached a queue)."""

    pod_id: str
    result: p.ResultEnQueued | p.ResultDequeued | p.ResultError
    queue_size: int | None = None


def _mode(name: str) -> GameMode | p.ResultError:
    try:
        return GameMode(name)
    except ValueError:
        return p.ResultError(code=ErrorCode.UNKNOWN_MODE, message=f"unknown mode {name!r}")


async def enqueue(
    scripts: QueueScripts,
    mode_name: str,
    player_id: str,
    pod_id: str,
    ticket: bytes,
    epoch: int,
    now_ms: int,
) -> Answer:
    """Queue the player (ticket: the encoded BattleSnapshot) for the connection of `epoch`,
    asked by `pod_id`. `now_ms` orders the queue."""
    mode = _mode(mode_name)
    if isinstance(mode, p.ResultError):
        return Answer(pod_id, mode)
    try:
        queued = await scripts.enqueue(mode, player_id, now_ms, ticket, epoch)
    except Maintenance:
        return Answer(
            pod_id,
            p.ResultError(code=ErrorCode.MAINTENANCE, message="matchmaking is in maintenance mode"),
        )
    except StaleEpoch:
        return Answer(pod_id, p.ResultError(code=ErrorCode.SESSION_REPLACED, message=STALE))
    except InParty:
        return Answer(
            pod_id,
            p.ResultError(code=ErrorCode.IN_PARTY, message=DESCRIPTIONS[ErrorCode.IN_PARTY]),
        )
    except Busy as busy:
        return Answer(pod_id, busy_error(busy))
    return Answer(queued.pod_id, p.ResultEnQueued(queue_size=queued.queue_size), queued.queue_size)


async def dequeue(
    scripts: QueueScripts,
    mode_name: str,
    player_id: str,
    pod_id: str,
    epoch: int,
    reason: p.DequeueReason,
) -> Answer:
    """Take the player out of the queue. Only the connection holding the player may (one that
    was replaced leaves the place to the new one); epoch 0 is an operator, who always may."""
    mode = _mode(mode_name)
    if isinstance(mode, p.ResultError):
        return Answer(pod_id, mode)
    try:
        status, size = await scripts.dequeue(mode, player_id, epoch=epoch or None)
    except Busy as busy:  # matched before the dequeue landed: say which battle
        return Answer(pod_id, busy_error(busy))
    if status is Dequeued.REMOVED:
        return Answer(pod_id, p.ResultDequeued(reason=reason), size)
    if status is Dequeued.PAIRING:
        return Answer(
            pod_id,
            p.ResultError(
                code=ErrorCode.REQUEST_IN_PROGRESS,
                message="being paired right now: matched in a moment, or dequeue again",
                queued_mode=mode.value,
            ),
            size,
        )
    if status is Dequeued.STALE:
        return Answer(pod_id, p.ResultError(code=ErrorCode.SESSION_REPLACED, message=STALE), size)
    return Answer(
        pod_id,
        p.ResultError(code=ErrorCode.NOT_QUEUED, message="the player is not in the queue"),
        size,
    )
