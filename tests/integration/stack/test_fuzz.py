"""Fuzzing the front door: hypothesis throws malformed, oversized, truncated and type-confused
input at the WebSocket protocol and the auth API over real connections, and schemathesis fuzzes
the auth API from its OpenAPI description. Every input must get a well-formed answer with a
stable code (never INTERNAL, never a 5xx), and the servers must stay up and keep serving.
Example counts are bounded so that the whole module takes a few seconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

import httpx
import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

from devtools.stack import Stack
from servers.common import protocol as p
from servers.common.errors import ErrorCode
from tests.support.fuzz_report import COUNTS

WS_EXAMPLES = 400
HTTP_EXAMPLES = 600
SCHEMATHESIS_EXAMPLES = 60
FUZZ_IP = "192.0.2.77"  # the edge stack trusts 127.0.0.1's X-Forwarded-For
CODES = {code.value for code in ErrorCode}


def fuzz_settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )


# ---------------------------------------------------------------- strategies
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=40)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=20,
)
CLIENT_TAGS = sorted(str(cls.__struct_config__.tag) for cls in p.CLIENT_MESSAGE_TYPES)
FIELDS = [
    "id",
    "mode",
    "name",
    "cards",
    "deck_id",
    "card_id",
    "count",
    "metadata",
    "rating",
    "pod_id",
    "player_id",
    "type",
]


@st.composite
def type_confused(draw: st.DrawFn) -> dict[str, Any]:
    """A real message type with fields of any JSON type (including the forbidden ones)."""
    message: dict[str, Any] = {"type": draw(st.sampled_from(CLIENT_TAGS))}
    for field in draw(st.lists(st.sampled_from(FIELDS), max_size=5, unique=True)):
        if field != "type":
            message[field] = draw(json_values)
    if draw(st.booleans()):
        message["id"] = draw(st.text(max_size=12))
    return message


# Characters free text may not hold (control, bidirectional, invisible formatting), and text
# that mixes them into ordinary characters.
REFUSED_CHARS = ["\x00", "\x07", "\x1b", "\x7f", "\x85", "\u061c", "\u200b", "\u200e"]
REFUSED_CHARS += ["\u2028", "\u202a", "\u202e", "\u2066", "\u2069", "\ufeff", "\ufffb"]
hostile_text = st.one_of(
    st.text(alphabet=st.sampled_from(REFUSED_CHARS) | st.characters(), min_size=1, max_size=30),
    st.sampled_from(["\x1b[2J\x1b[31mred", "evil\u202egnp.exe", "a\x00b", "name\n", "\u2066x"]),
)
# Integers at and beyond the database's column types (SMALLINT, INTEGER, BIGINT) and beyond
# what a 64-bit JSON parser holds.
BOUNDARY_INTS = [2**15, -(2**15) - 1, 2**31, -(2**31) - 1, 2**63, -(2**63) - 1, 2**64, 2**70]
database_ints = st.sampled_from(BOUNDARY_INTS) | st.integers(-(2**80), 2**80)


@st.composite
def hostile(draw: st.DrawFn) -> dict[str, Any]:
    """Inputs that once reached the database or the decoder unchecked: free text with control
    or bidirectional characters, integers outside the database's range, a `type` that is not a
    string."""
    kind = draw(st.sampled_from(["deck_name", "party_code", "ids", "type"]))
    if kind == "type":
        return {"type": draw(json_values.filter(lambda v: not isinstance(v, str))), "id": "h"}
    if kind == "party_code":
        return {"type": "join_party", "code": draw(hostile_text), "id": "h"}
    if kind == "ids":
        return draw(
            st.sampled_from(
                [
                    {"type": "set_active_deck", "deck_id": draw(database_ints)},
                    {
                        "type": "save_deck",
                        "name": "x",
                        "deck_id": draw(database_ints),
                        "cards": [{"card_id": draw(database_ints), "count": 2}],
                    },
                    {
                        "type": "save_deck",
                        "name": "x",
                        "cards": [{"card_id": 1, "count": draw(database_ints)}],
                    },
                ]
            )
        )
    return {
        "type": "save_deck",
        "name": draw(hostile_text),
        "cards": [{"card_id": card, "count": 2} for card in range(1, 11)],
    }


def truncated(frames: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.tuples(frames, st.floats(0, 1)).map(lambda t: t[0][: int(len(t[0]) * t[1])])


valid_frames = st.sampled_from(
    [
        '{"type":"get_decks"}',
        '{"type":"save_deck","name":"x","cards":[{"card_id":1,"count":2}]}',
        '{"type":"set_active_deck","deck_id":1}',
        '{"type":"get_profile","id":"q"}',
    ]
)
ws_frames = st.one_of(
    hostile().map(json.dumps),
    json_values.map(json.dumps),
    type_confused().map(json.dumps),
    truncated(type_confused().map(json.dumps) | valid_frames),
    st.text(max_size=200),
    st.binary(max_size=200),
    st.integers(16 * 1024, 40 * 1024).map(lambda n: '{"type":"ping","pad":"' + "x" * n + '"}'),
    st.sampled_from(
        [
            "",
            "{}",
            "[]",
            "null",
            '{"type":null}',
            '{"type":"ping","id":5}',
            '{"type":"ping"' + "," * 10000 + "}",
            "[" * 5000 + "]" * 5000,
            '{"type":"enqueue","mode":"' + "n" * 3000 + '"}',
            '{"type":"save_deck","name":"a","cards":' + "[1," * 3000 + "1" + "]" * 3000 + "}",
        ]
    ),
)


# ---------------------------------------------------------------- WebSocket
def _exchange(ws: ClientConnection, frame: str | bytes, seq: int) -> list[p.AnyServerMessage]:
    """Send a fuzz frame, then a ping; return what came back before the pong."""
    ws.send(frame)
    ws.send(f'{{"type":"ping","id":"probe-{seq}"}}')
    received = []
    while True:
        message = p.decode_server(ws.recv(timeout=5))
        if isinstance(message, p.Pong) and message.id == f"probe-{seq}":
            return received
        received.append(message)


def test_websocket_protocol_fuzz(edge_stack: Stack) -> None:
    with httpx.Client(timeout=10, headers={"X-Forwarded-For": FUZZ_IP}) as http:
        ticket = http.post(f"{edge_stack.steam_sim_url}/dev/tickets", json={}).json()["ticket"]
        token = http.post(f"{edge_stack.auth_url}/login/steam", json={"ticket": ticket}).json()[
            "access_token"
        ]
    url = f"{edge_stack.game_urls[0]}?token={token}"
    started = time.monotonic()
    stats = {"inputs": 0, "errors": 0, "replies": 0}
    # One connection for every input: any input that cost the connection fails the test.
    with ws_connect(url, max_size=None, additional_headers={"X-Forwarded-For": FUZZ_IP}) as ws:
        assert isinstance(p.decode_server(ws.recv(timeout=5)), p.Welcome)

        @fuzz_settings(WS_EXAMPLES)
        @given(frame=ws_frames)
        def one(frame: str | bytes) -> None:
            stats["inputs"] += 1
            replies = _exchange(ws, frame, stats["inputs"])
            for reply in replies:
                if isinstance(reply, p.Error):
                    stats["errors"] += 1
                    assert reply.code in CODES and reply.code != "INTERNAL", reply
                else:
                    stats["replies"] += 1
                if isinstance(reply, p.DeckSaved):  # what is stored is shown to people
                    assert p.text_problem(reply.deck.name) is None, reply
            # A session-changing message (a type-confused but valid enqueue) is undone.
            if any(isinstance(r, p.Enqueued) for r in replies):
                ws.send('{"type":"dequeue","id":"undo"}')

        one()
    with httpx.Client() as http:
        health = http.get(
            edge_stack.game_urls[0].replace("ws://", "http://").removesuffix("/ws") + "/health"
        )
    assert health.status_code == 200
    assert all(proc.alive() for proc in edge_stack.procs)
    COUNTS["websocket (hypothesis)"] = {
        **stats,
        "servers": "up",
        "seconds": round(time.monotonic() - started, 1),
    }


# ---------------------------------------------------------------- auth API, raw HTTP
AUTH_POSTS = ["/login/steam", "/login/dev", "/token/refresh", "/logout"]
AUTH_KEYS = ["ticket", "name", "steam_id", "refresh_token"]


@st.composite
def auth_bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["confused", "json", "truncated", "bytes", "big"]))
    if kind == "confused":
        body = {
            key: draw(json_values | st.text(alphabet="0123456789abcdefABCDEF", max_size=64))
            for key in draw(st.lists(st.sampled_from(AUTH_KEYS), max_size=3, unique=True))
        }
        return json.dumps(body).encode()
    if kind == "json":
        return json.dumps(draw(json_values)).encode()
    if kind == "truncated":
        text = json.dumps({"ticket": "ab" * 50, "name": draw(st.text(max_size=20))})
        return text[: draw(st.integers(0, len(text)))].encode()
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    return b'{"name": "' + b"a" * draw(st.integers(16 * 1024, 40 * 1024)) + b'"}'


def test_auth_api_fuzz(stack: Stack) -> None:
    started = time.monotonic()
    stats = {"inputs": 0, "status_2xx": 0, "status_4xx": 0}
    with httpx.Client(timeout=10) as http:

        @fuzz_settings(HTTP_EXAMPLES)
        @given(
            path=st.sampled_from(AUTH_POSTS),
            body=auth_bodies(),
            content_type=st.sampled_from(["application/json", "text/plain", ""]),
            bearer=st.none() | st.text(max_size=50),
        )
        def one(path: str, body: bytes, content_type: str, bearer: str | None) -> None:
            stats["inputs"] += 1
            headers = {"content-type": content_type} if content_type else {}
            if bearer and bearer == bearer.strip() and bearer.isprintable() and bearer.isascii():
                headers["Authorization"] = f"Bearer {bearer}"
            for attempt in range(2):
                try:
                    response = http.post(f"{stack.auth_url}{path}", content=body, headers=headers)
                    break
                except (httpx.RemoteProtocolError, httpx.WriteError):
                    # A body above the 16 KiB limit may be answered 413 and the connection
                    # closed before the client finished sending it; and a keep-alive connection
                    # the server closed after such a 413 can be picked from the pool once.
                    if len(body) > 16 * 1024:
                        stats["status_4xx"] += 1
                        return
                    assert attempt == 0, "the server dropped a connection twice in a row"
                    stats["retried"] = stats.get("retried", 0) + 1
            assert response.status_code < 500, (path, body[:200], response.text)
            if response.status_code == 200:
                stats["status_2xx"] += 1
                assert "access_token" in response.json() or "revoked" in response.json()
            else:
                stats["status_4xx"] += 1
                error = response.json()["error"]
                assert error["code"] in CODES and error["message"]

        one()
        assert http.get(f"{stack.auth_url}/health").status_code == 200
    assert all(proc.alive() for proc in stack.procs)
    COUNTS["auth API (hypothesis)"] = {
        **stats,
        "servers": "up",
        "seconds": round(time.monotonic() - started, 1),
    }


# ---------------------------------------------------------------- auth API, from its OpenAPI
def test_auth_api_schemathesis(stack: Stack, tmp_path: Any) -> None:
    started = time.monotonic()
    report = tmp_path / "schemathesis.json"
    checks = (
        "not_a_server_error,status_code_conformance,content_type_conformance,"
        "response_schema_conformance,response_headers_conformance,negative_data_rejection"
    )
    done = subprocess.run(
        [
            os.path.join(os.path.dirname(sys.executable), "schemathesis"),
            "run",
            f"{stack.auth_url}/openapi.json",
            "--checks",
            checks,
            "--max-examples",
            str(SCHEMATHESIS_EXAMPLES),
            "--seed",
            "1",
            "--workers",
            "1",
            "--request-timeout",
            "10",
            "--report",
            "json",
            "--report-json-path",
            str(report),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )  # its cache stays out
    assert done.returncode == 0, done.stdout[-5000:]
    summary = msgspec.json.decode(report.read_bytes())
    generated = summary["test_cases"]["generated"]
    assert generated >= 100
    with httpx.Client() as http:
        assert http.get(f"{stack.auth_url}/health").status_code == 200
    assert all(proc.alive() for proc in stack.procs)
    COUNTS["auth API (schemathesis)"] = {
        "inputs": generated,
        "operations": summary["operations"]["tested"],
        "servers": "up",
        "seconds": round(time.monotonic() - started, 1),
    }
