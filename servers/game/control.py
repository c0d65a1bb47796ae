"""Commands to this game server on its control channel (`pod:{pod}:control`): a player moved
to another pod, an operator's disconnect or drain, a party changed, a battle failed."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable

from servers.common import protocol as p
from servers.common.errors import ErrorCode
from servers.game.parties import decode as decode_party
from servers.game.parties import message as party_message
from servers.game.pod import Pod
from servers.game.sessions import CLOSE_KICKED, Session

log = logging.getLogger("cardgame.game.control")


class PodControl:
    def __init__(self, pod: Pod) -> None:
        self.pod = pod
        # Commands about one player; they do nothing when this pod does not hold the player.
        self.for_player: dict[str, Callable[[Session, p.PodCommand], None]] = {
            "party_changed": _party_changed,
            "battle_failed": _battle_failed,
            "player_moved": self._player_moved,
            "disconnect": _disconnect,
        }

    async def handle(self, command: p.PodCommand) -> None:
        if command.command == "drain":
            log.warning("drain requested by an operator")
            os.kill(os.getpid(), signal.SIGTERM)  # the same graceful path as a deploy
            return
        session = self.pod.registry.get(command.player_id) if command.player_id else None
        if session is not None:
            self.for_player[command.command](session, command)

    def _player_moved(self, session: Session, command: p.PodCommand) -> None:
        if command.to_pod != self.pod.pod_id:
            session.moved_to(command.epoch)


def _party_changed(session: Session, command: p.PodCommand) -> None:
    if command.event == "expired":
        session.send(
            p.Party(
                code=command.party or "", owner_id="", members=[], expires_at_ms=0, event="expired"
            )
        )
    elif command.party:
        session.send(party_message(decode_party(command.party), command.event or "state"))


def _battle_failed(session: Session, command: p.PodCommand) -> None:
    session.on_battle_failed(command.match_id or "", command.reason or "failed")


def _disconnect(session: Session, _command: p.PodCommand) -> None:
    if session.conn is not None:
        session.send_error(ErrorCode.SESSION_REPLACED, "disconnected by an operator")
        session.conn.close(CLOSE_KICKED, "disconnected by an operator")
