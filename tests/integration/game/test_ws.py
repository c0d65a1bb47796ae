"""The game server's WebSocket over a real connection: auth, lobby, queueing and bad input."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from pathlib import Path

import asyncpg
import jwt
import msgspec
import pytest
import redis.asyncio as aioredis
import websockets
from cryptography.hazmat.primitives import serialization

from devtools.stack import Stack
from fake_client.client import GameClient
from servers.auth.players import dev_steam_id
from servers.common import protocol as p
from servers.common.config import Settings
from servers.common.errors import ErrorCode
from servers.common.keys import GameMode, Keys
from servers.common.models import BattleSnapshot
from servers.common.tokens import TokenIssuer, generate_key
from tests.support.helpers import connect, eventually, expect_error, login, unique_name


@pytest.fixture
def stack_keys(settings: Settings) -> Keys:
    return Keys(settings.redis.namespace)


async def queued(redis: aioredis.Redis, keys: Keys, player_id: str) -> bool:
    return await redis.zscore(keys.queue(GameMode.NORMAL), player_id) is not None


# ---------------------------------------------------------------- authentication
async def close_of(url: str) -> tuple[int | None, p.AnyServerMessage]:
    async with websockets.connect(url) as ws:
        message = p.decode_server(await ws.recv())
        with pytest.raises(websockets.ConnectionClosed):
            await ws.recv()
        return ws.close_code, message


async def test_missing_token_is_refused_with_close_code(stack: Stack) -> None:
    code, message = await close_of(stack.game_urls[0])
    assert code == 4401
    assert isinstance(message, p.Error) and message.code == "UNAUTHORIZED"


BAD_TOKENS = [
    "forged",
    "expired",
    "wrong_audience",
    "wrong_issuer",
    "alg_none",
    "hs256_confusion",
    "unknown_kid",
    "no_kid",
    "garbage",
    "not_yet_valid",
]


def bad_token(kind: str, stack: Stack) -> str:
    """A token that must be refused, minted with the stack's real signing key where it matters."""
    auth = stack.settings.auth
    issuer = TokenIssuer(auth)
    ring = issuer.keyring
    key, kid = ring.keys[ring.signing_kid], ring.signing_kid
    now = int(time.time())
    claims = {
        "sub": "76561197960265729",
        "name": "x",
        "iss": auth.jwt_issuer,
        "aud": auth.jwt_audience,
        "iat": now,
        "exp": now + 60,
    }
    if kind == "forged":  # right kid, another key
        return jwt.encode(claims, generate_key(), algorithm="EdDSA", headers={"kid": kid})
    if kind == "expired":
        return jwt.encode(
            {**claims, "iat": now - 120, "exp": now - 60},
            key,
            algorithm="EdDSA",
            headers={"kid": kid},
        )
    if kind == "wrong_audience":
        return jwt.encode(
            {**claims, "aud": "someone-else"}, key, algorithm="EdDSA", headers={"kid": kid}
        )
    if kind == "wrong_issuer":
        return jwt.encode({**claims, "iss": "evil"}, key, algorithm="EdDSA", headers={"kid": kid})
    if kind == "not_yet_valid":
        return jwt.encode(
            {**claims, "nbf": now + 600}, key, algorithm="EdDSA", headers={"kid": kid}
        )
    if kind == "alg_none":
        return jwt.encode(
            claims,
            None,
            algorithm="none",  # type: ignore[arg-type]
            headers={"kid": kid},
        )
    if kind == "hs256_confusion":  # the public key (known to all) used as an HMAC secret
        public = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        header = b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
        body = b64url(json.dumps(claims).encode())
        mac = hmac.new(public, f"{header}.{body}".encode(), hashlib.sha256).digest()
        return f"{header}.{body}.{b64url(mac)}"
    if kind == "unknown_kid":
        return jwt.encode(claims, generate_key(), algorithm="EdDSA", headers={"kid": "k-999"})
    if kind == "no_kid":
        return jwt.encode(claims, key, algorithm="EdDSA")
    return "not.a.token"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


@pytest.mark.parametrize("kind", BAD_TOKENS)
async def test_bad_tokens_are_refused(stack: Stack, kind: str) -> None:
    code, message = await close_of(f"{stack.game_urls[0]}?token={bad_token(kind, stack)}")
    assert code == 4401
    assert isinstance(message, p.Error)
    assert message.code == ("TOKEN_EXPIRED" if kind == "expired" else "UNAUTHORIZED"), message
    # The server is fine for everyone else.
    client = await connect(stack)
    assert isinstance(await client.request(p.Ping()), p.Pong)
    await client.close()


