"""A queued session follows a Dequeued it did not ask for: the console's dequeue goes through
the match servers, whose answer names a request id the session never sent."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from servers.common import protocol as p
from servers.common.errors import ErrorCode
from servers.common.keys import GameMode
from servers.common.lua import Activity, Standing
from servers.game.sessions import Connection, QueueState, Session, Written


class NoPort:
    async def enqueue(self, *args: object) -> None:
        raise AssertionError("not expected")

    async def dequeue(self, *args: object) -> None:
        raise AssertionError("not expected")

    def spawn(self, work: object) -> None:
        raise AssertionError("not expected")

    async def standing(self, session: Session) -> Standing:
        raise AssertionError("not expected")


def dequeued(mode: str = "normal") -> p.MatchResult:
    return p.MatchResult(
        player_id="42",
        game_mode=mode,
        request_id="console-1",
        result=p.ResultDequeued(reason="server"),
    )


def sent(conn: Connection) -> list[p.AnyServerMessage]:
    frames = []
    while not conn.outbox.empty():
        frame = conn.outbox.get_nowait()
        if isinstance(frame, Written):
            frame = frame.data
        assert isinstance(frame, bytes)
        frames.append(p.decode_server(frame))
    return frames


def test_operator_dequeue_settles_a_queued_session_and_tells_the_client() -> None:
    settled: list[Session] = []
    session = Session("42", "alice", NoPort(), settled.append)
    session.conn = conn = Connection()
    conn.open()
    conn.open()
    session.resume_queued(GameMode.NORMAL)
    session.on_match_result(dequeued())
    assert session.state is QueueState.IDLE and session.mode is None
    [message] = sent(conn)
    assert isinstance(message, p.Dequeued) and message.reason == "server"
    assert message.mode == "normal" and message.id is None


def test_unasked_dequeued_is_ignored_unless_queued_in_that_mode() -> None:
    session = Session("42", "alice", NoPort(), lambda _: None)
    session.conn = conn = Connection()
    conn.open()
    conn.open()
    session.on_match_result(dequeued())  # idle: nothing to follow
    assert session.state is QueueState.IDLE and sent(conn) == []
    session.resume_queued(GameMode.NORMAL)
    session.on_match_result(dequeued("ranked"))  # another mode's answer
    assert session.state is QueueState.QUEUED and sent(conn) == []


class RecordingPort:
    """Records the requests a session makes; background work runs on the test's loop."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str | None]] = []
        self.tasks: list[asyncio.Task[None]] = []

    async def enqueue(self, session: Session, request_id: str, mode: GameMode) -> None:
        self.requests.append(("enqueue", session.request_ref))

    async def dequeue(
        self, session: Session, request_id: str, mode: GameMode, reason: p.DequeueReason
    ) -> None:
        self.requests.append(("dequeue", session.request_ref))

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        self.tasks.append(asyncio.ensure_future(work))

    async def standing(self, session: Session) -> Standing:
        return Standing(Activity.IDLE)


def answer(session: Session, result: p.ResultEnQueued | p.ResultError) -> p.MatchResult:
    return p.MatchResult(
        player_id="42", game_mode="normal", request_id=session.request_id, result=result
    )


async def test_a_dequeue_sent_while_the_enqueue_travels_is_answered_under_its_own_id() -> None:
    port = RecordingPort()
    session = Session("42", "alice", port, lambda _: None)
    session.conn = conn = Connection()
    conn.open()
    await session.request_enqueue("normal", "e1")
    await session.request_dequeue("d1")  # before the match server answered the enqueue
    session.on_match_result(answer(session, p.ResultEnQueued(queue_size=1)))
    await asyncio.gather(*port.tasks)
    assert port.requests == [("enqueue", "e1"), ("dequeue", "d1")]  # the client's id travels
    assert [type(m) for m in sent(conn)] == [p.Enqueued]


async def test_a_dequeue_behind_a_refused_enqueue_is_answered_too() -> None:
    port = RecordingPort()
    session = Session("42", "alice", port, lambda _: None)
    session.conn = conn = Connection()
    conn.open()
    await session.request_enqueue("ranked", "e1")
    await session.request_dequeue("d1")
    refusal = p.ResultError(code=ErrorCode.MAINTENANCE, message="maintenance")
    session.on_match_result(answer(session, refusal))
    errors = [m for m in sent(conn) if isinstance(m, p.Error)]
    assert {(e.id, e.code) for e in errors} == {
        ("e1", ErrorCode.MAINTENANCE),
        ("d1", ErrorCode.NOT_QUEUED),
    }
    assert session.state is QueueState.IDLE and port.requests == [("enqueue", "e1")]
