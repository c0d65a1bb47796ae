"""Sessions end to end: refresh rotation, reuse detection, logout, JWKS (the signing keys
themselves: tests/unit/common/test_tokens.py)."""

from __future__ import annotations

import asyncio

import httpx
import jwt
import pytest
import websockets

from devtools.stack import Stack
from fake_client.client import GameClient, refresh
from servers.common import protocol as p
from servers.common.errors import ErrorCode
from servers.common.tokens import (
    TokenVerifier,
    parse_jwks,
)
from tests.support.helpers import eventually, expect_error, login


async def post(stack: Stack, path: str, **kwargs: object) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.post(f"{stack.auth_url}{path}", **kwargs)  # type: ignore[arg-type]


async def refused_with(url: str, token: str) -> str:
    async with websockets.connect(f"{url}?token={token}") as ws:
        message = p.decode_server(await ws.recv())
        with pytest.raises(websockets.ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 4401
        assert isinstance(message, p.Error)
        return message.code


async def test_refresh_rotates_and_reuse_revokes_the_session(stack: Stack) -> None:
    first = await login(stack)
    async with httpx.AsyncClient(timeout=10) as http:
        second = await refresh(http, stack.auth_url, first.refresh_token)
        assert second.player_id == first.player_id
        assert second.refresh_token != first.refresh_token
        assert second.access_token != first.access_token
        third = await refresh(http, stack.auth_url, second.refresh_token)
        client = await GameClient.connect(stack.game_urls[0], third.access_token)
        assert client.welcome.player_id == first.player_id

        # The first token again: someone copied it. The whole session goes.
        with expect_error(ErrorCode.REFRESH_TOKEN_REUSED):
            await refresh(http, stack.auth_url, first.refresh_token)
        with expect_error(ErrorCode.INVALID_REFRESH_TOKEN):
            await refresh(http, stack.auth_url, third.refresh_token)

    # The open socket of the revoked session is closed, and its access tokens are refused.
    notice = await asyncio.wait_for(client.pushes.get(), 5)
    assert isinstance(notice, p.Error) and notice.code == "TOKEN_REVOKED"
    await eventually(lambda: _closed(client))
    assert client.ws.close_code == 4401
    await client.close()
    for url in stack.game_urls:
        assert await refused_with(url, third.access_token) == "TOKEN_REVOKED"


async def _closed(client: GameClient) -> bool:
    return client.ws.close_code is not None


async def test_concurrent_refreshes_with_one_token_spend_it_once(stack: Stack) -> None:
    who = await login(stack)
    replies = await asyncio.gather(
        *(
            post(stack, "/token/refresh", json={"refresh_token": who.refresh_token})
            for _ in range(5)
        )
    )
    assert sorted(r.status_code for r in replies).count(200) == 1
    assert {r.json()["error"]["code"] for r in replies if r.status_code != 200} == {
        "REFRESH_TOKEN_REUSED"
    }


@pytest.mark.parametrize(
    "token",
    [
        "",
        "rt1.",
        "rt1." + "A" * 43,
        "rt1." + "A" * 44,
        "Bearer x",
        "rt1.../../etc/passwd" + "a" * 27,
    ],
)
async def test_unknown_refresh_tokens_are_refused_without_side_effects(
    stack: Stack, token: str
) -> None:
    response = await post(stack, "/token/refresh", json={"refresh_token": token})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "INVALID_REFRESH_TOKEN"


@pytest.mark.parametrize("body", [{}, {"refresh_token": 5}, {"refresh_token": None}, [1]])
async def test_malformed_refresh_requests(stack: Stack, body: object) -> None:
    response = await post(stack, "/token/refresh", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "INVALID_MESSAGE"


@pytest.mark.parametrize("how", ["refresh_token", "bearer"])
async def test_logout_revokes_everything(stack: Stack, how: str) -> None:
    who = await login(stack)
    client = await GameClient.connect(stack.game_urls[1], who.access_token)
    if how == "refresh_token":
        response = await post(stack, "/logout", json={"refresh_token": who.refresh_token})
    else:
        response = await post(
            stack, "/logout", headers={"Authorization": f"Bearer {who.access_token}"}
        )
    assert response.status_code == 200 and response.json()["revoked"] is True
    notice = await asyncio.wait_for(client.pushes.get(), 5)
    assert isinstance(notice, p.Error) and notice.code == "TOKEN_REVOKED"
    await client.close()
    assert await refused_with(stack.game_urls[0], who.access_token) == "TOKEN_REVOKED"
    again = await post(stack, "/token/refresh", json={"refresh_token": who.refresh_token})
    assert again.status_code == 401
    assert again.json()["error"]["code"] in ("INVALID_REFRESH_TOKEN", "REFRESH_TOKEN_REUSED")


async def test_logout_needs_a_credential(stack: Stack) -> None:
    nothing = await post(stack, "/logout")
    forged = await post(stack, "/logout", headers={"Authorization": "Bearer a.b.c"})
    unknown = await post(stack, "/logout", json={"refresh_token": "rt1." + "B" * 43})
    assert [r.status_code for r in (nothing, forged, unknown)] == [401, 401, 401]
    assert unknown.json()["error"]["code"] == "INVALID_REFRESH_TOKEN"


async def test_jwks_verifies_issued_tokens(stack: Stack) -> None:
    who = await login(stack)
    async with httpx.AsyncClient() as http:
        document = (await http.get(f"{stack.auth_url}/.well-known/jwks.json")).json()
    [key] = document["keys"]
    assert key["kty"] == "OKP" and key["crv"] == "Ed25519" and key["alg"] == "EdDSA"
    assert "d" not in key  # never the private part
    header = jwt.get_unverified_header(who.access_token)
    assert header == {"alg": "EdDSA", "kid": key["kid"], "typ": "JWT"}
    settings = stack.settings.auth
    identity = TokenVerifier(settings, parse_jwks(document, "EdDSA")).verify(who.access_token)
    assert identity.player_id == who.player_id and identity.session_id


async def test_every_auth_instance_signs_with_the_same_keys(edge_stack: Stack) -> None:
    jwks = []
    async with httpx.AsyncClient() as http:
        for i, url in enumerate(edge_stack.auth_urls):
            jwks.append(
                (
                    await http.get(
                        f"{url}/.well-known/jwks.json", headers={"X-Forwarded-For": f"192.0.2.{i}"}
                    )
                ).json()
            )
    assert len(jwks) == 2 and jwks[0] == jwks[1]
