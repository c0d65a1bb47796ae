"""Steam login end to end: the production Steam Web API client against the simulator.

The main stack runs the default policy (publisher bans refused, VAC bans and Family Sharing
allowed) and a 3 s Steam timeout; `edge_stack` refuses VAC bans and borrowed copies and gives up
on Steam after 0.5 s per attempt, 2 attempts.
"""

from __future__ import annotations

import time
from typing import Any

import asyncpg
import httpx
import pytest

from devtools.stack import Stack, free_port
from servers.auth.players import dev_steam_id
from servers.auth.steam import SteamWebApi
from servers.common.config import SteamSettings
from servers.common.errors import ErrorCode
from tests.support.helpers import expect_error, unique_name


async def ticket(http: httpx.AsyncClient, stack: Stack, **behaviour: Any) -> str:
    response = await http.post(f"{stack.steam_sim_url}/dev/tickets", json=behaviour)
    assert response.status_code == 200, response.text
    return str(response.json()["ticket"])


async def steam_login(
    http: httpx.AsyncClient, stack: Stack, ticket_hex: Any, **extra: Any
) -> httpx.Response:
    return await http.post(f"{stack.auth_url}/login/steam", json={"ticket": ticket_hex, **extra})


async def calls(http: httpx.AsyncClient, stack: Stack, ticket_hex: str) -> int:
    return int((await http.get(f"{stack.steam_sim_url}/dev/tickets/{ticket_hex}")).json()["calls"])


async def test_steam_login_finds_or_creates_the_player_by_steam_id(
    stack: Stack, pool: asyncpg.Pool
) -> None:
    persona = unique_name("steam")
    async with httpx.AsyncClient(timeout=10) as http:
        first = await steam_login(
            http, stack, await ticket(http, stack, persona=persona), name="Sam"
        )
        second = await steam_login(http, stack, await ticket(http, stack, persona=persona))
    assert first.status_code == 200 and second.status_code == 200, first.text
    a, b = first.json(), second.json()
    assert a["player_id"] == b["player_id"] == str(dev_steam_id(persona))
    assert a["created"] is True and b["created"] is False
    assert a["name"] == b["name"] == "Sam"  # `name` only names a new player
    assert a["refresh_token"].startswith("rt1.") and a["refresh_token"] != b["refresh_token"]
    assert (
        await pool.fetchval("SELECT count(*) FROM players WHERE steam_id = $1", int(a["player_id"]))
        == 1
    )


@pytest.mark.parametrize(
    ("persona", "stored"),
    [
        ("\u202eevil\u202c Sam", "evil Sam"),
        ("\x1b[31mRed\x1b[0m", "[31mRed [0m"),
        ("Ann\x00\x07ie", "Ann ie"),
        ("\u2066\u2069", None),  # nothing left: the default name
    ],
)
async def test_steam_persona_names_are_cleaned_not_refused(
    stack: Stack, persona: str, stored: str | None
) -> None:
    """A persona name is the player's name on Steam, which they cannot change here: characters
    a name may not hold are removed instead of refusing the login (a dev login refuses them)."""
    async with httpx.AsyncClient(timeout=10) as http:
        ticket_hex = await ticket(http, stack, persona=unique_name("persona"))
        response = await steam_login(http, stack, ticket_hex, name=persona)
        dev = await http.post(f"{stack.auth_url}/login/dev", json={"name": persona})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["name"] == (stored or f"Player{body['player_id'][-6:]}")
    assert dev.status_code == 400 and dev.json()["error"]["code"] == "INVALID_MESSAGE"


@pytest.mark.parametrize(
    ("behaviour", "status", "code"),
    [
        ({"appid": 999}, 401, "STEAM_TICKET_INVALID"),
        ({"identity": "another-service"}, 401, "STEAM_TICKET_INVALID"),
        ({"ttl": -1}, 401, "STEAM_TICKET_INVALID"),
        ({"publisherbanned": True}, 403, "STEAM_BANNED"),
        ({"vacbanned": True}, 200, None),  # allowed by the default policy
        ({"ownersteamid": "76561197960265800"}, 200, None),  # Family Sharing allowed by default
    ],
)
async def test_steam_answers_and_default_policy(
    stack: Stack, pool: asyncpg.Pool, behaviour: dict[str, Any], status: int, code: str | None
) -> None:
    persona = unique_name("pol")
    async with httpx.AsyncClient(timeout=10) as http:
        response = await steam_login(
            http, stack, await ticket(http, stack, persona=persona, **behaviour)
        )
    assert response.status_code == status, response.text
    exists = await pool.fetchval(
        "SELECT count(*) FROM players WHERE steam_id = $1", dev_steam_id(persona)
    )
    if code is None:
        # A borrowed copy logs in as the borrower, not the owner.
        assert response.json()["player_id"] == str(dev_steam_id(persona))
        assert exists == 1
    else:
        assert response.json()["error"]["code"] == code
        assert exists == 0  # nothing created for a refused login


