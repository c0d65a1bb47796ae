"""Rate limits of the running servers: per IP on the auth servers and the game servers' connects,
per connection on the game servers' messages (the script itself: integration/common).

`edge_stack` limits every address (127.0.0.1 is a trusted proxy there, so each test picks its own
client IP with X-Forwarded-For) and runs two auth instances that share one budget per IP.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
import uuid

import httpx
import pytest
import websockets

from devtools.stack import Stack
from fake_client.client import GameClient, ServerError
from servers.common import protocol as p
from tests.support.helpers import connect, eventually, login


def fresh_ip() -> str:
    """A documentation-range address of its own for each test (RFC 5737 TEST-NET-3)."""
    n = uuid.uuid4().int
    return f"203.0.{n % 250}.{(n >> 8) % 250 + 1}"


# ---------------------------------------------------------------- auth server
async def test_auth_burst_is_limited_across_instances(edge_stack: Stack) -> None:
    ip, other = fresh_ip(), fresh_ip()
    urls = edge_stack.auth_urls
    async with httpx.AsyncClient(timeout=10) as http:
        replies = await asyncio.gather(
            *(
                http.get(f"{urls[i % 2]}/.well-known/jwks.json", headers={"X-Forwarded-For": ip})
                for i in range(40)
            )
        )
        bystander = await http.get(
            f"{urls[0]}/.well-known/jwks.json", headers={"X-Forwarded-For": other}
        )
        health = await http.get(f"{urls[0]}/health", headers={"X-Forwarded-For": ip})
    ok = [r for r in replies if r.status_code == 200]
    limited = [r for r in replies if r.status_code == 429]
    assert len(ok) + len(limited) == 40
    assert 10 <= len(ok) <= 12  # the burst (plus what 10/s refills while the burst lands)
    assert {r.json()["error"]["code"] for r in limited} == {"RATE_LIMITED"}
    assert all(int(r.headers["Retry-After"]) >= 1 for r in limited)
    assert bystander.status_code == 200  # another IP is unaffected
    assert health.status_code == 200  # probes are never limited


async def test_one_budget_for_all_instances(edge_stack: Stack) -> None:
    ip = fresh_ip()
    first, second = edge_stack.auth_urls
    async with httpx.AsyncClient(timeout=10) as http:
        started = time.monotonic()
        spent = await asyncio.gather(
            *(http.get(f"{first}/openapi.json", headers={"X-Forwarded-For": ip}) for _ in range(10))
        )
        elsewhere = await http.get(f"{second}/openapi.json", headers={"X-Forwarded-For": ip})
        elapsed = time.monotonic() - started
    assert [r.status_code for r in spent] == [200] * 10
    # The other instance knows the budget is spent (unless a token refilled meanwhile: 0.1 s).
    assert elsewhere.status_code == 429 or elapsed > 0.09


async def test_auth_sustained_rate(edge_stack: Stack) -> None:
    ip = fresh_ip()
    allowed = 0
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=10) as http:
        while time.monotonic() - started < 1.5:
            response = await http.get(
                f"{edge_stack.auth_urls[0]}/openapi.json", headers={"X-Forwarded-For": ip}
            )
            allowed += response.status_code == 200
            await asyncio.sleep(0.01)  # on purpose: the pace of the sustained load
    elapsed = time.monotonic() - started
    assert 10 + 10 * elapsed - 3 <= allowed <= 10 + 10 * elapsed + 2


async def test_limited_login_loses_nothing(edge_stack: Stack) -> None:
    """A login refused with 429 created nothing; the fake client waits it out and succeeds."""
    async with httpx.AsyncClient(timeout=10) as http:
        # Spend the IP's budget on one instance with a burst, then log in on the other. On a
        # machine too busy to send the burst within the budget's refill, try a fresh IP.
        for _ in range(5):
            ip = fresh_ip()
            await asyncio.gather(
                *(
                    http.get(
                        f"{edge_stack.auth_urls[0]}/openapi.json", headers={"X-Forwarded-For": ip}
                    )
                    for _ in range(40)
                )
            )
            ticket = (await http.post(f"{edge_stack.steam_sim_url}/dev/tickets", json={})).json()
            refused = await http.post(
                f"{edge_stack.auth_urls[1]}/login/steam",
                json={"ticket": ticket["ticket"]},
                headers={"X-Forwarded-For": ip},
            )
            if refused.status_code == 429:
                break
        assert refused.status_code == 429
        await asyncio.sleep(float(refused.headers["Retry-After"]))  # as told, on purpose
        accepted = await http.post(
            f"{edge_stack.auth_urls[1]}/login/steam",
            json={"ticket": ticket["ticket"]},
            headers={"X-Forwarded-For": ip},
        )
    assert accepted.status_code == 200 and accepted.json()["created"] is True


# ---------------------------------------------------------------- game server
async def test_websocket_connects_per_ip(edge_stack: Stack) -> None:
    ip = fresh_ip()
    async with httpx.AsyncClient(timeout=10) as http:
        ticket = (await http.post(f"{edge_stack.steam_sim_url}/dev/tickets", json={})).json()
        body = (
            await http.post(
                f"{edge_stack.auth_url}/login/steam",
                json={"ticket": ticket["ticket"]},
                headers={"X-Forwarded-For": fresh_ip()},
            )
        ).json()
    url = f"{edge_stack.game_urls[0]}?token={body['access_token']}"
    outcomes: list[str] = []
    # 10 connects are the burst; keep connecting (bounded) until the limit answers, so a slow
    # machine that refills the bucket between connects does not fail the test.
    while "RATE_LIMITED" not in outcomes and len(outcomes) < 40:
        async with websockets.connect(url, additional_headers={"X-Forwarded-For": ip}) as ws:
            first = p.decode_server(await ws.recv())
            outcomes.append(type(first).__name__ if not isinstance(first, p.Error) else first.code)
            if isinstance(first, p.Error):
                with pytest.raises(websockets.ConnectionClosed):
                    await ws.recv()
                assert ws.close_code == 4429
    assert outcomes[:10] == ["Welcome"] * 10
    assert "RATE_LIMITED" in outcomes[10:]


async def test_messages_per_connection(stack: Stack) -> None:
    """The main stack's defaults: 20/s, burst 40; refused messages are answered, not handled."""
    client = await connect(stack)
    try:
        frames = [f'{{"type":"ping","id":"m{i}"}}' for i in range(60)]
        for frame in frames:
            await client.send_raw(frame)
        replies = [await asyncio.wait_for(client.pushes.get(), 5) for _ in frames]
        pongs = [r for r in replies if isinstance(r, p.Pong)]
        limited = [r for r in replies if isinstance(r, p.Error)]
        # The burst (40) plus what refilled while the frames went out (20/s): a slow machine
        # refills more, so only the lower bound and the presence of refusals are fixed.
        assert len(pongs) >= 40 and limited
        assert {r.code for r in limited} == {"RATE_LIMITED"}
        assert {r.id for r in replies} == {f"m{i}" for i in range(60)}  # every id answered
        await asyncio.sleep(0.2)  # on purpose: tokens refill (20/s) after the burst was spent
        assert isinstance(await client.request(p.Ping()), p.Pong)  # the socket stays usable
    finally:
        await client.close()


