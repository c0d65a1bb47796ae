"""Static, deterministic data for the console: `cardgame-console --demo` and the screenshot
tests. Three pods (one draining, one whose game server died), a busy Normal queue, the
channels with their traffic, and a player with a match history. Poll i is the stack i seconds
after NOW, so rates and sparklines have a history, always the same one."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator

from console.model import (
    MatchRow,
    PlayerLive,
    PlayerProfile,
    QueueRaw,
    RawPoll,
    StreamRaw,
    TailLine,
    design_channels,
)
from servers.common.heartbeat import Heartbeat
from servers.common.keys import GameMode, Keys

NOW = 1_750_000_000.0  # 2025-06-15 15:06:40 UTC
PLAYER = "76561198000000042"
OPPONENT = "76561198000000077"
HISTORY_POLLS = 90


def matches_formed(i: int) -> int:
    """A counter that grows by a wave of 4-16 matches a second."""
    return sum(10 + round(6 * math.sin(t / 7)) for t in range(i))


def raw_at(keys: Keys, i: int) -> RawPoll:
    now = NOW + i
    formed = matches_formed(i)

    def beat(pod: str, role: str, age: float, **stats: object) -> Heartbeat:
        return Heartbeat(
            pod_id=pod,
            role=role,
            pid=4000 + len(pod),
            started_at=NOW - 3600,
            at=now - age,
            stats=dict(stats),
        )

    heartbeats = {
        "pod-1": {
            "game": beat(
                "pod-1",
                "game",
                0.4,
                sessions=412,
                connected=398,
                battles_running=6,
                battles_completed=1000 + formed,
                draining=False,
            ),
            "match": beat(
                "pod-1",
                "match",
                0.3,
                matches_formed=600 + formed // 2,
                requests=5000 + 3 * formed,
                maintenance=False,
                game_servers_ok=True,
            ),
        },
        "pod-2": {
            "game": beat(
                "pod-2",
                "game",
                0.7,
                sessions=97,
                connected=12,
                battles_running=2,
                battles_completed=900 + formed,
                draining=True,
            ),
            "match": beat(
                "pod-2",
                "match",
                0.5,
                matches_formed=580 + formed - formed // 2,
                requests=4800 + 3 * formed,
                maintenance=False,
                game_servers_ok=True,
            ),
        },
        "pod-3": {
            "match": beat(
                "pod-3",
                "match",
                4.8,
                matches_formed=311,
                requests=2900,
                maintenance=False,
                game_servers_ok=True,
            ),
        },
    }
    ratings = tuple(1500 + 260 * math.sin(n * 1.7) + 90 * math.cos(n * 0.3) for n in range(37))
    queues = {
        GameMode.NORMAL.value: QueueRaw(
            size=37,
            oldest_score_ms=int((now - 48.2) * 1000),
            waits_at_least=(30, 18, 7, 2, 0),
            inflight=2,
            ratings=ratings,
        )
    }
    numsub: dict[str, int] = {}
    for spec in design_channels(keys, ("pod-1", "pod-2", "pod-3"), [m.value for m in GameMode]):
        if spec.kind == "pubsub":
            numsub[spec.name] = 0 if spec.pod == "pod-3" else (1 if spec.pod else 2)
    streams = {
        keys.enqueue_requests: StreamRaw(3, 20_000 + 2 * formed, 3, 0),
        keys.dequeue_requests: StreamRaw(0, 1_400 + formed // 8, 0, 0),
        keys.battles(GameMode.NORMAL): StreamRaw(5, 1_500 + formed, 4, 1),
    }
    player = PlayerLive(
        pod="pod-1",
        match_id=None,
        queued_mode="normal",
        queued_since_ms=int((now - 12.5) * 1000),
        ticket_pod="pod-1",
    )
    return RawPoll(
        now=now,
        pods_listed={"pod-1": now - 0.3, "pod-2": now - 0.5, "pod-3": now - 4.8},
        heartbeats=heartbeats,
        queues=queues,
        numsub=numsub,
        streams=streams,
        maintenance=None,
        maintenance_ttl=None,
        duration=0.0031,
        player=player,
    )


def profile() -> PlayerProfile:
    recent = tuple(
        MatchRow(
            match_id=f"00000000-0000-4000-8000-0000000000{n:02d}",
            mode="normal",
            finished_at=NOW - 300 * (n + 1),
            result=("win", "loss", "win", "draw", "win")[n],
            opponent_id=OPPONENT,
            opponent_name=f"rival-{n}",
            rating_before=1500.0,
            rating_after=1500.0,
        )
        for n in range(5)
    )
    return PlayerProfile(
        player_id=PLAYER,
        name="alice",
        created_at=NOW - 86400 * 30,
        last_login_at=NOW - 600,
        rating=1500.0,
        rating_deviation=350.0,
        level=7,
        experience=642,
        wins=31,
        losses=22,
        draws=4,
        recent=recent,
    )


def tail_lines(keys: Keys) -> list[TailLine]:
    def line(dt: float, channel: str, message: dict[str, object]) -> TailLine:
        return TailLine(
            NOW + HISTORY_POLLS - dt, channel, json.dumps(message, separators=(",", ":"))
        )

    match = "5f0c2a9e-77b1-4c1e-9d43-0b8f3c1e2a10"
    return [
        line(
            3.0,
            keys.match_result("pod-1"),
            {
                "player_id": PLAYER,
                "game_mode": "normal",
                "result": {"type": "EnQueued", "queue_size": 37},
                "request_id": "a1",
            },
        ),
        line(
            2.5,
            keys.match_result("pod-1"),
            {
                "player_id": PLAYER,
                "game_mode": "normal",
                "result": {
                    "type": "MatchFound",
                    "match_id": match,
                    "opponent_id": OPPONENT,
                    "opponent_name": "bob",
                },
            },
        ),
        line(
            2.5,
            keys.match_result("pod-2"),
            {
                "player_id": OPPONENT,
                "game_mode": "normal",
                "result": {
                    "type": "MatchFound",
                    "match_id": match,
                    "opponent_id": PLAYER,
                    "opponent_name": "alice",
                },
            },
        ),
        line(
            2.5,
            keys.battle_request,
            {
                "match_id": match,
                "game_mode": "normal",
                "player1": PLAYER,
                "player2": OPPONENT,
                "pod1": "pod-1",
                "pod2": "pod-2",
            },
        ),
        line(
            2.1,
            keys.battle_result("pod-1"),
            {
                "match_id": match,
                "game_mode": "normal",
                "player_id": PLAYER,
                "winner_id": PLAYER,
                "turns": 9,
                "timeline": [{"t": "draw"}],
            },
        ),
        line(1.2, keys.pod_control("pod-2"), {"command": "drain"}),
    ]


class StaticSource:
    """A `console.sources.Source` over the data above; actions change nothing real."""

    def __init__(self, keys: Keys | None = None) -> None:
        self.keys = keys or Keys("cg")
        self.redis_label = "demo"
        self.database_label = "demo"
        self.polls = 0
        self.maintenance: str | None = None
        self.actions: list[str] = []

    async def poll(self, player_id: str | None = None) -> RawPoll:
        raw = raw_at(self.keys, self.polls)
        self.polls += 1
        if self.maintenance:
            from dataclasses import replace

            raw = replace(raw, maintenance=self.maintenance, maintenance_ttl=300)
        return raw

    async def tail(self) -> AsyncIterator[tuple[str, bytes] | None]:
        yield None
        for line in tail_lines(self.keys):
            yield line.channel, line.data.encode()
        while True:
            await asyncio.sleep(0.25)
            yield None

    async def ping_database(self) -> None:
        return None

    async def find_player(self, query: str) -> PlayerProfile | None:
        found = profile()
        return found if query.strip() in (found.player_id, found.name) else None

    async def set_maintenance(self, on: bool) -> str:
        self.maintenance = "manual" if on else None
        self.actions.append(f"maintenance {on}")
        return "flag set to manual, expires in 300 s" if on else "flag removed"

    async def dequeue(self, player_id: str) -> str:
        self.actions.append(f"dequeue {player_id}")
        return "dequeued (demo)"

    async def disconnect(self, player_id: str) -> str:
        self.actions.append(f"disconnect {player_id}")
        return "disconnect sent (demo)"

    async def drain(self, pod: str) -> str:
        self.actions.append(f"drain {pod}")
        return f"drain sent to {pod} (demo)"

    async def close(self) -> None:
        return None
