"""The auth server over real HTTP, with PostgreSQL behind it."""

from __future__ import annotations

import asyncpg
import httpx
import jwt
import pytest

from devtools.stack import Stack
from servers.auth.app import create_app
from servers.auth.players import STEAM_ID64_BASE, dev_steam_id
from servers.common.config import Settings
from servers.common.decks import deck_problems
from tests.support.helpers import unique_name


async def test_dev_login_creates_player_with_starter_kit(stack: Stack, pool: asyncpg.Pool) -> None:
    name = unique_name("alice")
    async with httpx.AsyncClient() as http:
        first = await http.post(f"{stack.auth_url}/login/dev", json={"name": name})
        second = await http.post(f"{stack.auth_url}/login/dev", json={"name": name})
    assert first.status_code == 200 and second.status_code == 200
    body, again = first.json(), second.json()
    assert body["created"] is True and again["created"] is False
    assert body["player_id"] == again["player_id"] == str(dev_steam_id(name))
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["sub"] == body["player_id"] and claims["exp"] > claims["iat"]
    assert claims["aud"] == "cardgame-game" and claims["iss"] == "cardgame-auth"

    steam_id = int(body["player_id"])
    owned = {
        r["card_id"]: r["count"]
        for r in await pool.fetch(
            "SELECT card_id, count FROM player_card_collection WHERE player_id = $1", steam_id
        )
    }
    deck = {
        r["card_id"]: r["count"]
        for r in await pool.fetch(
            "SELECT card_id, count FROM deck_cards JOIN player_decks USING (deck_id)"
            " WHERE player_id = $1 AND is_active",
            steam_id,
        )
    }
    assert len(owned) >= 10
    assert deck and deck_problems(deck, owned) == []
    profile = await pool.fetchrow("SELECT * FROM player_profiles WHERE player_id = $1", steam_id)
    glicko = (profile["rating"], profile["rating_deviation"], profile["volatility"])
    assert glicko == (1500, 350, 0.06)


async def test_dev_login_by_steam_id(stack: Stack) -> None:
    steam_id = STEAM_ID64_BASE + 123456789
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{stack.auth_url}/login/dev", json={"steam_id": str(steam_id)})
    assert response.status_code == 200
    assert response.json()["player_id"] == str(steam_id)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "INVALID_MESSAGE"),
        (b"[1, 2]", 400, "INVALID_MESSAGE"),
        (b"{}", 400, "INVALID_MESSAGE"),
        (b'{"name": ""}', 400, "INVALID_MESSAGE"),
        (b'{"name": 5}', 400, "INVALID_MESSAGE"),
        (b'{"name": "x\\u0000y"}', 400, "INVALID_MESSAGE"),
        (b'{"steam_id": "12"}', 400, "INVALID_MESSAGE"),
        (b'{"steam_id": true}', 400, "INVALID_MESSAGE"),
        (b'{"name": "' + b"a" * 40000 + b'"}', 413, "MESSAGE_TOO_LARGE"),
    ],
)
async def test_bad_login_requests_get_clear_errors(
    stack: Stack, pool: asyncpg.Pool, body: bytes, status: int, code: str
) -> None:
    before = await pool.fetchval("SELECT count(*) FROM players")
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{stack.auth_url}/login/dev",
            content=body,
            headers={"content-type": "application/json"},
        )
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert await pool.fetchval("SELECT count(*) FROM players") == before


async def test_steam_login_unconfigured_answers_unavailable(settings: Settings) -> None:
    """Without a Steam configuration /login/steam says so (501) instead of failing oddly."""
    bare = settings.replace(steam={"web_api_url": ""})
    app = create_app(bare)
    async with app.test_app() as running:
        client = running.test_client()
        response = await client.post("/login/steam", json={"ticket": "ab"})
        health = await client.get("/health")
        missing = await client.get("/nope")
        assert response.status_code == 501
        assert (await response.get_json())["error"]["code"] == "STEAM_LOGIN_UNAVAILABLE"
        assert health.status_code == 200
        assert missing.status_code == 404
        assert (await missing.get_json())["error"]["code"] == "UNKNOWN_MESSAGE"