async def test_message_flood_closes_the_socket(stack: Stack) -> None:
    who = await login(stack)
    client = await GameClient.connect(stack.game_urls[0], who.access_token)
    try:
        for _ in range(200):
            await client.send_raw('{"type":"ping"}')

        async def closed() -> bool:
            return client.ws.close_code is not None

        await eventually(closed, timeout=5, what="the socket closed")
        assert client.ws.close_code == 4429
    finally:
        await client.close()
    # The player can come back (and the server is fine).
    again = await GameClient.connect(stack.game_urls[0], who.access_token)
    assert isinstance(await again.request(p.Ping()), p.Pong)
    await again.close()


# ---------------------------------------------------------------- activity per player and IP
RETRY = re.compile(r"retry after (\d+(?:\.\d+)?) s")


def retry_after(error: ServerError) -> float:
    found = RETRY.search(error.message)
    assert found, error.message
    return float(found.group(1))


async def test_pve_battles_per_player_across_pods(stack: Stack) -> None:
    """The main stack runs the configured defaults; the limit is per player through Redis, so
    moving to another game server does not reset it (and loopback is not exempt)."""
    rules = stack.settings.ratelimit
    who = await login(stack)
    played = 0
    for pod in (0, 1):  # half of the burst on each pod, each on a socket of its own
        client = await GameClient.connect(stack.game_urls[pod], who.access_token)
        try:
            for _ in range(rules.pve_burst // 2 if pod == 0 else rules.pve_burst - played):
                found = await client.request(p.StartPve(difficulty="easy"))
                assert isinstance(found, p.MatchFound)
                # On the second pod the last result of the first may come again first.
                await client.result_of(found.match_id, 10)
                played += 1
            if pod == 1:
                with pytest.raises(ServerError) as refused:
                    await client.request(p.StartPve(difficulty="easy"))
                assert refused.value.code == "RATE_LIMITED"
                # The sustained rate is pve_per_minute: the next battle is one interval away.
                interval = 60 / rules.pve_per_minute
                assert interval / 2 < retry_after(refused.value) <= interval + 0.5
                assert isinstance(await client.request(p.Ping()), p.Pong)  # socket stays
                profile = await client.request(p.GetProfile())
                assert isinstance(profile, p.Profile)
        finally:
            await client.close()
    assert played == rules.pve_burst


async def _login_from(stack: Stack, ip: str) -> str:
    async with httpx.AsyncClient(timeout=10) as http:
        ticket = (await http.post(f"{stack.steam_sim_url}/dev/tickets", json={})).json()
        body = (
            await http.post(
                f"{stack.auth_url}/login/steam",
                json={"ticket": ticket["ticket"]},
                headers={"X-Forwarded-For": ip},
            )
        ).json()
    return str(body["access_token"])


async def _guess(client: GameClient) -> str:
    """One wrong guess at an invite code; the error code it got."""
    code = "".join(random.choice("ABCDEFGHJKMNPQRSTUVWXYZ23456789") for _ in range(6))
    with pytest.raises(ServerError) as caught:
        await client.request(p.JoinParty(code=code))
    return caught.value.code


async def test_party_code_guesses_per_player_across_sockets_and_pods(edge_stack: Stack) -> None:
    rules = edge_stack.settings.ratelimit
    ip = fresh_ip()
    token = await _login_from(edge_stack, ip)
    outcomes: list[str] = []
    # Half the budget from one socket on pod 1, the rest from a new socket on pod 2.
    first = await GameClient.connect(
        edge_stack.game_urls[0], token, headers={"X-Forwarded-For": ip}
    )
    try:
        outcomes += [await _guess(first) for _ in range(rules.party_join_burst // 2)]
    finally:
        await first.close()
    second = await GameClient.connect(
        edge_stack.game_urls[1], token, headers={"X-Forwarded-For": ip}
    )
    try:
        # A slow machine refills the bucket between guesses (one per 60/rate s): bounded.
        while "RATE_LIMITED" not in outcomes and len(outcomes) < rules.party_join_burst + 3:
            outcomes.append(await _guess(second))
        assert outcomes[: rules.party_join_burst] == ["PARTY_NOT_FOUND"] * rules.party_join_burst
        assert outcomes[-1] == "RATE_LIMITED"
        with pytest.raises(ServerError) as refused:
            await second.request(p.JoinParty(code="AAAAAA"))
        assert refused.value.code == "RATE_LIMITED"
        assert 0 < retry_after(refused.value) <= 60 / rules.party_join_per_minute + 0.5
        assert isinstance(await second.request(p.Ping()), p.Pong)
    finally:
        await second.close()


async def test_party_code_guesses_per_ip_across_players(edge_stack: Stack) -> None:
    rules = edge_stack.settings.ratelimit
    ip = fresh_ip()
    # Enough players behind one address that none reaches their own limit first.
    per_player = rules.party_join_burst - 2
    players = -(-(rules.party_join_ip_burst + 3) // per_player)
    outcomes: list[str] = []
    for n in range(players):
        token = await _login_from(edge_stack, ip)
        client = await GameClient.connect(
            edge_stack.game_urls[n % 2], token, headers={"X-Forwarded-For": ip}
        )
        try:
            for _ in range(per_player):
                outcomes.append(await _guess(client))
                if outcomes[-1] == "RATE_LIMITED":
                    break
        finally:
            await client.close()
        if "RATE_LIMITED" in outcomes:
            break
    burst = rules.party_join_ip_burst
    assert outcomes[:burst] == ["PARTY_NOT_FOUND"] * burst
    assert outcomes[-1] == "RATE_LIMITED" and len(outcomes) <= burst + 3
    # Another address is not affected.
    other = fresh_ip()
    client = await GameClient.connect(
        edge_stack.game_urls[0],
        await _login_from(edge_stack, other),
        headers={"X-Forwarded-For": other},
    )
    try:
        assert await _guess(client) == "PARTY_NOT_FOUND"
    finally:
        await client.close()