async def test_a_token_the_stack_signs_is_accepted_by_every_game_server(stack: Stack) -> None:
    token, _ = TokenIssuer(stack.settings.auth).issue(str(dev_steam_id(unique_name())), "kid-ok")
    for url in stack.game_urls:
        client = await GameClient.connect(url, token)
        assert client.welcome.name == "kid-ok"
        await client.close()


# ---------------------------------------------------------------- lobby
async def test_welcome_and_lobby(stack: Stack) -> None:
    client = await connect(stack, pod=1)
    try:
        assert client.welcome.pod_id == "pod-2" and client.welcome.protocol == 1
        assert isinstance(await client.request(p.Ping()), p.Pong)
        profile = await client.request(p.GetProfile())
        assert isinstance(profile, p.Profile) and profile.rating == 1500
        collection = await client.request(p.GetCollection())
        assert isinstance(collection, p.Collection) and len(collection.cards) >= 10
        decks = await client.request(p.GetDecks())
        assert isinstance(decks, p.Decks)
        [starter] = decks.decks
        assert starter.active and starter.legal

        # A new deck: the 20 cheapest copies reversed is still legal.
        cards = [p.DeckCard(card_id=c.card_id, count=2) for c in collection.cards[-10:]]
        saved = await client.request(p.SaveDeck(name="Late game", cards=cards))
        assert isinstance(saved, p.DeckSaved) and saved.deck.legal and not saved.deck.active
        switched = await client.request(p.SetActiveDeck(deck_id=saved.deck.deck_id))
        assert isinstance(switched, p.ActiveDeckSet)
        decks = await client.request(p.GetDecks())
        assert [d.deck_id for d in decks.decks if d.active] == [saved.deck.deck_id]  # type: ignore[union-attr]
    finally:
        await client.close()


async def test_deck_rules_are_enforced(stack: Stack, pool: asyncpg.Pool) -> None:
    client = await connect(stack)
    try:
        before = await pool.fetchval("SELECT count(*) FROM player_decks")
        too_small = [p.DeckCard(card_id=1, count=2)]
        with expect_error(ErrorCode.INVALID_DECK) as small:
            await client.request(p.SaveDeck(name="tiny", cards=too_small))
        assert "exactly 20" in small.value.message
        not_owned = [p.DeckCard(card_id=40, count=2)] + [
            p.DeckCard(card_id=i, count=2) for i in range(1, 10)
        ]
        with expect_error(ErrorCode.INVALID_DECK):
            await client.request(p.SaveDeck(name="stolen", cards=not_owned))
        with expect_error(ErrorCode.DECK_NOT_FOUND):
            await client.request(p.SetActiveDeck(deck_id=999_999_999))
        assert await pool.fetchval("SELECT count(*) FROM player_decks") == before
        assert isinstance(await client.request(p.Ping()), p.Pong)
    finally:
        await client.close()


# ---------------------------------------------------------------- bad frames
@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{oops", "MALFORMED_JSON"),
        ("[1,2,3]", "INVALID_MESSAGE"),
        ('"hello"', "INVALID_MESSAGE"),
        ('{"id": "9"}', "UNKNOWN_MESSAGE"),
        ('{"type": "launch_missiles", "id": "9"}', "UNKNOWN_MESSAGE"),
        ('{"type": "set_active_deck", "deck_id": "one", "id": "9"}', "INVALID_MESSAGE"),
        ('{"type": "save_deck", "id": "9"}', "INVALID_MESSAGE"),
        ('{"type": "enqueue", "mode": "chess", "id": "9"}', "UNKNOWN_MODE"),
        ("x" * 20000, "MESSAGE_TOO_LARGE"),
        (b"\xff\xfe\x00", "MALFORMED_JSON"),
        (b"", "MALFORMED_JSON"),  # an empty binary frame (found by the fuzzer)
        ("[" * 5000 + "]" * 5000, "MALFORMED_JSON"),  # nested too deeply (found by the fuzzer)
    ],
)
async def test_bad_frames_get_errors_and_the_socket_stays(
    stack: Stack, frame: str | bytes, code: str
) -> None:
    client = await connect(stack)
    try:
        await client.send_raw(frame)
        error = await asyncio.wait_for(client.pushes.get(), 5)
        assert isinstance(error, p.Error), error
        assert error.code == code
        if code in ("UNKNOWN_MESSAGE", "UNKNOWN_MODE") and '"id"' in str(frame):
            assert error.id == "9"  # the correlation id is echoed even on errors
        assert isinstance(await client.request(p.Ping()), p.Pong)
    finally:
        await client.close()


