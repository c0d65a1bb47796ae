"""A blocking game-server client on `websocket-client` for Locust users (gevent: cooperative).

Messages are encoded and decoded by `servers.common.protocol`, exactly as the asyncio fake client
does. Each user owns one `GameSocket` and reads it from its own greenlet only, so there is no
reader task: `wait` reads frames until the one it wants arrives and skips the rest.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any, TypeVar

import websocket

from servers.common import protocol as p
from servers.common.protocol import ServerError

M = TypeVar("M", bound=p.ServerMessage)


class StepTimeout(Exception):
    def __init__(self, what: str, seconds: float) -> None:
        super().__init__(f"no {what} within {seconds:g} s")

    def __repr__(self) -> str:
        return f"StepTimeout({self})"


class GameSocket:
    """One WebSocket to a game server, authenticated by the token in the URL."""

    def __init__(self, ws: websocket.WebSocket, welcome: p.Welcome) -> None:
        self.ws = ws
        self.welcome = welcome
        self._ids = itertools.count(1)

    @classmethod
    def connect(cls, game_url: str, token: str, timeout: float = 10.0) -> GameSocket:
        ws = websocket.create_connection(
            f"{game_url}?token={token}", timeout=timeout, enable_multithread=False
        )
        try:
            first = p.decode_server(ws.recv())
        except BaseException:
            ws.close()
            raise
        if isinstance(first, p.Error):
            ws.close()
            raise ServerError(first.code, first.message)
        if not isinstance(first, p.Welcome):
            ws.close()
            raise ServerError("PROTOCOL", f"expected welcome, got {type(first).__name__}")
        return cls(ws, first)

    @property
    def connected(self) -> bool:
        return bool(self.ws.connected)

    def send(self, message: p.ClientMessage) -> str:
        """Send a message with a fresh correlation id; returns the id."""
        ref = str(next(self._ids))
        message.id = ref
        self.ws.send(p.encode(message).decode())
        return ref

    def send_raw(self, frame: str | bytes) -> None:
        if isinstance(frame, bytes):
            self.ws.send_binary(frame)
        else:
            self.ws.send(frame)

    def recv(self, timeout: float) -> p.AnyServerMessage:
        self.ws.settimeout(max(timeout, 0.001))
        frame = self.ws.recv()
        if not frame:  # websocket-client returns "" once the server sent a close frame
            raise ConnectionError("the server closed the connection")
        return p.decode_server(frame)

    def wait(
        self,
        kind: type[M],
        timeout: float,
        ref: str | None = None,
        accept: Callable[[M], bool] | None = None,
    ) -> M:
        """Read until a `kind` message arrives (the reply to `ref`, when given).

        An error with our `ref`, or an unsolicited error push, raises ServerError; other
        messages are skipped.
        """
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise StepTimeout(str(kind.__struct_config__.tag or kind.__name__), timeout)
            try:
                message = self.recv(left)
            except websocket.WebSocketTimeoutException:
                continue
            if isinstance(message, p.Error) and (message.id is None or message.id == ref):
                raise ServerError(message.code, message.message)
            if (
                isinstance(message, kind)
                and (ref is None or message.id == ref)
                and (accept is None or accept(message))
            ):
                return message

    def wait_any(self, timeout: float, accept: Callable[[p.AnyServerMessage], bool]) -> Any:
        """Read until `accept` takes a message (errors included); returns it."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise StepTimeout("expected message", timeout)
            try:
                message = self.recv(left)
            except websocket.WebSocketTimeoutException:
                continue
            if accept(message):
                return message

    def close(self) -> None:
        try:
            self.ws.close(timeout=1)
        except Exception:  # closing a broken socket: nothing left to do
            pass