async def test_unknown_ticket_is_invalid(stack: Stack) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await steam_login(http, stack, "ab" * 100)
    assert response.status_code == 401
    body = response.json()["error"]
    assert body["code"] == "STEAM_TICKET_INVALID" and "errorcode 101" in body["message"]


@pytest.mark.parametrize("bad", ["", "abc", "zz", "ab" * 2049, 12, None, ["ab"], {"t": 1}])
async def test_malformed_tickets_never_reach_steam(stack: Stack, bad: Any) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        before = (await http.get(f"{stack.steam_sim_url}/dev/stats")).json()["calls"]
        response = await steam_login(http, stack, bad)
        after = (await http.get(f"{stack.steam_sim_url}/dev/stats")).json()["calls"]
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "INVALID_MESSAGE"
    assert after == before


async def test_transient_steam_failure_is_retried(stack: Stack) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        hexed = await ticket(http, stack, fail_times=1)
        response = await steam_login(http, stack, hexed)
        assert response.status_code == 200, response.text
        assert await calls(http, stack, hexed) == 2


# ---------------------------------------------------------------- strict policy, short timeouts
@pytest.mark.parametrize(
    ("behaviour", "code"),
    [
        ({"vacbanned": True}, "STEAM_BANNED"),
        ({"ownersteamid": "76561197960265800"}, "STEAM_FAMILY_SHARED"),
    ],
)
async def test_strict_policy_refuses(
    edge_stack: Stack, behaviour: dict[str, Any], code: str
) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(
            f"{edge_stack.auth_url}/login/steam",
            json={"ticket": await ticket(http, edge_stack, **behaviour)},
            headers={"X-Forwarded-For": f"198.51.100.{len(code)}"},
        )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == code


@pytest.mark.parametrize("behaviour", [{"delay": 2.0}, {"fail_times": 99}])
async def test_slow_or_down_steam_is_a_clear_retryable_error(
    edge_stack: Stack, behaviour: dict[str, Any]
) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        hexed = await ticket(http, edge_stack, **behaviour)
        started = time.monotonic()
        response = await http.post(
            f"{edge_stack.auth_url}/login/steam",
            json={"ticket": hexed},
            headers={"X-Forwarded-For": "198.51.100.200"},
        )
        elapsed = time.monotonic() - started
        attempts = await calls(http, edge_stack, hexed)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "STEAM_UNAVAILABLE"
    assert int(response.headers["Retry-After"]) >= 1
    assert attempts == 2  # 1 + retries
    assert elapsed < 2 * 0.5 + 0.05 + 1.0  # bounded: never a hang


# ---------------------------------------------------------------- the client on its own
async def test_unreachable_steam_fails_fast() -> None:
    settings = SteamSettings(
        web_api_url=f"http://127.0.0.1:{free_port()}",
        web_api_key="k",
        app_id=480,
        timeout=0.5,
        retries=2,
        retry_backoff=0.01,
    )
    client = SteamWebApi(settings)
    try:
        started = time.monotonic()
        with expect_error(ErrorCode.STEAM_UNAVAILABLE):
            await client.verify("abcd")
        assert time.monotonic() - started < 2.0
    finally:
        await client.aclose()


async def test_wrong_publisher_key_is_our_outage_not_the_players_fault(stack: Stack) -> None:
    settings = SteamSettings(web_api_url=stack.steam_sim_url, web_api_key="wrong", app_id=480)
    client = SteamWebApi(settings)
    try:
        async with httpx.AsyncClient() as http:
            hexed = await ticket(http, stack)
        with expect_error(ErrorCode.STEAM_UNAVAILABLE) as caught:
            await client.verify(hexed)
        assert "key" in caught.value.message
    finally:
        await client.aclose()