HOSTILE_FRAMES = {
    # PostgreSQL refuses NUL in TEXT: this used to fail in the database, as INTERNAL.
    "nul_in_deck_name": (
        '{"type":"save_deck","name":"a\\u0000b","cards":STARTER,"id":"9"}',
        "INVALID_MESSAGE",
    ),
    # BIGINT holds up to 2**63 - 1: this used to overflow in asyncpg, as INTERNAL.
    "deck_id_beyond_int64": (
        '{"type":"set_active_deck","deck_id":9223372036854775808,"id":"9"}',
        "INVALID_MESSAGE",
    ),
    # An unhashable type used to fail the decoder itself, as INTERNAL.
    "type_not_a_string": ('{"type":["ping"],"id":"9"}', "UNKNOWN_MESSAGE"),
    "right_to_left_override_in_deck_name": (
        '{"type":"save_deck","name":"evil\\u202egnp.exe","cards":[],"id":"9"}',
        "INVALID_MESSAGE",
    ),
    "ansi_escape_in_deck_name": (
        '{"type":"save_deck","name":"\\u001b[2J\\u001b[31mred","cards":[],"id":"9"}',
        "INVALID_MESSAGE",
    ),
    "control_character_in_party_code": (
        '{"type":"join_party","code":"ABC\\u0007DE","id":"9"}',
        "INVALID_MESSAGE",
    ),
    "card_id_beyond_int32": (
        '{"type":"save_deck","name":"x","cards":[{"card_id":2147483648,"count":2}],"id":"9"}',
        "INVALID_MESSAGE",
    ),
}


def _game_log(stack: Stack, pod: int) -> Path:
    port = int(stack.game_urls[pod].rsplit(":", 1)[1].split("/")[0])
    return next(proc.log_path for proc in stack.procs if proc.port == port)


@pytest.mark.parametrize("kind", sorted(HOSTILE_FRAMES))
async def test_hostile_input_gets_a_stable_code_and_one_info_line(
    stack: Stack, pool: asyncpg.Pool, kind: str
) -> None:
    frame, code = HOSTILE_FRAMES[kind]
    log_path = _game_log(stack, 0)
    start = log_path.stat().st_size
    client = await connect(stack, pod=0)
    player = client.welcome.player_id
    try:
        # A legal deck, so that only the name is wrong (the database used to be the first to
        # notice a NUL).
        starter = await client.request(p.GetDecks())
        assert isinstance(starter, p.Decks)
        frame = frame.replace("STARTER", msgspec.json.encode(starter.decks[0].cards).decode())
        await client.send_raw(frame)
        error = await asyncio.wait_for(client.pushes.get(), 5)
        assert isinstance(error, p.Error), error
        assert (error.code, error.id) == (code, "9"), error
        assert "\x00" not in error.message and "\u202e" not in error.message
        assert "\x1b" not in error.message
        # The connection is still usable, and so is the player's data.
        assert isinstance(await client.request(p.Ping()), p.Pong)
        decks = await client.request(p.GetDecks())
        assert isinstance(decks, p.Decks) and [d.name for d in decks.decks] == ["Starter deck"]
    finally:
        await client.close()
    # The line is written before the error is sent, so it is in the log by now.
    with log_path.open("rb") as log_file:
        log_file.seek(start)
        lines = log_file.read().decode(errors="replace").splitlines()
    mine = [line for line in lines if player in line]
    refused = [line for line in mine if "refused" in line]
    assert len(refused) == 1 and code in refused[0] and "INFO" in refused[0], mine
    assert not [line for line in mine if "ERROR" in line or "Traceback" in line], mine
    assert len(refused[0]) < 500  # was 2.3 kB of traceback per frame
    assert (
        await pool.fetchval("SELECT count(*) FROM player_decks WHERE player_id = $1", int(player))
        == 1
    )


async def test_oversized_frame_beyond_transport_limit_closes_1009(stack: Stack) -> None:
    who = await login(stack)
    async with websockets.connect(
        f"{stack.game_urls[0]}?token={who.access_token}", max_size=None
    ) as ws:
        await ws.recv()  # welcome
        await ws.send("x" * (2 * 1024 * 1024))
        with pytest.raises(websockets.ConnectionClosed):
            while True:
                await ws.recv()
        assert ws.close_code == 1009
    # The server is still fine for everyone else.
    client = await connect(stack)
    assert isinstance(await client.request(p.Ping()), p.Pong)
    await client.close()


