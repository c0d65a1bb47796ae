"""The player record's answers in protocol terms, shared by the match and game servers.

The record itself (fields, transitions, fencing) is described in lua/prelude.lua and
docs/architecture.md; the scripts that change it are wrapped in servers/common/lua.py.
"""

from __future__ import annotations

from servers.common import protocol as p
from servers.common.errors import ErrorCode
from servers.common.keys import GameMode, Keys
from servers.common.lua import Activity, Busy, PublishScript


def busy_error(busy: Busy) -> p.ResultError:
    """The answer to a request for a player who is doing something already, saying what, so
    that the session (a cache of the record) can follow."""
    standing = busy.standing
    if standing.activity is Activity.QUEUED:
        return p.ResultError(
            code=ErrorCode.ALREADY_QUEUED,
            message=f"the player is already in the {standing.mode} queue",
            queued_mode=standing.mode,
        )
    return p.ResultError(
        code=ErrorCode.IN_BATTLE,
        message="the player is in a battle",
        match_id=standing.match_id,
    )


def dequeued_notice(mode: GameMode, reason: p.DequeueReason) -> bytes:
    """The `dequeued` message kept in a player's record for their next welcome."""
    return p.encode(p.Dequeued(mode=mode.value, reason=reason))


async def command_pods(
    publisher: PublishScript, keys: Keys, commands: list[tuple[str, p.PodCommand]]
) -> None:
    """Send each command to the control channel of the pod holding its player, in one script
    call; a player nobody holds ("" pod) is skipped: their next welcome says where they stand."""
    await publisher.publish_many(
        [(keys.pod_control(pod), p.encode(command)) for pod, command in commands if pod]
    )
