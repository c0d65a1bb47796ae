"""Player sessions (one actor per connected player) and the registry player_id -> session.

A session is this pod's cache of the player's record in Redis (lua/prelude.lua), which alone
says what the player is doing: every change goes through a script that checks the record, and
the session follows the answers. A session outlives its WebSocket: a second connection for the
same player takes the session over (a new epoch), and a session whose socket closed stays for
the reconnect grace period (queue place kept), then is forgotten, whatever it was doing: the
relay lets the player's record go (dequeueing a queued player). The session's state machine:

    idle --enqueue--> enqueuing --EnQueued--> queued --dequeue--> dequeuing --Dequeued--> idle
                          \\--Error--> idle         \\--MatchFound--> in_battle --result--> idle

Only one queue request per player is in flight at a time, which keeps a player's enqueue and
dequeue in order even though different match servers may handle them.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec

from servers.common import protocol as p
from servers.common.config import GameSettings
from servers.common.errors import ErrorCode, GameError
from servers.common.keys import GameMode
from servers.common.lua import Activity, Standing
from servers.common.models import BattleSnapshot
from servers.game import metrics

log = logging.getLogger("cardgame.game.sessions")

# WebSocket close codes.
CLOSE_SERVICE_RESTART = 1012  # standard: the server restarts; reconnect (to another server)
CLOSE_UNAUTHORIZED = 4401
CLOSE_REPLACED = 4409
CLOSE_KICKED = 4403
CLOSE_RATE_LIMITED = 4429
CLOSE_SLOW_CONSUMER = 4408  # the client stopped reading while its replies piled up


class QueueState(enum.Enum):
    IDLE = "idle"
    ENQUEUING = "enqueuing"
    QUEUED = "queued"
    DEQUEUING = "dequeuing"
    IN_BATTLE = "in_battle"


@dataclass(frozen=True, slots=True)
class Written:
    """A frame whose sender is told once it was written to the socket (the inbox clears a
    player's owed-result marker only then: a pod that dies before leaves it for the reconnect)."""

    data: bytes
    then: Callable[[], None]


Frame = bytes | Written


class Connection:
    """One WebSocket's outbox, drained by the socket's send loop.

    Two rules hold whatever reaches the session and when:
    * nothing is sent before the welcome: what arrives while the connection is being attached
      (a battle result, a party event) is held and follows the welcome (`open`);
    * the bytes not yet written to the socket are counted: above `max_unsent` the connection is
      not `writable` (and `on_backlog` is called), the socket stops taking the client's
      requests until the backlog drains, and a client that stays there is dropped (game/ws.py).
    """

    def __init__(self, max_unsent: int = GameSettings.max_unsent_bytes) -> None:
        self.outbox: asyncio.Queue[Frame | tuple[int, str]] = asyncio.Queue()
        self.closed = False
        self.session_id: str | None = None  # the login session (token `sid`), for revocation
        self.max_unsent = max_unsent
        self.unsent = 0  # bytes queued or being written
        self.writable = asyncio.Event()  # unsent <= max_unsent
        self.writable.set()
        # Called when unsent goes above max_unsent (game/ws.py starts its backlog watch then:
        # no task per idle connection waits for a backlog that rarely comes).
        self.on_backlog: Callable[[], None] | None = None
        self._held: list[Frame] | None = []  # until open(): frames that wait for the welcome

    def send(self, message: msgspec.Struct, then: Callable[[], None] | None = None) -> None:
        """Queue a frame; `then` runs once it was written to the socket (never if the socket
        closes first)."""
        if self.closed:
            return
        metrics.message_out(message)
        data = p.encode(message)
        self.unsent += len(data)
        if self.unsent > self.max_unsent and self.writable.is_set():
            self.writable.clear()
            if self.on_backlog is not None:
                self.on_backlog()
        item: Frame = data if then is None else Written(data, then)
        if self._held is not None:
            self._held.append(item)
        else:
            self.outbox.put_nowait(item)

    def open(self, first: msgspec.Struct | None = None) -> None:
        """Start delivering: `first` (the welcome), then what was held until now."""
        held, self._held = self._held or [], None
        if first is not None:
            self.send(first)
        for item in held:
            self.outbox.put_nowait(item)

    def sent(self, size: int) -> None:
        """The send loop wrote `size` bytes of the outbox to the socket."""
        self.unsent -= size
        if self.unsent <= self.max_unsent and not self.writable.is_set():
            self.writable.set()

    def close(self, code: int, reason: str) -> None:
        if not self.closed:
            self.closed = True
            self._held = None  # never opened: nothing was owed to this socket yet
            self.outbox.put_nowait((code, reason))


class MatchPort(Protocol):
    """What a session needs from the match servers (game/queue_port.py), and an owner for the
    work it starts in the background (awaited at shutdown)."""

    def spawn(self, work: Coroutine[Any, Any, None]) -> None: ...
    async def standing(self, session: Session) -> Standing: ...

    async def enqueue(self, session: Session, request_id: str, mode: GameMode) -> None: ...
    async def dequeue(
        self, session: Session, request_id: str, mode: GameMode, reason: p.DequeueReason
    ) -> None: ...


@dataclass(eq=False)
class Session:
    player_id: str
    name: str
    port: MatchPort
    on_settled: Callable[[Session], None]
    reply_timeout: float = 5.0
    grace: float = 5.0
    conn: Connection | None = None
    state: QueueState = QueueState.IDLE
    mode: GameMode | None = None
    request_id: str | None = None  # the queue request in flight
    request_ref: str | None = None  # the client's correlation id for it
    dequeue_wanted: p.DequeueReason | None = None  # dequeue as soon as the enqueue settles
    dequeue_ref: str | None = None  # the client's id of that dequeue, for its answer
    match_id: str | None = None
    # Per-connection option (set_options) and the server's compression threshold.
    # The player's battle snapshot as last read (servers/game/lobby.py, `snapshot_of`) and when
    # (monotonic s): refreshed by each battle result, dropped when the player edits decks.
    snapshot: BattleSnapshot | None = None
    snapshot_at: float = 0.0
    timeline_gzip: bool = False
    gzip_threshold: int = 4096
    moved: bool = False  # released to another pod (its party stays)
    # The fencing epoch of the connection holding the player (from the record, per attach).
    epoch: int = 0
    # Attaches of this session's connections still waiting for their epoch, and the newest
    # epoch another pod announced meanwhile (player_moved): settled when the attach returns.
    attaching: int = 0
    moved_epoch: int = 0
    _timer: asyncio.TimerHandle | None = field(default=None, repr=False)
    _grace_timer: asyncio.TimerHandle | None = field(default=None, repr=False)

    # ------------------------------------------------------------ client side
    def send(self, message: msgspec.Struct, then: Callable[[], None] | None = None) -> None:
        if self.conn is not None:
            self.conn.send(message, then)

    def send_error(
        self, code: ErrorCode, message: str | None = None, ref: str | None = None
    ) -> None:
        self.send(p.error_message(code, message, ref))

    async def request_enqueue(self, mode_name: str, ref: str | None) -> None:
        """Start an enqueue; the port raises GameError when the player may not queue."""
        try:
            mode = GameMode(mode_name)
        except ValueError:
            raise GameError(
                ErrorCode.UNKNOWN_MODE,
                f"unknown mode {mode_name!r}; open: " + ", ".join(m.value for m in GameMode),
            ) from None
        self.ensure_idle()
        request_id = self._begin(QueueState.ENQUEUING, mode, ref)
        try:
            await self.port.enqueue(self, request_id, mode)
        except BaseException:
            if self.request_id == request_id:
                self._settle(QueueState.IDLE)
            raise

    def ensure_idle(self, hint: str | None = None) -> None:
        """Refuse early to start something unless this cache says the player is free (the
        scripts that start it check the record itself); `hint` says what to do instead."""
        if self.state is QueueState.IN_BATTLE:
            raise GameError(ErrorCode.IN_BATTLE, hint)
        if self.state is QueueState.QUEUED:
            raise GameError(ErrorCode.ALREADY_QUEUED, hint)
        if self.state is not QueueState.IDLE:
            raise GameError(ErrorCode.REQUEST_IN_PROGRESS, hint)

    async def request_dequeue(self, ref: str | None, reason: p.DequeueReason = "requested") -> None:
        if self.state is QueueState.ENQUEUING:
            self.dequeue_wanted, self.dequeue_ref = reason, ref
            return
        if self.state is QueueState.IN_BATTLE:
            raise GameError(ErrorCode.IN_BATTLE, "already matched; wait for the battle result")
        if self.state is QueueState.DEQUEUING:
            raise GameError(ErrorCode.REQUEST_IN_PROGRESS)
        if self.state is not QueueState.QUEUED or self.mode is None:
            raise GameError(ErrorCode.NOT_QUEUED)
        await self._send_dequeue(self.mode, ref, reason)

    async def _send_dequeue(self, mode: GameMode, ref: str | None, reason: p.DequeueReason) -> None:
        request_id = self._begin(QueueState.DEQUEUING, mode, ref)
        await self.port.dequeue(self, request_id, mode, reason)

    def attached(self, conn: Connection) -> None:
        self.conn = conn
        self._cancel_grace()

    def resume_queued(self, mode: GameMode) -> None:
        """The player is still queued (e.g. reconnected from another pod)."""
        self._settle(QueueState.QUEUED)
        self.mode = mode

    def resume_battle(self, match_id: str) -> None:
        if not match_id:  # a battle we cannot name would never settle: the scripts decide
            self._settle(QueueState.IDLE)
            return
        self._settle(QueueState.IN_BATTLE)
        self.match_id = match_id

    def follow(self, standing: Standing) -> None:
        """Take the record's word for where the player stands (after an attach): any request
        in flight is forgotten; its late answer finds no request to settle."""
        if standing.activity is Activity.QUEUED:
            self.resume_queued(GameMode(standing.mode))
        elif standing.activity in (Activity.BATTLE, Activity.PVE):
            self.resume_battle(standing.match_id)
        else:
            self._settle(QueueState.IDLE)

    async def _resync(self) -> None:
        """Follow the player's record (this cache may be wrong); tell the client if that makes
        them queued. Nothing when a request of the session's own started meanwhile."""
        standing = await self.port.standing(self)
        if self.state is not QueueState.IDLE or standing.activity is Activity.IDLE:
            return
        self.follow(standing)
        if standing.activity is Activity.QUEUED:
            self.send(p.Enqueued(mode=standing.mode))

    def on_battle_failed(self, match_id: str, reason: p.BattleFailReason) -> None:
        """The battle ended without a result (its runner failed, or it overran its deadline)."""
        if self.state is QueueState.IN_BATTLE and self.match_id == match_id:
            self._settle(QueueState.IDLE)
            self.send(p.BattleFailed(match_id=match_id, reason=reason))

    def disconnected(self) -> None:
        """The socket closed: the session waits for a reconnect during the grace period, then
        is forgotten (the relay dequeues a queued player; a battle's result waits for them)."""
        self.conn = None
        self._cancel_grace()
        self._grace_timer = asyncio.get_running_loop().call_later(self.grace, self._grace_over)

    def _grace_over(self) -> None:
        self._grace_timer = None
        if self.conn is None:
            self.on_settled(self)

    def _cancel_grace(self) -> None:
        if self._grace_timer is not None:
            self._grace_timer.cancel()
            self._grace_timer = None

    def moved_to(self, epoch: int) -> None:
        """Another pod's connection took the player with `epoch`: let go if ours is older;
        while our own attach is on its way, decide when its epoch is known (`attached_as`)."""
        if self.attaching:
            self.moved_epoch = max(self.moved_epoch, epoch)
        elif epoch > self.epoch:
            self.release()

    def attached_as(self, epoch: int) -> bool:
        """Our connection's attach returned `epoch`; False when another pod's connection is
        newer and the session was let go."""
        self.epoch = epoch
        if self.moved_epoch > epoch:
            self.release()
            return False
        return True

    def release(self) -> None:
        """The player moved to another pod: forget them here without touching their queue."""
        self.moved = True
        self._cancel_grace()
        self._settle(QueueState.IDLE)
        if self.conn is not None:
            self.conn.send(p.error_message(ErrorCode.SESSION_REPLACED))
            self.conn.close(CLOSE_REPLACED, "session moved to another connection")
            self.conn = None
        self.on_settled(self)

    async def _quiet(self, work: Awaitable[None]) -> None:
        try:
            await work
        except Exception:
            log.exception("automatic dequeue of %s failed", self.player_id)
            self._settle(QueueState.IDLE)

    # ------------------------------------------------------------ match server side
    def on_match_result(self, msg: p.MatchResult) -> None:
        result = msg.result
        if isinstance(result, p.ResultMatchFound):
            if self.state is QueueState.ENQUEUING:  # EnQueued may arrive after MatchFound
                self.send(p.Enqueued(id=self.request_ref, mode=msg.game_mode))
                self._answer_wanted_dequeue(ErrorCode.IN_BATTLE, "matched before the dequeue")
            elif self.state is QueueState.DEQUEUING:  # matched before the dequeue landed
                self.send_error(ErrorCode.IN_BATTLE, "matched before the dequeue", self.request_ref)
            self.resume_battle(result.match_id)
            self.send(
                p.MatchFound(
                    match_id=result.match_id,
                    mode=msg.game_mode,
                    opponent_id=result.opponent_id,
                    opponent_name=result.opponent_name,
                )
            )
            return
        if (
            isinstance(result, p.ResultDequeued)
            and (msg.request_id is None or msg.request_id != self.request_id)
            and self.state in (QueueState.QUEUED, QueueState.DEQUEUING)
            and self.mode is not None
            and self.mode.value == msg.game_mode
        ):
            # Removed by the server (ticket expired, party gone) or by an operator (the
            # console's dequeue), not at this session's request; a match server only says
            # Dequeued when it removed the player. A dequeue of ours in flight is answered too.
            ref = self.request_ref if self.state is QueueState.DEQUEUING else None
            self._settle(QueueState.IDLE)
            self.send(p.Dequeued(id=ref, mode=msg.game_mode, reason=result.reason))
            return
        if msg.request_id is None or msg.request_id != self.request_id:
            if isinstance(result, p.ResultEnQueued) and self.state is QueueState.IDLE:
                # A request that timed out, or was made before a reconnect, landed late: the
                # player may be queued, or dequeued again already. The record says which.
                self.port.spawn(self._resync())
            return  # otherwise a late answer to a request that already settled
        ref = self.request_ref
        if isinstance(result, p.ResultEnQueued):
            self._settle(QueueState.QUEUED)
            self.send(p.Enqueued(id=ref, mode=msg.game_mode))
            if self.dequeue_wanted is not None and self.mode is not None:
                reason, self.dequeue_wanted = self.dequeue_wanted, None
                ref, self.dequeue_ref = self.dequeue_ref, None
                self.port.spawn(self._quiet(self._send_dequeue(self.mode, ref, reason)))
        elif isinstance(result, p.ResultDequeued):
            self._settle(QueueState.IDLE)
            self.send(p.Dequeued(id=ref, mode=msg.game_mode, reason=result.reason))
        elif isinstance(result, p.ResultError):
            self._refused(msg.game_mode, result, ref)

    def _refused(self, mode: str, result: p.ResultError, ref: str | None) -> None:
        """A queue request was refused; follow what the record says where it says it."""
        was = self.state
        if was is QueueState.ENQUEUING:  # the enqueue failed: nothing to dequeue
            self._answer_wanted_dequeue(ErrorCode.NOT_QUEUED, None)
        self._settle(QueueState.IDLE)
        if was is QueueState.DEQUEUING and result.code is ErrorCode.NOT_QUEUED:
            # Not in the queue any more (e.g. removed by the server): report it as dequeued.
            self.send(p.Dequeued(id=ref, mode=mode, reason="server"))
            return
        if result.code in (ErrorCode.ALREADY_QUEUED, ErrorCode.REQUEST_IN_PROGRESS) and (
            result.queued_mode
        ):  # still queued (a dequeue that met the pairing: MatchFound, or dequeue again)
            self.resume_queued(GameMode(result.queued_mode))
        elif result.code is ErrorCode.IN_BATTLE and result.match_id:
            self.resume_battle(result.match_id)
        self.send_error(result.code, result.message, ref)

    def _answer_wanted_dequeue(self, code: ErrorCode, message: str | None) -> None:
        """A dequeue asked for while the enqueue was on its way cannot happen: say why."""
        if self.dequeue_wanted is not None:
            self.send_error(code, message, self.dequeue_ref)
            self.dequeue_wanted = self.dequeue_ref = None

    def settle_battle(self, match_id: str) -> None:
        if self.state is QueueState.IN_BATTLE and self.match_id == match_id:
            self._settle(QueueState.IDLE)

    def on_battle_result(self, msg: p.BattleResult, then: Callable[[], None] | None = None) -> None:
        """Deliver a result (the inbox made sure it is delivered once); `then` runs once the
        frame was written to the socket."""
        if self.state is not QueueState.IDLE and (self.match_id in (None, msg.match_id)):
            self._settle(QueueState.IDLE)
        outcome: p.Outcome = (
            "draw"
            if msg.winner_id is None
            else ("win" if msg.winner_id == self.player_id else "loss")
        )
        if self.snapshot is not None and msg.level is not None and msg.rating is not None:
            self.snapshot = msgspec.structs.replace(
                self.snapshot, level=msg.level, rating=msg.rating
            )
        else:  # the profile moved in a way we were not told: read it again next time
            self.snapshot = None
        timeline, packed = self.pack_timeline(msg.timeline)
        self.send(
            p.BattleResultMessage(
                match_id=msg.match_id,
                mode=msg.game_mode,
                seed=msg.seed,
                winner_id=msg.winner_id,
                outcome=outcome,
                opponent_id=msg.opponent_id,
                turns=msg.turns,
                timeline=timeline,
                timeline_gzip=packed,
            ),
            then,
        )

    def pack_timeline(self, timeline: msgspec.Raw) -> tuple[msgspec.Raw, str | None]:
        """(timeline, None), or (null, gzip+base64 text) when this client asked for
        compression and the timeline is above the threshold."""
        if self.timeline_gzip and len(timeline) > self.gzip_threshold:
            return msgspec.Raw(b"null"), p.gzip_timeline(bytes(timeline))
        return timeline, None

    # ------------------------------------------------------------ state
    def _begin(self, state: QueueState, mode: GameMode, ref: str | None) -> str:
        self._cancel_timer()
        self.state, self.mode, self.request_ref = state, mode, ref
        self.request_id = uuid.uuid4().hex
        self._timer = asyncio.get_running_loop().call_later(
            self.reply_timeout, self._timed_out, self.request_id
        )
        return self.request_id

    def _settle(self, state: QueueState) -> None:
        self._cancel_timer()
        self.state = state
        self.request_id = self.request_ref = None
        self.match_id = None
        if state is QueueState.IDLE:
            self.mode = None
            self.dequeue_wanted = self.dequeue_ref = None

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timed_out(self, request_id: str) -> None:
        if self.request_id != request_id:
            return
        ref, mode, was = self.request_ref, self.mode, self.state
        log.warning("no match server answered %s for %s", was.value, self.player_id)
        self.send_error(ErrorCode.MATCH_SERVER_UNAVAILABLE, None, ref)
        self._answer_wanted_dequeue(ErrorCode.MATCH_SERVER_UNAVAILABLE, None)
        self._settle(QueueState.IDLE)
        if was is QueueState.ENQUEUING and mode is not None:
            # The request may still be handled later: take the player out again, quietly.
            self.port.spawn(self._quiet(self.port.dequeue(self, uuid.uuid4().hex, mode, "server")))


class Registry:
    """player_id -> session for this game server: where a message for a player is routed."""

    def __init__(
        self,
        port: MatchPort,
        reply_timeout: float,
        grace: float,
        on_forget: Callable[[Session], None] | None = None,
        gzip_threshold: int = 4096,
    ) -> None:
        self._sessions: dict[str, Session] = {}
        self._port = port
        self._reply_timeout = reply_timeout
        self._grace = grace
        self._on_forget = on_forget
        self.gzip_threshold = gzip_threshold

    def __len__(self) -> int:
        return len(self._sessions)

    def __iter__(self) -> Iterator[Session]:
        return iter(list(self._sessions.values()))

    def get(self, player_id: str) -> Session | None:
        return self._sessions.get(player_id)

    def attach(self, player_id: str, name: str, conn: Connection) -> tuple[Session, bool]:
        """Bind a new connection to the player's session; an older connection is closed."""
        session = self._sessions.get(player_id)
        resumed = session is not None
        if session is None:
            session = Session(
                player_id,
                name,
                self._port,
                self._forget,
                self._reply_timeout,
                self._grace,
                gzip_threshold=self.gzip_threshold,
            )
            self._sessions[player_id] = session
        elif session.conn is not None:
            old = session.conn
            old.send(p.error_message(ErrorCode.SESSION_REPLACED))
            old.close(CLOSE_REPLACED, "session replaced by a newer connection")
        session.attached(conn)
        return session, resumed

    def detach(self, session: Session, conn: Connection) -> None:
        conn.closed = True
        if session.conn is conn:
            session.disconnected()

    def _forget(self, session: Session) -> None:
        if self._sessions.get(session.player_id) is session:
            del self._sessions[session.player_id]
            if self._on_forget is not None:
                self._on_forget(session)

    def connected(self) -> int:
        return sum(1 for s in self._sessions.values() if s.conn is not None)