# ---------------------------------------------------------------- queueing
async def test_enqueue_dequeue_and_refusals(
    stack: Stack, redis: aioredis.Redis, stack_keys: Keys
) -> None:
    client = await connect(stack)
    me = client.welcome.player_id
    try:
        with expect_error(ErrorCode.NOT_QUEUED):
            await client.request(p.Dequeue())

        enqueued = await client.request(p.Enqueue(mode="normal"))
        assert isinstance(enqueued, p.Enqueued) and enqueued.mode == "normal"
        assert await queued(redis, stack_keys, me)
        with expect_error(ErrorCode.ALREADY_QUEUED):
            await client.request(p.Enqueue(mode="normal"))

        dequeued = await client.request(p.Dequeue())
        assert isinstance(dequeued, p.Dequeued) and dequeued.reason == "requested"
        assert not await queued(redis, stack_keys, me)
        assert await redis.hget(stack_keys.tickets(GameMode.NORMAL), me) is None
    finally:
        await client.close()


async def test_client_metadata_is_ignored(
    stack: Stack, redis: aioredis.Redis, stack_keys: Keys
) -> None:
    client = await connect(stack)
    me = client.welcome.player_id
    try:
        forged = {
            "type": "enqueue",
            "id": "e1",
            "mode": "normal",
            "metadata": {"deck": [{"card_id": 40, "attack": 99}], "rating": 9999},
            "pod_id": "pod-evil",
            "player_id": "1",
        }
        await client.send_raw(msgspec.json.encode(forged))
        reply = await asyncio.wait_for(client.pushes.get(), 5)  # id "e1" is not awaited
        assert isinstance(reply, p.Enqueued) and reply.id == "e1"
        assert await queued(redis, stack_keys, me)
        ticket = msgspec.json.decode(
            await redis.hget(stack_keys.tickets(GameMode.NORMAL), me), type=BattleSnapshot
        )
        assert ticket.player_id == me and ticket.pod_id == "pod-1"
        assert ticket.rating == 1500 and len(ticket.deck) == 20
        assert all(card.attack < 99 for card in ticket.deck)
        await client.request(p.Dequeue())
    finally:
        await client.close()


async def test_disconnect_dequeues_automatically(
    stack: Stack, redis: aioredis.Redis, stack_keys: Keys
) -> None:
    client = await connect(stack, pod=1)
    me = client.welcome.player_id
    await client.request(p.Enqueue())
    assert await queued(redis, stack_keys, me)
    await client.close()

    async def gone() -> bool:
        return not await queued(redis, stack_keys, me)

    await eventually(gone)


async def test_no_legal_deck_refuses_enqueue(
    stack: Stack, pool: asyncpg.Pool, redis: aioredis.Redis, stack_keys: Keys
) -> None:
    client = await connect(stack)
    me = client.welcome.player_id
    try:
        await pool.execute(
            "UPDATE player_decks SET is_active = false WHERE player_id = $1", int(me)
        )
        with expect_error(ErrorCode.NO_LEGAL_DECK):
            await client.request(p.Enqueue())
        assert not await queued(redis, stack_keys, me)
        # The session is back to idle: a later enqueue is judged afresh.
        with expect_error(ErrorCode.NO_LEGAL_DECK):
            await client.request(p.Enqueue())
    finally:
        await client.close()


async def test_second_connection_replaces_the_first(
    stack: Stack, redis: aioredis.Redis, stack_keys: Keys
) -> None:
    who = await login(stack)
    first = await GameClient.connect(stack.game_urls[0], who.access_token)
    await first.request(p.Enqueue())
    second = await GameClient.connect(stack.game_urls[0], who.access_token)
    try:
        assert second.welcome.resumed is True
        notice = await first.pushes.get()
        assert isinstance(notice, p.Error) and notice.code == "SESSION_REPLACED"
        await eventually(lambda: _closed(first))
        assert first.ws.close_code == 4409
        # The queue place survived the takeover (no dequeue on replacement)...
        assert await queued(redis, stack_keys, who.player_id)
        # ...and belongs to the new connection.
        dequeued = await second.request(p.Dequeue())
        assert isinstance(dequeued, p.Dequeued)
    finally:
        await second.close()
        await first.close()


async def _closed(client: GameClient) -> bool:
    return client.ws.close_code is not None
