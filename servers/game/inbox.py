"""What reaches this pod from Redis for its players, by channel: queue answers from the match
servers, battle results from the runners, and pod commands; and the exactly-once delivery of a
battle result to a player.

The channel -> handler table is `Inbox.handlers`; a message for a player this pod no longer
holds is dropped (the player's record routes it elsewhere from then on, and a result stays owed
in the database until delivered).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import msgspec

from servers.common import protocol as p
from servers.game.control import PodControl
from servers.game.pod import Pod
from servers.game.sessions import QueueState, Session

log = logging.getLogger("cardgame.game.inbox")

_match_result = msgspec.json.Decoder(p.MatchResult)
_battle_result = msgspec.json.Decoder(p.BattleResult)
_command = msgspec.json.Decoder(p.PodCommand)
DELIVERED_TTL = 3_600
# A battle result that overtook its MatchFound waits this long for it (see on_battle_result).
EARLY_RESULT_WAIT = 2.0

Handler = Callable[[bytes], Awaitable[None]]


class Inbox:
    def __init__(self, pod: Pod) -> None:
        self.pod = pod
        self.control = PodControl(pod)
        self.early: dict[str, p.BattleResult] = {}  # player id -> result ahead of MatchFound
        keys, pod_id = pod.keys, pod.pod_id
        self.handlers: dict[str, Handler] = {
            keys.match_result(pod_id): self.on_match_result,
            keys.battle_result(pod_id): self.on_battle_result,
            keys.pod_control(pod_id): self.on_command,
        }

    def channels(self) -> list[str]:
        return list(self.handlers)

    async def on_message(self, channel: str, data: bytes) -> None:
        await self.handlers[channel](data)

    async def on_match_result(self, data: bytes) -> None:
        result = _match_result.decode(data)
        session = self.pod.registry.get(result.player_id)
        if session is not None:
            session.on_match_result(result)
            if isinstance(result.result, p.ResultMatchFound):
                await self._deliver_early(result.player_id, result.result.match_id)

    async def on_battle_result(self, data: bytes) -> None:
        battle = _battle_result.decode(data)
        session = self.pod.registry.get(battle.player_id)
        if session is None:
            return
        if (
            session.state in (QueueState.ENQUEUING, QueueState.QUEUED, QueueState.DEQUEUING)
            and session.match_id != battle.match_id
        ):
            # The result overtook its MatchFound: they are published by different processes
            # and, on a Redis Cluster, may reach us through different nodes, in any order.
            # Hold it until MatchFound arrives (or briefly: Pub/Sub may have lost it).
            self.early[battle.player_id] = battle
            asyncio.get_running_loop().call_later(
                EARLY_RESULT_WAIT,
                lambda: self.pod.spawn(self._deliver_early(battle.player_id, battle.match_id)),
            )
            return
        await self.deliver(session, battle)

    async def on_command(self, data: bytes) -> None:
        await self.control.handle(_command.decode(data))

    async def _deliver_early(self, player_id: str, match_id: str) -> None:
        battle = self.early.get(player_id)
        if battle is None or battle.match_id != match_id:
            return
        del self.early[player_id]
        session = self.pod.registry.get(player_id)
        if session is not None:
            await self.deliver(session, battle)

    async def deliver(self, session: Session, result: p.BattleResult, again: bool = False) -> None:
        """Send a battle result once per player, across pods and re-runs of the battle.

        `again` re-sends a result marked delivered whose delivery never completed (the pod that
        sent it died before clearing the player's battle marker): the frame may not have
        reached the client, so it comes again, with the same match id (at least once)."""
        if session.conn is None:
            # Nobody to send it to: settle the session; the match marker stays, and a
            # reconnect delivers the result from the database.
            session.on_battle_result(result)
            return
        players = self.pod.players
        first = await players.deliver(result.player_id, result.match_id, DELIVERED_TTL)
        if not first and not again:  # delivered before (a re-run battle): settle, send nothing
            session.settle_battle(result.match_id)
            return
        # The marker goes only once the frame is written to the socket (the kernel delivers it
        # even if this process dies then): a pod that dies before leaves the marker, and the
        # player's reconnect sends the result again (at least once).
        session.on_battle_result(
            result,
            lambda: self.pod.spawn(players.clear_marker(result.player_id, result.match_id)),
        )
        log.info(
            "battle result delivered",
            extra={"player_id": result.player_id, "match_id": result.match_id},
        )
