"""A queued session follows a Dequeued it did not ask for: the console's dequeue goes through
the match servers, whose answer names a request id the session never sent."""

from __future__ import annotations

from servers.common import protocol as p
from servers.common.keys import GameMode
from servers.game.sessions import Connection, QueueState, Session


class NoPort:
    async def enqueue(self, *args: object) -> None:
        raise AssertionError("not expected")

    async def dequeue(self, *args: object) -> None:
        raise AssertionError("not expected")

    def spawn(self, work: object) -> None:
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
