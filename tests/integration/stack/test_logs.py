"""Structured logs of a running stack: one match followed across the match server and both game
servers by its match_id."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from devtools.stack import Stack
from servers.common.config import Settings
from tests.support.helpers import eventually
from tests.support.pvp import play_across_pods


@pytest.fixture(scope="module")
def json_stack(settings: Settings) -> Iterator[Stack]:
    json_settings = settings.replace(
        log={"format": "json"}, redis={"namespace": f"{settings.redis.namespace}-logs"}
    )
    with Stack(json_settings, pods=2) as running:
        yield running


def trail_of(stack: Stack, match_id: str) -> list[dict[str, str]]:
    """The JSON log entries of the game and match servers that name the match."""
    trail = []
    for proc in stack.procs:
        if proc.name.startswith(("game", "match")):
            for line in proc.log_path.read_text().splitlines():
                if line.startswith("{"):
                    entry = json.loads(line)
                    if entry.get("match_id") == match_id:
                        trail.append(entry)
    return trail


def with_message(trail: list[dict[str, str]], prefix: str) -> list[dict[str, str]]:
    return [e for e in trail if e["msg"].startswith(prefix)]


async def test_one_match_is_followed_across_processes(json_stack: Stack) -> None:
    match = await play_across_pods(json_stack)
    alice, bob = match.player_ids

    async def logged() -> bool:
        """The servers write their lines after the players got their results: wait for them."""
        trail = trail_of(json_stack, match.match_id)
        return (
            bool(with_message(trail, "match formed"))
            and bool(with_message(trail, "battle recorded"))
            and len(with_message(trail, "battle result delivered")) >= 2
        )

    await eventually(logged, timeout=10, what="every process's log lines of the match")
    trail = trail_of(json_stack, match.match_id)
    formed = with_message(trail, "match formed")
    assert len(formed) == 1 and formed[0]["role"] == "match"
    ran = with_message(trail, "battle recorded")
    assert len(ran) == 1 and ran[0]["role"] == "game" and ran[0]["pod_id"] in ("pod-1", "pod-2")
    delivered = {
        (e["pod_id"], e["player_id"]) for e in trail if e["msg"] == "battle result delivered"
    }
    assert delivered == {("pod-1", alice), ("pod-2", bob)}
