"""Metrics: every server's /metrics after real PvP traffic passes `promtool check metrics`
and carries the families docs/operations.md lists, with values the traffic explains."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from devtools.stack import Stack
from fake_client.pvp import run_pvp
from servers.common import protocol as p
from servers.common.errors import ErrorCode
from tests.support import promtool
from tests.support.helpers import connect, eventually
from tests.support.metric_families import AUTH_FAMILIES, GAME_FAMILIES, MATCH_FAMILIES


def samples(*texts: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of these expositions (several servers: values of one series summed)."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for text in texts:
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                key = (s.name, tuple(sorted(s.labels.items())))
                out[key] = out.get(key, 0.0) + s.value
    return out


def metrics_url(ws_url: str) -> str:
    return ws_url.replace("ws://", "http://").removesuffix("/ws") + "/metrics"


def total(
    values: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return sum(
        v
        for (n, ls), v in values.items()
        if n == name and all(dict(ls).get(k) == want for k, want in labels.items())
    )


@pytest.fixture(scope="module")
async def scraped(stack: Stack) -> dict[str, str]:
    """Each server's exposition after a few matches, one error and a queue wait."""
    summary = await run_pvp(stack.auth_url, stack.game_urls, 3, timeout=20)
    assert summary.matches_completed == 3
    client = await connect(stack, pod=0)
    try:
        await client.request(p.Dequeue())  # NOT_QUEUED: an error by code
    except Exception:
        pass
    finally:
        await client.close()
    out: dict[str, str] = {}
    async with httpx.AsyncClient(timeout=5) as http:

        async def battles_counted() -> bool:
            texts = [(await http.get(metrics_url(url))).text for url in stack.game_urls]
            return total(samples(*texts), "cardgame_battles_total") >= 3

        await eventually(battles_counted, 5)
        out["auth"] = (await http.get(f"{stack.auth_url}/metrics")).text
        for i, url in enumerate(stack.game_urls):
            out[f"game-{i}"] = (await http.get(metrics_url(url))).text
        for i, url in enumerate(stack.match_urls):
            out[f"match-{i}"] = (await http.get(f"{url}/metrics")).text
    return out


def test_every_exposition_passes_promtool(scraped: dict[str, str]) -> None:
    for server, text in scraped.items():
        checked = promtool.run("check", "metrics", stdin=text.encode())
        assert checked.returncode == 0, f"{server}: {checked.stdout}{checked.stderr}"
        assert checked.stdout.strip() == "" and checked.stderr.strip() == "", server


@pytest.mark.parametrize(
    "server,families",
    [("auth", AUTH_FAMILIES), ("game-0", GAME_FAMILIES), ("match-0", MATCH_FAMILIES)],
)
def test_families_are_exposed(scraped: dict[str, str], server: str, families: set[str]) -> None:
    exposed = {f.name for f in text_string_to_metric_families(scraped[server])}
    assert families <= exposed, families - exposed


def test_values_follow_the_traffic(scraped: dict[str, str]) -> None:
    games = samples(scraped["game-0"], scraped["game-1"])
    matches = samples(scraped["match-0"], scraped["match-1"])
    auth = samples(scraped["auth"])
    assert total(matches, "cardgame_matches_formed_total", mode="normal") >= 3
    assert total(matches, "cardgame_queue_wait_seconds_count", mode="normal") >= 6
    assert total(matches, "cardgame_trymatch_tick_seconds_count") > 0
    assert (
        total(
            matches, "cardgame_pubsub_messages_total", channel="pod:*:match_result", direction="out"
        )
        >= 6
    )
    assert total(matches, "cardgame_pod_up", pod="pod-1", role="game") >= 1
    assert total(matches, "cardgame_maintenance_mode") == 0
    assert total(matches, "cardgame_battle_request_subscribers") >= 0
    assert total(games, "cardgame_ws_messages_total", direction="in", type="enqueue") >= 6
    assert total(games, "cardgame_ws_messages_total", direction="out", type="match_found") >= 6
    assert total(games, "cardgame_errors_total", code=ErrorCode.NOT_QUEUED.value) >= 1
    assert total(games, "cardgame_battles_total", mode="normal", outcome="recorded") >= 3
    assert total(games, "cardgame_battle_duration_seconds_count", mode="normal") >= 3
    assert total(games, "cardgame_persistence_seconds_count", operation="record_match") >= 3
    assert (
        total(
            games, "cardgame_pubsub_messages_total", channel="pod:*:battle_result", direction="in"
        )
        >= 6
    )
    assert total(games, "cardgame_ws_connects_total", outcome="accepted") >= 7
    assert total(auth, "cardgame_http_requests_total", status="200") >= 7
