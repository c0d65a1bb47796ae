"""Redis key names: every script's keys and every player's keys share one cluster slot."""

from __future__ import annotations

from typing import Any

import pytest
from redis.crc import key_slot

from servers.common.keys import GameMode, Keys
from servers.common.lua import PairToCommit, QueueScripts


class _Recorder:
    """Stands in for a client: records the KEYS of every script call."""

    def __init__(self, replies: list[Any]) -> None:
        self.calls: list[tuple[str, list[str]]] = []
        self.replies = replies  # one per call, in order

    def register_script(self, source: str) -> Any:
        name = source.splitlines()[0]

        async def call(keys: list[str], args: list[Any]) -> Any:
            self.calls.append((name, keys))
            return self.replies.pop(0)

        return call


@pytest.mark.parametrize("mode", list(GameMode))
async def test_every_queue_script_keeps_its_keys_in_one_slot(mode: GameMode) -> None:
    recorder = _Recorder([[1, 1], [1, 0], [], [], 0, 0])
    scripts = QueueScripts(recorder, Keys("cg"))
    await scripts.enqueue(mode, "1", 0, b"{}", "pod-1")
    await scripts.dequeue(mode, "1", "pod-1")
    await scripts.pop(mode, 10, 0)
    await scripts.commit(mode, [PairToCommit("m", "1", "2", b"{}")], [], [])
    await scripts.reap(mode, 0)
    await scripts.repoint(mode, "1", "pod-1")
    assert len(recorder.calls) == 6
    for name, keys in recorder.calls:
        assert len({key_slot(k.encode()) for k in keys}) == 1, (name, keys)


def test_player_keys_share_the_player_slot() -> None:
    keys = Keys("cg")
    slots = {
        key_slot(k.encode())
        for k in (keys.player_pod("7"), keys.player_match("7"), keys.delivered("7", "m"))
    }
    assert len(slots) == 1


def mode_keys(keys: Keys, mode: GameMode) -> list[str]:
    return [
        keys.queue(mode),
        keys.tickets(mode),
        keys.ticket_pods(mode),
        keys.inflight(mode),
        keys.inflight_scores(mode),
        keys.battles(mode),
    ]


def test_script_keys_share_a_cluster_slot(keys: Keys) -> None:
    for mode in GameMode:
        assert len({key_slot(k.encode()) for k in mode_keys(keys, mode)}) == 1
    player = "76561197960265729"
    player_keys = [keys.player_pod(player), keys.player_match(player), keys.delivered(player, "m")]
    assert len({key_slot(k.encode()) for k in player_keys}) == 1
