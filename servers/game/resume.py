"""Reconnect and resume: a connection takes the player (a new fencing epoch in the player's
record), the session follows where the record says the player stands, and what happened while
the player was away comes right after the welcome. A session forgotten after its reconnect
grace lets the player go: nobody holds them, a queued player is dequeued with a notice, and
they leave their party."""

from __future__ import annotations

import logging
import time

import msgspec

from servers.common import bus
from servers.common import protocol as p
from servers.common.errors import GameError
from servers.common.keys import GameMode
from servers.common.players import dequeued_notice
from servers.game import metrics
from servers.game.persistence import load_result
from servers.game.pod import Pod
from servers.game.sessions import Connection, QueueState, Session

log = logging.getLogger("cardgame.game.resume")

_notice = msgspec.json.Decoder(p.Dequeued)
# What the welcome says of a session's state.
_WELCOME_STATE: dict[QueueState, p.SessionState] = {
    QueueState.QUEUED: "queued",
    QueueState.DEQUEUING: "queued",
    QueueState.ENQUEUING: "queued",
    QueueState.IN_BATTLE: "in_battle",
}
Missed = p.BattleResult | p.Dequeued | None


class Resume:
    def __init__(self, pod: Pod) -> None:
        self.pod = pod

    async def connect(
        self, player_id: str, name: str, conn: Connection
    ) -> tuple[Session, bool, Missed]:
        """Attach a connection and restore where the player stands, wherever they were.

        Returns the session, whether it was resumed, and what happened while the player was
        away, to send right after the welcome: a finished battle's result, or a dequeue."""
        session, resumed = self.pod.registry.attach(player_id, name, conn)
        try:
            moved, missed = await self._take(session, conn)
        except BaseException:
            self.pod.registry.detach(session, conn)  # the socket ends here: nothing left behind
            raise
        return session, resumed or moved, missed

    async def _take(self, session: Session, conn: Connection) -> tuple[bool, Missed]:
        """The player's record now names this connection; the session follows the record."""
        pod, player_id = self.pod, session.player_id
        session.attaching += 1
        try:
            attached = await pod.players.attach(player_id, pod.pod_id, int(time.time() * 1000))
        finally:
            session.attaching -= 1
        if session.conn is not conn:  # a newer socket of this player took the session meanwhile
            return False, None
        if not session.attached_as(attached.epoch):  # another pod's newer connection won
            return False, None
        moved_from = attached.previous_pod
        moved = bool(moved_from) and moved_from != pod.pod_id
        if moved:  # the old pod closes its socket and forgets the session, queue untouched
            await bus.publish(
                pod.redis,
                pod.keys.pod_control(moved_from),
                p.PodCommand(
                    command="player_moved",
                    player_id=player_id,
                    to_pod=pod.pod_id,
                    epoch=attached.epoch,
                ),
            )
            metrics.published(pod.keys.namespace, pod.keys.pod_control(moved_from))
        session.follow(attached.standing)
        missed: Missed = None
        if session.state is QueueState.IN_BATTLE and session.match_id:
            missed = await load_result(pod.pool, session.match_id, session.player_id)
            if missed is not None:
                # Recorded: the battle is over for this player, even when its runner died
                # before ending it in the record (the stream's re-run would, seconds later).
                # Free the player now, or their next enqueue would hear IN_BATTLE for a match
                # whose result they are about to get.
                await pod.players.finish(missed.match_id, [player_id])
        elif session.state is QueueState.IDLE:
            missed = await self._owed_result(session)
            if missed is None and attached.notice:  # dequeued while nobody held the player
                missed = _notice.decode(attached.notice)
        return moved, missed

    async def _owed_result(self, session: Session) -> p.BattleResult | None:
        """The result of a battle that ended while the player was away, if it is owed (its
        marker is set until delivered); a marker of a battle that ended without a result (it
        failed or overran its deadline) is dropped."""
        pod = self.pod
        marker = pod.keys.player_match(session.player_id)
        match = await pod.redis.get(marker)
        if match is None:
            return None
        result = await load_result(pod.pool, bus.text(match), session.player_id)
        if result is None:
            await pod.redis.delete(marker)
            return None
        session.resume_battle(result.match_id)  # settled by the delivery that follows
        return result

    def welcome(self, session: Session, resumed: bool) -> p.Welcome:
        return p.Welcome(
            protocol=p.PROTOCOL_VERSION,
            player_id=session.player_id,
            name=session.name,
            pod_id=self.pod.pod_id,
            resumed=resumed,
            state=_WELCOME_STATE.get(session.state, "idle"),
            mode=session.mode.value if session.mode else None,
            match_id=session.match_id,
        )

    def forgotten(self, session: Session) -> None:
        """A session ended here. Unless the player moved to another pod, their record lets
        them go: the reconnect grace has passed without them coming back."""
        if not session.moved:
            self.pod.spawn(self._let_go(session.player_id, session.epoch))

    async def _let_go(self, player_id: str, epoch: int) -> None:
        pod = self.pod
        notices = {mode: dequeued_notice(mode, "disconnected") for mode in GameMode}
        try:
            await pod.players.detach(player_id, epoch, notices)
            if await pod.parties.current(player_id) is not None:
                # Refused if the player reconnected meanwhile, here or elsewhere.
                await pod.parties.leave(player_id, only_unheld=True)
                log.info("%s left their party on disconnect", player_id)
        except GameError:
            pass
        except Exception:  # the record's TTL and the match servers' sweeps catch the rest
            log.exception("could not let %s go", player_id)
