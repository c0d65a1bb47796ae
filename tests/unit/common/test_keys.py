"""Redis key names: every script's keys and every player's keys share one cluster slot."""

from __future__ import annotations

from typing import Any

import pytest
from redis.crc import key_slot

from servers.common.keys import GameMode, Keys
from servers.common.lua import PairToCommit, PlayerScripts, QueueScripts


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
async def test_every_queue_and_player_script_keeps_its_keys_in_one_slot(mode: GameMode) -> None:
    recorder = _Recorder(
        [
            ["queued", 1, "pod-1", "queued", mode.value, ""],
            ["removed", 0],
            [],
            [],
            0,
            [],
            [],
            [1, "", "idle", "", "", ""],
            ["detached", ""],
            ["started", "pve", "pve", "m"],
            [],
            [],
        ]
    )
    keys = Keys("cg")
    scripts = QueueScripts(recorder, keys)
    players = PlayerScripts(recorder, keys)
    await scripts.enqueue(mode, "1", 0, b"{}", 1)
    await scripts.dequeue(mode, "1", epoch=1)
    await scripts.pop(mode, 10, 0)
    await scripts.commit(mode, [PairToCommit("m", "1", "2", b"{}")], [], [], 0)
    await scripts.reap(mode, 0)
    await scripts.expire(mode, 0, b"{}")
    await scripts.clear(mode, b"{}")
    await players.attach("1", "pod-1", 0)
    await players.detach("1", 1, dict.fromkeys(GameMode, b"{}"))
    await players.begin_pve("1", 1, "m", 0, "pve")
    await players.finish("m", ["1", "2"])
    await players.overdue(0)
    assert len(recorder.calls) == 12
    for name, keys_used in recorder.calls:
        assert {key_slot(k.encode()) for k in keys_used} == {key_slot(keys.deadlines.encode())}, (
            name,
            keys_used,
        )


def test_records_built_by_scripts_share_the_matchmaking_slot() -> None:
    """Scripts that walk a queue build player records' names from `player_prefix`: the
    records must sit in the slot of the keys the scripts declare."""
    keys = Keys("cg")
    slot = key_slot(keys.queue(GameMode.NORMAL).encode())
    for player in ("7", "76561197960265729"):
        assert keys.player(player) == keys.player_prefix + player
        assert key_slot(keys.player(player).encode()) == slot


def test_delivery_keys_share_the_player_slot() -> None:
    keys = Keys("cg")
    slots = {key_slot(k.encode()) for k in (keys.player_match("7"), keys.delivered("7", "m"))}
    assert len(slots) == 1


def mode_keys(keys: Keys, mode: GameMode) -> list[str]:
    return [
        keys.queue(mode),
        keys.tickets(mode),
        keys.ticket_pods(mode),
        keys.inflight(mode),
        keys.inflight_scores(mode),
        keys.battles(mode),
        keys.pairing_pass(mode),
    ]


def test_matchmaking_keys_share_one_cluster_slot(keys: Keys) -> None:
    every = [k for mode in GameMode for k in mode_keys(keys, mode)]
    every += [keys.parties, keys.party_members, keys.party_expiry, keys.deadlines]
    every.append(keys.player("76561197960265729"))
    assert len({key_slot(k.encode()) for k in every}) == 1
